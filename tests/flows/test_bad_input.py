"""The bad-input corpus: each case is built from the real data, run through the flow, and must
stop at the step that should catch it, with a message that names the problem, leaving nothing
downstream and every artifact that existed before byte for byte as it was.

The store each case runs on already holds a finished run (a good housing table), so that
"nothing existing changed" is checked against real artifacts. Raw-file cases that a checksum
would stop first are also run with the damaged file's checksum accepted (as a new release of
the dataset would be), to reach the checks behind it.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.classification import classification
from flows.regression import regression
from tasks.core.errors import InputError
from tasks.stages import load

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane


# the stages in the order a flow runs them, and the artifact folders each one writes
STEPS = {"load": {"raw"}, "validate-raw": {"validation-raw", "data-docs"}, "split": {"split"},  # a check's report:
         "validate-split": {"validation-split"}, "scale": {"scaler", "scaled"},  # its table and Data Docs page
         "validate-scaled": {"validation-scaled"}, "train": {"model", "history", "curve", "tensorboard"}}
FASHION = Path(os.environ["DATA_MIRROR"]) / "fashion-mnist"
HOUSING = Path(os.environ["DATA_MIRROR"]) / "california-housing" / "cal_housing.data"


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under the store, its own bookkeeping included; of a sidecar, its record
    but for ``also_produced_by`` (the same bytes made again by the failed run are named there)."""
    def digest(path: Path) -> str:
        if path.suffix == ".json" and not path.parent.parent.name.startswith("_"):
            record = json.loads(path.read_text())
            if isinstance(record, dict):  # a sidecar (a champion history is a list)
                record.pop("also_produced_by", None)
            return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return {str(p.relative_to(root)): digest(p) for p in root.rglob("*") if p.is_file()}


