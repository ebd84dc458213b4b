"""Verifying a store and walking its lineage: each kind of damage is one line naming the file."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from tasks.core.errors import OptionError
from tasks.store.artifacts import DATA_DOCS, TENSORBOARD, ArtifactStore, sha256_file
from tasks.store.lineage import ArtifactRef, RawFile
from tasks.store.verify import artifacts_in, find_artifact, lineage_lines, verify

RAW_FILE = RawFile("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84")


@dataclass
class Chain:
    """A store of three artifacts, each the parent of the next: raw <- split <- scaled."""

    root: Path
    store: ArtifactStore
    raw: ArtifactRef
    split: ArtifactRef
    scaled: ArtifactRef


def _table(values: list[float]) -> pa.Table:
    return pa.table({"row_id": list(range(len(values))), "x": values})


@pytest.fixture
def chain(tmp_path) -> Chain:
    store = ArtifactStore(tmp_path / "store")
    raw = store.put_table(_table([1.0, 2.0, 3.0, 4.0]), "raw", parents=[RAW_FILE], dataset="demo")
    split = store.put_table(_table([1.0, 2.0, 3.0]), "split", parents=[raw], dataset="demo", params={"seed": 7})
    scaled = store.put_table(_table([-1.0, 0.0, 1.0]), "scaled", parents=[split, raw], dataset="demo")
    store.cache_put("scaled", "key-1", {"scaled": scaled})
    return Chain(store.root, store, raw, split, scaled)


def _flip_a_byte(path: str | Path) -> None:
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def test_an_intact_store_verifies_clean_and_counts_only_its_artifacts(chain):
    (chain.root / DATA_DOCS / "run-1").mkdir(parents=True)
    (chain.root / DATA_DOCS / "run-1" / "index.html").write_text("<html></html>")
    (chain.root / TENSORBOARD).mkdir()
    (chain.root / TENSORBOARD / "events.out").write_bytes(b"not an artifact")
    (chain.root / "raw" / ".tmp-writing.parquet").write_bytes(b"half")

    assert verify(chain.root) == (3, [])
    assert artifacts_in(chain.root) == sorted(Path(ref.path) for ref in (chain.raw, chain.split, chain.scaled))


def test_changed_bytes_are_one_line_naming_the_file(chain):
    _flip_a_byte(chain.scaled.path)

    checked, problems = verify(chain.root)

    assert checked == 3
    assert problems == [f"{chain.scaled.path}: its bytes do not match its name (sha256 "
                        f"{sha256_file(chain.scaled.path)}): changed after it was written"]


def test_a_changed_parent_is_named_and_so_is_each_child_made_from_it(chain):
    _flip_a_byte(chain.raw.path)

    problems = verify(chain.root)[1]

    assert problems[0].startswith(f"{chain.raw.path}: its bytes do not match its name")
    assert problems[1:] == [f"{path}: its parent {chain.raw.path} no longer holds the bytes it was made from"
                            for path in sorted([chain.scaled.path, chain.split.path])]


def test_a_missing_sidecar_is_one_line_naming_it(chain):
    chain.split.sidecar_path.unlink()

    assert verify(chain.root)[1] == [f"{chain.split.sidecar_path}: the artifact's lineage sidecar is missing"]


def test_a_sidecar_of_another_schema_is_one_line_naming_it(chain):
    old = json.loads(chain.split.sidecar_path.read_text())
    old["schema"] = 2
    chain.split.sidecar_path.write_text(json.dumps(old))

    problems = verify(chain.root)[1]

    assert problems == [f"{chain.split.sidecar_path}: lineage schema 2, this version reads 3; "
                        "re-run the flow with --force to rewrite it"]


def test_a_sidecar_describing_another_artifact_is_one_line_naming_it(chain):
    shutil.copy(chain.raw.sidecar_path, chain.split.sidecar_path)

    problems = verify(chain.root)[1]

    assert problems == [f"{chain.split.sidecar_path}: the sidecar describes {chain.raw.sha256[:16]}..., "
                        "another artifact"]


def test_a_missing_parent_is_one_line_naming_the_child_and_the_parent(chain):
    Path(chain.split.path).unlink()  # its sidecar stays: not an artifact of its own

    problems = verify(chain.root)[1]

    assert problems == [f"{chain.scaled.path}: its parent split {chain.split.path} is missing"]


def test_a_cache_entry_pointing_at_a_missing_file_is_one_line_naming_the_entry(chain):
    Path(chain.scaled.path).unlink()

    checked, problems = verify(chain.root)

    entry = chain.root / "_cache" / "scaled" / "key-1.json"
    assert checked == 2
    assert problems == [f"{entry}: points at {chain.scaled.path}, which is missing (the stage will run again)"]


def test_an_unreadable_cache_entry_is_one_line_naming_it(chain):
    entry = chain.root / "_cache" / "scaled" / "key-1.json"
    entry.write_text('{"scaled": {"path": ')  # cut short

    assert verify(chain.root)[1] == [f"{entry}: a cache entry that cannot be read (the stage will run again)"]


def test_a_moved_store_verifies_its_own_files_not_those_of_the_folder_it_came_from(chain, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(chain.root, moved)
    Path(chain.raw.path).unlink()  # the original loses a parent the sidecars name by its old path

    assert verify(moved) == (3, [])
    assert verify(chain.root)[1] == [f"{path}: its parent raw {chain.raw.path} is missing"
                                     for path in sorted([chain.scaled.path, chain.split.path])]


def test_a_store_that_is_not_there_is_said_so(tmp_path):
    assert verify(tmp_path / "nowhere") == (0, [f"{tmp_path / 'nowhere'}: no such artifact folder"])


def test_lineage_walks_from_an_artifact_back_to_the_raw_file(chain):
    lines = lineage_lines(chain.root, chain.scaled.sha256[:12])

    assert lines == [
        f"scaled  {chain.scaled.sha256[:16]}  {chain.scaled.path}  (flow run -, task -)",
        f"  split  {chain.split.sha256[:16]}  {chain.split.path}  (flow run -, task -)",
        f"    raw  {chain.raw.sha256[:16]}  {chain.raw.path}  (flow run -, task -)",
        f"      raw file {RAW_FILE.file}  sha256 {RAW_FILE.sha256}",
        f"  raw  {chain.raw.sha256[:16]}  {chain.raw.path}  (flow run -, task -)",
        f"    raw file {RAW_FILE.file}  sha256 {RAW_FILE.sha256}",
    ]
    assert lineage_lines(chain.root, chain.split.path) == [line[2:] for line in lines[1:4]]  # by its path


def test_an_unknown_prefix_is_refused_with_what_to_give(chain):
    unknown = next(c for c in "0123456789abcdef"
                   if not any(ref.sha256.startswith(c) for ref in (chain.raw, chain.split, chain.scaled)))

    with pytest.raises(OptionError) as refused:
        find_artifact(chain.root, unknown)

    assert str(refused.value) == (f"no artifact {unknown!r} under {chain.root}/: give an artifact's path or a "
                                  "prefix of its sha256 (the name of its file)")


def test_an_ambiguous_prefix_is_refused_with_what_to_give(tmp_path):
    store = ArtifactStore(tmp_path)
    refs = [store.put_table(_table([float(i)]), "metrics") for i in range(17)]  # 17 hashes, 16 first digits
    first_digits = [ref.sha256[0] for ref in refs]
    shared = next(d for d in first_digits if first_digits.count(d) > 1)

    with pytest.raises(OptionError) as refused:
        find_artifact(tmp_path, shared)

    assert str(refused.value) == (f"{shared!r} matches {first_digits.count(shared)} artifacts; "
                                  "give more of the hash")
    one = next(ref for ref in refs if ref.sha256[0] == shared)
    assert find_artifact(tmp_path, one.sha256[:20]) == one.sidecar_path  # more of the hash: found
