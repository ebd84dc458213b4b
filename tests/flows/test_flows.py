"""Whole flows on the real data (slices where training would be slow), through Prefect."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from flows.classification import classification
from flows.regression import regression
from tasks.core.errors import DataError
from tasks.stages.load import RawDataError
from tasks.stages.validate import ValidationFailed
from tests.tasks.checks.test_validate import _text

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane


HOUSING_DATA_SHA = "a2b44dcc7e1c9091b43c4f458b25cbd1f7e8068d08edd26bc4703108d3fa6214"
ROOT = Path(__file__).resolve().parents[2]


def _sidecar(path: str) -> dict:
    return json.loads(Path(path).with_suffix(".json").read_text())


def _lineage_roots(path: str) -> set[str]:
    """Follow sidecar parents back to the raw files; return their sha256s."""
    roots, pending = set(), [path]
    while pending:
        for parent in _sidecar(pending.pop())["parents"]:
            if "path" in parent:
                pending.append(parent["path"])
            else:
                roots.add(parent["sha256"])
    return roots


def _stages(artifacts: Path) -> set[str]:
    return {p.name for p in artifacts.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))} \
        if artifacts.exists() else set()


def test_regression_flow_on_housing_chains_lineage_and_reuses_its_cache(tmp_path):
    artifacts = tmp_path / "artifacts"
    first = regression(model="mlp30", epochs=2, artifacts=str(artifacts))
    assert first["flow"] == "regression" and first["run_id"]
    scaled = pd.read_parquet(first["artifacts"]["scaled"])  # from disk, not this process's table cache
    train_mean = scaled.loc[scaled["split"] == "train", "MedHouseVal"].mean()
    test_y = scaled.loc[scaled["split"] == "test", "MedHouseVal"]
    guessing = float(((test_y - train_mean) ** 2).mean())  # ~1.33: what predicting the mean scores
    assert 0 < first["test"]["loss"] < 0.6 * guessing
    assert set(first["artifacts"]) == {"raw", "split", "scaled", "scaler", "model", "history", "curve", "metrics",
                                       "residuals"}
    assert _lineage_roots(first["artifacts"]["residuals"]) == {HOUSING_DATA_SHA}
    for stage, path in first["artifacts"].items():
        assert Path(path).is_file() and Path(path).with_suffix(".json").is_file(), stage
    assert _lineage_roots(first["artifacts"]["metrics"]) == {HOUSING_DATA_SHA}
    model = _sidecar(first["artifacts"]["model"])
    assert model["flow_run_id"] == first["run_id"] and model["seed"] == 42 and model["params"]["epochs"] == 2
    assert model["params"]["keras_backend"] == keras.backend.backend()  # part of the training's cache key
    metrics = _sidecar(first["artifacts"]["metrics"])
    assert metrics["evaluation"]["test"] == first["test"] and metrics["evaluation"]["test_rows"] == 5_160
    history = pd.read_parquet(first["artifacts"]["history"])
    assert list(history["epoch"]) == [1, 2]

    again = regression(model="mlp30", epochs=2, artifacts=str(artifacts))
    # Keras model files are not byte-reproducible: an unchanged path means no retraining
    assert again["artifacts"] == first["artifacts"] and again["test"] == first["test"]
    assert again["run_id"] != first["run_id"]


def test_classification_flow_on_a_user_table_of_real_images(fashion_table, tmp_path):
    result = classification(model="mlp", epochs=2, data=str(fashion_table), target="label",
                            artifacts=str(tmp_path / "a"))
    assert result["test"]["accuracy"] > 0.7
    assert set(result["test"]) == {"loss", "accuracy"}
    assert _sidecar(result["artifacts"]["scaled"])["parents"][0]["path"] == result["artifacts"]["raw"]


def test_a_wrong_checksum_stops_the_flow_at_load_with_nothing_written(corrupt_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_MIRROR", str(corrupt_mirror()))
    artifacts = tmp_path / "artifacts"
    with pytest.raises(RawDataError, match="train-labels-idx1-ubyte.gz"):
        classification(model="mlp", epochs=1, artifacts=str(artifacts))
    assert _stages(artifacts) == set()


def test_a_nan_in_a_user_table_stops_at_raw_validation(housing_csv, tmp_path):
    df = pd.read_csv(housing_csv)
    df.loc[10, "AveOccup"] = np.nan
    df.to_csv(housing_csv, index=False)
    artifacts = tmp_path / "artifacts"
    with pytest.raises(ValidationFailed, match=r"AveOccup has 1 missing value at row 11; fill or drop them"):
        regression(model="mlp30", epochs=1, data=str(housing_csv), target="MedHouseVal",
                   artifacts=str(artifacts))
    assert _stages(artifacts) == {"raw", "validation-raw", "data-docs"}  # the input and its reports; nothing after
    sidecar, = (artifacts / "validation-raw").glob("*.json")  # Great Expectations' page of the failed check
    page = next(p for p in json.loads(sidecar.read_text())["data_docs"] if p.endswith("/features.html"))
    assert "Status: Failed" in _text(Path(page).read_text())
    report, = (artifacts / "validation-raw").glob("*.parquet")  # Great Expectations' result, in its terms
    failed = pd.read_parquet(report).query("not success")
    assert list(failed["column"]) == ["nulls"] and list(failed["expectation"]) == ["expect_column_values_to_be_between"]
    assert not list((artifacts / "_cache").glob("validation-raw/*.json"))  # a failed check is never reused


def test_a_constant_column_is_kept_scaled_by_one_and_warned_about(housing_csv, tmp_path, caplog):
    df = pd.read_csv(housing_csv)
    df["Flag"] = 1  # an extract's flag that happens to be the same in every row
    df.to_csv(housing_csv, index=False)
    artifacts = tmp_path / "artifacts"
    result = regression(model="mlp30", epochs=1, data=str(housing_csv), target="MedHouseVal", artifacts=str(artifacts))
    said = "Flag is 1.0 in every row: kept, scaled by 1"
    assert any(said in record.getMessage() and record.levelname == "WARNING" for record in caplog.records)
    sidecar, = (artifacts / "validation-raw").glob("*.json")  # the finding is in the report's lineage
    assert [w for w in json.loads(sidecar.read_text())["warnings"] if said in w]
    report, = (artifacts / "validation-raw").glob("*.parquet")  # and Great Expectations' result says it warned
    warned = pd.read_parquet(report).query("not success")
    assert list(warned["column"]) == ["constant"] and list(warned["severity"]) == ["warning"]
    scaler = pd.read_parquet(result["artifacts"]["scaler"]).set_index("feature")
    assert scaler.loc["Flag", "scale"] == 1.0 and np.isfinite(result["test"]["loss"])


def test_a_user_table_s_target_is_learnt_standardised_and_answered_in_its_units(housing_csv, tmp_path):
    from tasks.stages.train import TrainingDiverged

    df = pd.read_csv(housing_csv)
    df["MedHouseVal"] *= 100_000  # in dollars, where the course's target is in $100,000
    df.to_csv(housing_csv, index=False)
    result = regression(epochs=3, data=str(housing_csv), target="MedHouseVal", artifacts=str(tmp_path / "a"))
    mean, scale = _spec(result["artifacts"]["scaled"]).target_scaling  # measured on the train rows
    assert 1e5 < mean < 3e5 and 5e4 < scale < 2e5
    assert result["test"]["loss"] < 0.6 * df["MedHouseVal"].var()  # the test MSE, in dollars²
    try:  # the same table learnt in its own units: the loss overflows to inf, or stays near it (1e29 and more)
        unscaled = regression(epochs=3, data=str(housing_csv), target="MedHouseVal", scale_target="no",
                              artifacts=str(tmp_path / "b"))["test"]["loss"]
    except TrainingDiverged:
        unscaled = float("inf")
    assert unscaled > 1e6 * result["test"]["loss"]


def _spec(path: str):
    import pyarrow.parquet as pq

    from tasks.store.dataset import spec_of
    return spec_of(pq.read_schema(path))


def test_a_non_integer_label_stops_classification_at_load(fashion_table, tmp_path):
    df = pd.read_parquet(fashion_table)
    df["label"] = df["label"].astype(float)
    df.loc[3, "label"] = 2.5
    df.to_parquet(fashion_table)
    artifacts = tmp_path / "artifacts"
    with pytest.raises(DataError, match=r"the label column 'label' holds non-whole values 2.5 at row 4"):
        classification(model="mlp", epochs=1, data=str(fashion_table), target="label",
                       artifacts=str(artifacts))
    assert _stages(artifacts) == set()


def test_cli_help_and_json_summary(housing_csv, tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "flows", *args], cwd=ROOT,  # noqa: E731
                                       capture_output=True, text=True, timeout=300)
    top = run("--help")
    assert top.returncode == 0 and "classification" in top.stdout and "regression" in top.stdout
    sub = run("classification", "--help")
    sub.stdout = " ".join(sub.stdout.split())
    for option in ("--model", "--epochs", "--batch-size", "--seed", "--data", "--target", "--json"):
        assert option in sub.stdout
    assert "(default: mlp, the course's; mlp with --data)" in sub.stdout
    assert "(default: 10, the course's; 300 with --data)" in sub.stdout
    housing_help = " ".join(run("regression", "--help").stdout.split())
    assert "(default: mlp30, the course's; wide_deep with --data)" in housing_help
    assert "(default: 100, the course's; 300 with --data)" in housing_help
    assert "(default: 0.01, the course's; 0 with --data)" in housing_help and "--scale-target" in housing_help
    out = run("regression", "--data", str(housing_csv), "--target", "MedHouseVal", "--epochs", "1",
              "--artifacts", str(tmp_path / "a"), "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    from tests.flows.test_clean_runs import NOISE

    assert not [line for line in out.stderr.splitlines() if NOISE.search(line)]  # a good run ends clean
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["flow"] == "regression"
    assert _sidecar(summary["artifacts"]["metrics"])["evaluation"] == {"test": summary["test"], "test_rows": 750}
    assert Path(summary["artifacts"]["model"]).is_file()
    fit = _sidecar(summary["artifacts"]["model"])["params"]  # the table set-up's EarlyStopping, in lineage
    assert (fit["epochs"], fit["patience"], fit["min_delta"]) == (1, 20, 0.0)
    bad = run("regression", "--data", str(tmp_path / "missing.csv"), "--target", "y",
              "--artifacts", str(tmp_path / "b"))
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr


def test_a_table_with_a_text_column_and_missing_values_runs_with_impute(housing_csv, tmp_path):
    df = pd.read_csv(housing_csv)
    df["region"] = np.where(df["Latitude"] > 37.5, "north", "south")
    df["split"] = np.array(["train", "train", "valid", "test"])[np.arange(len(df)) % 4]
    df.loc[df.index[df["split"] == "test"][:6], "region"] = "island"  # only test rows hold it
    df.loc[[0, 5, 10], "AveBedrms"] = np.nan
    df.to_csv(housing_csv, index=False)
    with pytest.raises(ValidationFailed, match=r"AveBedrms has 3 missing values .* or pass --missing impute"):
        regression(epochs=1, data=str(housing_csv), target="MedHouseVal", artifacts=str(tmp_path / "a"))
    result = regression(epochs=1, data=str(housing_csv), target="MedHouseVal", missing="impute",
                        artifacts=str(tmp_path / "b"))
    vocabulary = result["artifacts"]["vocabulary"]  # an artifact with lineage, as the scaler is
    record = _sidecar(vocabulary)
    assert record["unseen"] == {"region": 6}
    assert {p["stage"] for p in record["parents"] if "stage" in p} == {"raw", "split"}
    categories = pd.read_parquet(vocabulary)["category"].tolist()  # learnt on the train rows: no "island"
    assert categories[0] == "[UNK]" and sorted(categories[1:]) == ["north", "south"]
    scaler = pd.read_parquet(result["artifacts"]["scaler"]).set_index("feature")
    train = df[df["split"] == "train"]
    assert scaler.loc["AveBedrms", "fill"] == pytest.approx(train["AveBedrms"].median())
    assert _spec(result["artifacts"]["scaled"]).encoded == tuple(f"region={c}" for c in categories)
    assert np.isfinite(result["test"]["loss"])