def folders(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


@pytest.fixture(scope="module")
def store(tmp_path_factory, housing) -> tuple[Path, Path]:
    """A store holding one finished regression run on a housing table, and that table."""
    base = tmp_path_factory.mktemp("corpus")
    table = base / "houses.csv"
    frame = pd.DataFrame(housing.X[:600], columns=list(housing.spec.features))
    frame["MedHouseVal"] = housing.y[:600]
    frame.to_csv(table, index=False)
    regression(model="mlp30", epochs=1, data=str(table), target="MedHouseVal",
               artifacts=str(base / "store"))
    return base / "store", table


@pytest.fixture
def case_store(store, tmp_path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(store[0], root)
    return root


# ---- the cases: each builds its input in tmp_path and says how to run it ----------------------
def _houses(store, tmp_path, change, name="bad.csv"):
    df = pd.read_csv(store[1])
    df = change(df) if change else df
    path = tmp_path / name
    (df.to_parquet if name.endswith(".parquet") else lambda p: df.to_csv(p, index=False))(path)
    return {"data": str(path), "target": "MedHouseVal"}


def _labelled(store, tmp_path, labels):
    df = pd.read_csv(store[1]).drop(columns=["MedHouseVal"])
    df["label"] = labels(len(df))
    path = tmp_path / "labelled.csv"
    df.to_csv(path, index=False)
    return {"data": str(path), "target": "label", "flow": "classification"}


def _mirror(tmp_path, monkeypatch, damage, name, accept=False):
    """A Fashion-MNIST mirror with one file damaged (the others linked); with ``accept``, the
    damaged file's checksum is accepted, so the checks behind the checksum are reached."""
    folder = tmp_path / "mirror" / "fashion-mnist"
    folder.mkdir(parents=True)
    for gz in FASHION.glob("*.gz"):
        (folder / gz.name).symlink_to(gz)
    (folder / name).unlink()
    (folder / name).write_bytes(damage((FASHION / name).read_bytes()))
    monkeypatch.setenv("DATA_MIRROR", str(tmp_path / "mirror"))
    if accept:
        key = next(k for k, f in load.FASHION_FILES.items() if f.name == name)
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        monkeypatch.setitem(load.FASHION_FILES, key, dataclasses.replace(
            load.FASHION_FILES[key], sha256=load.FASHION_FILES[key].sha256 | {digest}))
    return {"flow": "classification"}


def _idx(transform):
    """Damage inside the gzip: decompress, change the idx bytes, compress again."""
    return lambda blob: gzip.compress(transform(bytearray(gzip.decompress(blob))))


def _housing_file(tmp_path, monkeypatch, change):
    """A StatLib cal_housing.data changed line by line, its checksum accepted."""
    folder = tmp_path / "mirror" / "california-housing"
    folder.mkdir(parents=True)
    lines = HOUSING.read_text().splitlines()
    (folder / "cal_housing.data").write_text("\n".join(change(lines)) + "\n")
    monkeypatch.setenv("DATA_MIRROR", str(tmp_path / "mirror"))
    digest = hashlib.sha256((folder / "cal_housing.data").read_bytes()).hexdigest()
    monkeypatch.setattr(load, "HOUSING_DATA", dataclasses.replace(load.HOUSING_DATA, sha256=frozenset({digest})))
    return {"flow": "regression"}


def _cell(lines, row, column, value):
    cells = lines[row].split(",")
    cells[column] = value
    return lines[:row] + [",".join(cells)] + lines[row + 1:]


def _set(column, row, value):
    def change(df):
        df[column] = df[column].astype(object) if isinstance(value, str) else df[column]
        df.loc[row, column] = value
        return df
    return change


def _regions(df):
    df["region"] = np.where(df["Latitude"] > 37.0, "north", "south")
    return df


def _million_ids(df):
    """A million rows (the table's, repeated) with an identifier in a text column."""
    df = df.iloc[np.arange(1_000_000) % len(df)].reset_index(drop=True)
    df["id"] = pd.Series(np.arange(1_000_000)).map("u{:07d}".format)
    return df


def _split_column(values):
    def change(df):
        df["split"] = (values * (len(df) // len(values) + 1))[:len(df)]
        return df
    return change


CASES = {
    # raw files of the course's datasets
    "fashion file truncated": ("load", r"checksum mismatch for .*train-images-idx3-ubyte\.gz",
                               lambda s, t, m: _mirror(t, m, lambda b: b[:len(b) // 2], "train-images-idx3-ubyte.gz")),
    "fashion gzip corrupt": ("load", r"checksum mismatch for .*t10k-images-idx3-ubyte\.gz",
                             lambda s, t, m: _mirror(t, m, lambda b: b[:100] + bytes(50) + b[150:],
                                                     "t10k-images-idx3-ubyte.gz")),
    "fashion wrong sha256": ("load", r"checksum mismatch for .*t10k-labels.*expected 67da17c7",
                             lambda s, t, m: _mirror(t, m, lambda b: (FASHION / "train-labels-idx1-ubyte.gz")
                                                     .read_bytes(),
                                                     "t10k-labels-idx1-ubyte.gz")),
    "fashion gzip corrupt, checksum accepted": (
        "load", r"t10k-images-idx3-ubyte\.gz: not a readable gzip file",
        lambda s, t, m: _mirror(t, m, lambda b: b[:100] + bytes(50) + b[150:], "t10k-images-idx3-ubyte.gz", True)),
    "idx wrong magic": ("load", r"train-labels-idx1-ubyte\.gz: not an idx file of bytes \(its magic number is 00000901",
                        lambda s, t, m: _mirror(t, m, _idx(lambda b: b[:2] + b"\x09" + b[3:]),
                                                "train-labels-idx1-ubyte.gz", True)),
    "idx wrong count": ("load", r"t10k-labels-idx1-ubyte\.gz: its header promises 10001 = 10001 bytes, the file holds "
                                r"10000",
                        lambda s, t, m: _mirror(t, m, _idx(lambda b: b[:4] + (10001).to_bytes(4, "big") + b[8:]),
                                                "t10k-labels-idx1-ubyte.gz", True)),
    "labels shorter than images": (
        "load", r"t10k-labels-idx1-ubyte\.gz holds 9999 labels for the 10000 images",
        lambda s, t, m: _mirror(t, m, _idx(lambda b: b[:4] + (9999).to_bytes(4, "big") + b[8:-1]),
                                "t10k-labels-idx1-ubyte.gz", True)),
    "label 10": ("validate-raw", r"the label column 'label' holds 10 at row 60004; labels must be 0..9",
                 lambda s, t, m: _mirror(t, m, _idx(lambda b: b[:8 + 3] + b"\x0a" + b[8 + 4:]),
                                         "t10k-labels-idx1-ubyte.gz", True)),
    "label -1 (byte 255)": ("validate-raw", r"the label column 'label' holds 255 at row 1; labels must be 0..9",
                            lambda s, t, m: _mirror(t, m, _idx(lambda b: b[:8] + b"\xff" + b[9:]),
                                                    "train-labels-idx1-ubyte.gz", True)),
    "housing file missing a column": (
        "load", r"cal_housing\.data: line 1 has 8 values where the file's rows have 9",
        lambda s, t, m: _housing_file(t, m, lambda lines: [",".join(x.split(",")[:8]) for x in lines])),
    "housing file with an extra column": (
        "load", r"cal_housing\.data: line 3 has 10 values .* 1 such line",
        lambda s, t, m: _housing_file(t, m, lambda lines: lines[:2] + [lines[2] + ",7"] + lines[3:])),
    "housing file with text in a number": (
        "load", r"cal_housing\.data: .*'abc'.*every value must be a number",
        lambda s, t, m: _housing_file(t, m, lambda lines: _cell(lines, 5, 3, "abc"))),
    "housing file with NaN": ("validate-raw", r"HouseAge has 1 missing value at row 8; fill or drop them",
                              lambda s, t, m: _housing_file(t, m, lambda lines: _cell(lines, 7, 2, "nan"))),
    "housing file with inf": ("validate-raw", r"MedInc holds infinity at row 10: inf",
                              lambda s, t, m: _housing_file(t, m, lambda lines: _cell(lines, 9, 7, "inf"))),
    "housing file with a negative population": (
        "validate-raw", r"Population is below its known range \[3, 40000\] at row 12: -322.0",
        lambda s, t, m: _housing_file(t, m, lambda lines: _cell(lines, 11, 5, "-322"))),
    "housing file with zero households": (
        "load", r"cal_housing\.data: households is 0 at line 14: rooms, bedrooms and occupancy per household",
        lambda s, t, m: _housing_file(t, m, lambda lines: _cell(lines, 13, 6, "0"))),
    # a user's own table
    "header-only table": ("load", r"bad\.csv: the table has a header but no rows",
                          lambda s, t, m: _houses(s, t, lambda df: df.iloc[:0])),
    "one row": ("validate-raw", r"the table has 1 row; at least 20 are needed",
                lambda s, t, m: _houses(s, t, lambda df: df.iloc[:1])),
    "every row a duplicate": ("validate-raw", r"no feature varies: every feature column holds one value in every "
                                              r"row \(MedInc is 8.3252",
                              lambda s, t, m: _houses(s, t, lambda df: pd.concat([df.iloc[:1]] * 100))),
    "a column of text in some rows and numbers in others": (
        "load", r"bad\.csv: column 'AveRooms' holds numbers in 598 rows \(.*\) and text in 2 \('seven', 'x' at rows 4, "
                r"9\); declare it --categorical AveRooms \(every value a category\) or --numeric AveRooms",
        lambda s, t, m: _houses(s, t, lambda df: _set("AveRooms", 8, "x")(_set("AveRooms", 3, "seven")(df)))),
    "text in a column declared numeric": (
        "load", r"bad\.csv: feature column 'region' holds text where numbers are expected: '(north|south)', .* at "
                r"rows 1, 2, 3",
        lambda s, t, m: {**_houses(s, t, _regions), "numeric": ["region"]}),
    "a category column with a million distinct values": (
        "validate-raw", r"category column 'id' holds 1,000,000 distinct values \(a category column may hold 1,000\): "
                        r"an identifier rather than a category; drop it, or use it as numbers with --numeric id",
        lambda s, t, m: _houses(s, t, _million_ids, "ids.parquet")),
    "a missing category": ("validate-raw", r"region has 1 missing value at row 7; fill or drop them, or pass "
                                           r"--missing impute",
                           lambda s, t, m: _houses(s, t, lambda df: _set("region", 6, None)(_regions(df)))),
    "missing value": ("validate-raw", r"Latitude has 1 missing value at row 6",
                      lambda s, t, m: _houses(s, t, _set("Latitude", 5, np.nan))),
    "infinite value": ("validate-raw", r"AveOccup holds infinity at row 3: inf",
                       lambda s, t, m: _houses(s, t, _set("AveOccup", 2, np.inf), "bad.parquet")),
    "no target column": ("load", r"no column 'MedHouseVal' \(the --target\); its columns are 'MedInc'",
                         lambda s, t, m: _houses(s, t, lambda df: df.drop(columns=["MedHouseVal"]))),
    "text target": ("load", r"target column 'MedHouseVal' holds text where numbers are expected: 'high' at row 2",
                    lambda s, t, m: _houses(s, t, _set("MedHouseVal", 1, "high"))),
    "float label for classification": (
        "load", r"the label column 'label' holds non-whole values 0.5 at row 1",
        lambda s, t, m: _labelled(s, t, lambda n: [0.5] + [i % 3 for i in range(n - 1)])),
    "labels 1..K": ("load", r"the labels in 'label' run 1..3; the models need 0..2: subtract 1",
                    lambda s, t, m: _labelled(s, t, lambda n: [i % 3 + 1 for i in range(n)])),
    "split column with other values": (
        "load", r"column 'split' holds 'test ', 'training' at rows 1, 4, 5, 6, 9 and \d+ more; use only train",
        lambda s, t, m: _houses(s, t, _split_column(["training", "valid", "test", "training", "test "]))),
    "an empty split": ("validate-split", r"the test split is empty: a model needs rows",  # (no valid: taken from train)
                       lambda s, t, m: _houses(s, t, _split_column(["train", "train", "valid"]))),
    "not a table at all": ("load", r"bad\.csv: cannot be read as csv",
                           lambda s, t, m: {"data": str(_write(t / "bad.csv", bytes(range(256)) * 4)),
                                            "target": "MedHouseVal"}),
    "a parquet file cut short": ("load", r"cut\.parquet: cannot be read as parquet",
                                 lambda s, t, m: {"data": str(_write(t / "cut.parquet", _parquet(s)[:300])),
                                                  "target": "MedHouseVal"}),
    "a spreadsheet": ("load", r"expected a \.csv or \.parquet file",
                      lambda s, t, m: {"data": str(_write(t / "houses.xlsx", b"PK")), "target": "MedHouseVal"}),
    "a model that needs columns the table lacks": (
        "train", r"model 'wide_deep_multi_input' needs feature columns \['AveOccup'\]",
        lambda s, t, m: {**_houses(s, t, lambda df: df.drop(columns=["AveOccup"])), "model": "wide_deep_multi_input"}),
    "an activation Keras does not know": ("train", r"--activation 'rleu': Keras has no activation of that name",
                                          lambda s, t, m: {**_houses(s, t, None), "activation": "rleu"}),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _parquet(store) -> bytes:
    import io

    buffer = io.BytesIO()
    pd.read_csv(store[1]).to_parquet(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_stops_at_its_step_naming_the_problem(case, store, case_store, tmp_path, monkeypatch):
    step, message, build = CASES[case]
    run = build(store, tmp_path, monkeypatch)
    flow = classification if run.pop("flow", "regression") == "classification" else regression
    model = run.pop("model", "mlp" if flow is classification else "mlp30")
    before = snapshot(case_store)
    with pytest.raises(InputError, match=message) as error:
        flow(model=model, epochs=1, artifacts=str(case_store), **run)
    assert len(str(error.value)) < 1_000  # a few lines, not a dump (the CLI's one block: the test below)
    if os.environ.get("CORPUS_TABLE"):  # CORPUS_TABLE=corpus.md: the table of case, step and message
        lines = str(error.value).splitlines()
        shown = " / ".join(lines[:2] if lines[0].endswith(":") else lines[:1])
        with open(os.environ["CORPUS_TABLE"], "a") as table:
            table.write(f"| {case} | {step} | `error: {shown}` |\n")
    after = snapshot(case_store)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed changed
    allowed = set().union(*[folders for name, folders in STEPS.items()
                            if list(STEPS).index(name) <= list(STEPS).index(step)])
    written = {Path(k).parts[0] for k in set(after) - set(before) if not k.startswith(("_", "."))}
    assert written <= allowed, f"{case}: written after {step}: {written - allowed}"


BYTES_DAMAGED = ("a Parquet artifact corrupted", "a model file replaced by garbage",
                 "an artifact whose bytes no longer match its name")
DAMAGE = {  # done to the finished run's store between two runs of the same command
    "a Parquet artifact corrupted": lambda root: _flip(next((root / "scaled").glob("*.parquet"))),
    "a model file replaced by garbage": lambda root: next((root / "model").glob("*.keras")).write_bytes(b"garbage"),
    "an artifact whose bytes no longer match its name":
        lambda root: _append(next((root / "history").glob("*.parquet"))),
    "a sidecar missing": lambda root: next((root / "split").glob("*.json")).unlink(),
    "a sidecar unreadable": lambda root: next((root / "scaler").glob("*.json")).write_text("{not json"),
    "a cache entry pointing at a missing file": lambda root: next((root / "metrics").glob("*.parquet")).unlink(),
    "a cache entry cut short": lambda root: next((root / "_cache" / "model").glob("*.json")).write_text('{"mo'),
}


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _append(path: Path) -> None:
    with open(path, "ab") as handle:
        handle.write(b"\0")


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_store_is_healed_by_the_next_run_and_verify_says_so(damage, store, case_store):
    from tasks.store.verify import verify

    artifacts = {k: v for k, v in snapshot(case_store).items() if not k.startswith("_") and not k.endswith(".json")}
    DAMAGE[damage](case_store)
    assert verify(case_store)[1], "verify sees the damage"
    result = regression(model="mlp30", epochs=1, data=str(store[1]), target="MedHouseVal",
                        artifacts=str(case_store))
    after = snapshot(case_store)
    assert {k: after.get(k) for k in artifacts} == artifacts  # every artifact as it was: rewritten, not changed
    assert verify(case_store)[1] == []
    kept = list((case_store / "_quarantine").rglob("*"))
    if damage in BYTES_DAMAGED:  # the damaged bytes are kept aside, not lost
        assert [p for p in kept if p.is_file()], damage
    assert Path(result["artifacts"]["model"]).is_file()


@pytest.mark.parametrize("options, message", [
    (["--epochs", "0"], "--epochs 0: must be at least 1"),
    (["--batch-size", "-1"], "--batch-size -1: must be at least 1"),
    (["--steps-per-execution", "0"], "--steps-per-execution 0: must be at least 1"),
    (["--workers", "0"], "--workers 0: must be at least 1"),
    (["--learning-rate", "nan"], "--learning-rate nan: must be a positive number"),
    (["--learning-rate", "-0.1"], "--learning-rate -0.1: must be a positive number"),
    (["--min-delta", "inf"], "--min-delta inf: must be a number of 0 or more"),
    (["--model", "nope"], "unknown model 'nope'; registered: cnn"),
    (["--model", "mlp"], "model 'mlp' is a classification model; for regression use one of"),
    (["--artifacts", "{table}"], "a file, not a folder"),
    (["--artifacts", "{mirror}/out"], "inside DATA_MIRROR"),
])
def test_options_that_cannot_work_are_refused_before_anything_runs(options, message, store, tmp_path, capfd):
    from flows.__main__ import main

    given = [o.format(table=store[1], mirror=os.environ["DATA_MIRROR"]) for o in options]
    artifacts = [] if "--artifacts" in options else ["--artifacts", str(tmp_path / "a")]
    code = main(["regression", "--data", str(store[1]), "--target", "MedHouseVal", *artifacts, *given])
    err = capfd.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and len(err.splitlines()) <= 3
    assert not (tmp_path / "a").exists() and not (Path(os.environ["DATA_MIRROR"]) / "out").exists()


def test_a_bad_table_through_the_cli_ends_with_one_error_block_or_a_traceback_with_debug(store, tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    bad = tmp_path / "bad.csv"
    pd.read_csv(store[1]).assign(Latitude=lambda df: df["Latitude"].where(df.index != 3)).to_csv(bad, index=False)
    command = [sys.executable, "-m", "flows", "regression", "--data", str(bad), "--target", "MedHouseVal",
               "--artifacts", str(tmp_path / "a")]
    run = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "leaked" not in run.stderr
    assert run.stderr.rstrip().endswith("error: bad: the data failed raw validation (1 check):\n"
                                        "  - Latitude has 1 missing value at row 4; fill or drop them, or pass "
                                        "--missing impute")
    debug = subprocess.run([*command, "--debug"], cwd=root, capture_output=True, text=True, timeout=300)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr


def test_an_internal_failure_keeps_its_traceback_and_exit_code_1(store, tmp_path, monkeypatch, capfd):
    import flows.__main__ as cli

    def broken(args, server):
        raise ZeroDivisionError("a bug, not the user's input")

    monkeypatch.setattr(cli, "_run", broken)
    code = cli.main(["regression", "--data", str(store[1]), "--target", "MedHouseVal",
                     "--artifacts", str(tmp_path / "a")])
    err = capfd.readouterr().err
    assert code == 1 and "Traceback (most recent call last)" in err and "ZeroDivisionError: a bug" in err


def test_verify_names_a_tampered_artifact_and_a_missing_parent_and_exits_2(store, case_store, capfd):
    from flows.__main__ import main

    assert main(["verify", "--artifacts", str(case_store)]) == 0
    assert "all intact" in capfd.readouterr().out
    tampered = next((case_store / "history").glob("*.parquet"))
    _append(tampered)
    parent = next((case_store / "split").glob("*.parquet"))  # the split index the scaler was fitted by
    parent.unlink()
    assert main(["verify", "--artifacts", str(case_store)]) == 2
    out = capfd.readouterr().out
    assert f"{tampered}: its bytes do not match its name" in out
    assert f"its parent split {parent} is missing" in out
    assert "problems" in out.splitlines()[-1]
