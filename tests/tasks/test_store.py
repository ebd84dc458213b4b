import json
import os

import pyarrow as pa
import pytest

from tasks import stage
from tasks.store import ArtifactConflict, ArtifactStore, sha256_file


def _table(n=5):
    return pa.table({"x": list(range(n))})


def test_put_table_names_the_file_by_its_bytes_and_writes_a_sidecar(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_table(_table(), "raw", parents=[{"file": "a.gz", "sha256": "abc"}], params={"p": 1}, seed=3)
    assert ref.path.endswith(f"raw/{ref.sha256}.parquet") and sha256_file(ref.path) == ref.sha256
    side = json.loads(ref.sidecar.read_text())
    assert side["parents"] == [{"file": "a.gz", "sha256": "abc"}] and side["params"] == {"p": 1}
    assert side["seed"] == 3 and "pyarrow" in side["libraries"] and "git" in side["code_version"]
    assert [p for p in os.listdir(tmp_path / "raw") if p.startswith(".tmp")] == []


def test_same_content_same_artifact_and_first_sidecar_kept(tmp_path):
    store = ArtifactStore(tmp_path)
    first = store.put_table(_table(), "raw", params={"run": 1})
    second = store.put_table(_table(), "raw", params={"run": 2})
    assert first == second
    assert json.loads(first.sidecar.read_text())["params"] == {"run": 1}


def test_an_existing_artifact_is_never_overwritten_with_other_bytes(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_table(_table(), "raw")
    with open(ref.path, "wb") as handle:  # simulate a tampered file under the same name
        handle.write(b"other")
    with pytest.raises(ArtifactConflict):
        store.put_table(_table(), "raw")
    assert open(ref.path, "rb").read() == b"other"


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(pa.ArrowInvalid):
        store.put_table(pa.table({"x": [1]}).replace_schema_metadata({}).append_column("y", pa.array([1, 2])), "raw")
    assert not (tmp_path / "raw").exists() or os.listdir(tmp_path / "raw") == []


def test_cache_returns_refs_only_while_their_files_exist(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_table(_table(), "raw")
    store.cache_put("raw", "k1", {"raw": ref})
    assert store.cache_get("raw", "k1") == {"raw": ref}
    os.remove(ref.path)
    assert store.cache_get("raw", "k1") is None
    assert store.cache_get("raw", "unknown") is None


def test_code_hash_follows_imported_helpers(tmp_path, monkeypatch):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "builder.py").write_text("from tasks.helpers import width\n")
    (tmp_path / "tasks" / "helpers.py").write_text("width = 30\n")
    (tmp_path / "tasks" / "other.py").write_text("x = 1\n")
    monkeypatch.setattr(stage, "PROJECT_ROOT", tmp_path)
    stage.code_hash.cache_clear()
    before = stage.code_hash("tasks.builder")
    (tmp_path / "tasks" / "other.py").write_text("x = 2\n")
    stage.code_hash.cache_clear()
    assert stage.code_hash("tasks.builder") == before  # an unrelated module changes nothing
    (tmp_path / "tasks" / "helpers.py").write_text("width = 31\n")
    stage.code_hash.cache_clear()
    assert stage.code_hash("tasks.builder") != before
    stage.code_hash.cache_clear()


def test_stage_run_reuses_outputs_for_an_unchanged_key_and_force_redoes(tmp_path):
    store, calls = ArtifactStore(tmp_path), []

    def produce(run):
        calls.append(1)
        return {"out": run.put_table(_table(len(calls)))}

    make = lambda params: stage.StageRun(store, "demo", "tasks.store", params=params)  # noqa: E731
    first = make({"a": 1}).run(produce)
    assert make({"a": 1}).run(produce) == first and len(calls) == 1
    make({"a": 2}).run(produce)
    assert len(calls) == 2
    make({"a": 1}).run(produce, force=True)
    assert len(calls) == 3
