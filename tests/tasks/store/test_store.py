import json
import os

import pyarrow as pa
import pytest

from tasks.store import artifacts as store_module
from tasks.store import stage
from tasks.store.artifacts import ArtifactStore, sha256_file
from tasks.store.lineage import SCHEMA, LineageError, RawFile


def _table(n=5):
    return pa.table({"x": list(range(n))})


def test_put_table_names_the_file_by_its_bytes_and_writes_a_sidecar(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_table(_table(), "raw", parents=[{"file": "a.gz", "sha256": "abc"}], params={"p": 1}, seed=3)
    assert ref.path.endswith(f"raw/{ref.sha256}.parquet") and sha256_file(ref.path) == ref.sha256
    record = store.record(ref)
    assert record.artifact == ref and record.parents == (RawFile("a.gz", "abc"),) and record.params == {"p": 1}
    assert record.seed == 3 and "pyarrow" in record.libraries and record.schema == SCHEMA
    assert json.loads(ref.sidecar_path.read_text())["schema"] == SCHEMA
    assert [p for p in os.listdir(tmp_path / "raw") if p.startswith(".tmp")] == []


def test_the_same_bytes_from_other_parents_keep_both_lineages(tmp_path):
    store = ArtifactStore(tmp_path)
    first = store.put_table(_table(), "metrics", parents=[{"file": "model-a", "sha256": "a"}])
    again = store.put_table(_table(), "metrics", parents=[{"file": "model-a", "sha256": "a"}])
    assert store.record(first).also_produced_by == ()  # the same producer is named once
    other = store.put_table(_table(), "metrics", parents=[{"file": "model-b", "sha256": "b"}])
    record = store.record(other)
    assert first == again == other and record.parents == (RawFile("model-a", "a"),)
    assert [p.parents for p in record.also_produced_by] == [(RawFile("model-b", "b"),)]


def test_a_sidecar_of_another_schema_or_none_is_refused_with_what_to_do(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_table(_table(), "raw")
    old = json.loads(ref.sidecar_path.read_text())
    del old["schema"]
    ref.sidecar_path.write_text(json.dumps(old))
    with pytest.raises(LineageError, match="lineage schema 1, this version reads 3; re-run the flow with --force"):
        store.record(ref)
    ref.sidecar_path.write_text("{not json")
    with pytest.raises(LineageError, match="unreadable"):
        store.record(ref)
    ref.sidecar_path.unlink()
    with pytest.raises(LineageError, match="sidecar is missing"):
        store.record(ref)


def test_same_content_same_artifact_and_first_sidecar_kept(tmp_path):
    store = ArtifactStore(tmp_path)
    first = store.put_table(_table(), "raw", params={"run": 1})
    second = store.put_table(_table(), "raw", params={"run": 2})
    assert first == second
    assert store.record(first).params == {"run": 1}


def test_a_damaged_artifact_is_written_again_and_its_bytes_kept_aside(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_table(_table(), "raw")
    good = open(ref.path, "rb").read()
    with open(ref.path, "wb") as handle:  # a tampered file under the same name
        handle.write(b"other")
    assert store.put_table(_table(), "raw") == ref
    assert open(ref.path, "rb").read() == good  # the name holds the bytes it says again
    kept, = (tmp_path / "_quarantine" / "raw").iterdir()
    assert kept.read_bytes() == b"other" and kept.name.startswith(os.path.basename(ref.path))


def test_a_cache_hit_never_hands_on_changed_bytes(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_table(_table(), "raw")
    store.cache_put("raw", "k1", {"raw": ref})
    os.utime(ref.path, ns=(1, 1))  # touched, same bytes: hashed again and still reused
    assert store.cache_get("raw", "k1") == {"raw": ref}
    data = bytearray(open(ref.path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # one byte flipped: the size stays the same
    open(ref.path, "wb").write(bytes(data))
    warned = []
    assert store.cache_get("raw", "k1", warn=lambda *args: warned.append(args[0] % args[1:])) is None
    assert not os.path.exists(ref.path) and "changed on disk since it was written" in warned[0]
    store.put_table(_table(), "raw")  # the good bytes back; then a lost sidecar is a miss too
    assert store.cache_get("raw", "k1") == {"raw": ref}
    os.remove(ref.sidecar_path)
    assert store.cache_get("raw", "k1") is None


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)
    real_write = store_module.pq.write_table

    def disk_full(table, sink, **kwargs):  # half the file reaches the disk, then the write fails
        real_write(table, sink, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module.pq, "write_table", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.put_table(_table(), "raw")
    assert os.listdir(tmp_path / "raw") == []  # the folder was made; no temp file, artifact or sidecar


def test_a_temporary_file_left_by_a_killed_write_is_swept_once_stale(tmp_path):
    store = ArtifactStore(tmp_path)
    (tmp_path / "raw").mkdir()
    stale, live = tmp_path / "raw" / ".tmp-killed.parquet", tmp_path / "raw" / ".tmp-writing.parquet"
    stale.write_bytes(b"half"), live.write_bytes(b"half")
    old = os.stat(stale).st_mtime - store_module.STALE_TEMP_SECONDS - 1
    os.utime(stale, (old, old))
    ref = store.put_table(_table(), "raw")
    assert not stale.exists() and live.exists()  # another process may still be writing that one
    assert sorted(os.listdir(tmp_path / "raw")) == sorted([live.name, os.path.basename(ref.path),
                                                          os.path.basename(ref.sidecar_path)])


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
    (tmp_path / "tasks" / "helpers.py").write_text('"""Widths."""\n# the course\'s width\nwidth = 30  # units\n')
    stage.code_hash.cache_clear()
    assert stage.code_hash("tasks.builder") == before  # a docstring or comment edit keeps the cache
    (tmp_path / "tasks" / "helpers.py").write_text("width = 31\n")
    stage.code_hash.cache_clear()
    assert stage.code_hash("tasks.builder") != before  # a code edit in a helper invalidates it
    (tmp_path / "tasks" / "helpers.py").write_text('width = 30\ndef f():\n    "doc"\n    return "doc"\n')
    stage.code_hash.cache_clear()
    changed_function = stage.code_hash("tasks.builder")
    (tmp_path / "tasks" / "helpers.py").write_text('width = 30\ndef f():\n    "doc"\n    return "other"\n')
    stage.code_hash.cache_clear()
    assert stage.code_hash("tasks.builder") != changed_function  # a string that is code still counts
    stage.code_hash.cache_clear()


def test_stage_run_reuses_outputs_for_an_unchanged_key_and_force_redoes(tmp_path):
    store, calls = ArtifactStore(tmp_path), []

    def produce(run):
        calls.append(1)
        return {"out": run.put_table(_table(len(calls)))}

    make = lambda params: stage.StageRun(store, "demo", "tasks.store.artifacts", params=params)  # noqa: E731
    first = make({"a": 1}).run(produce)
    assert make({"a": 1}).run(produce) == first and len(calls) == 1
    make({"a": 2}).run(produce)
    assert len(calls) == 2
    make({"a": 1}).run(produce, force=True)
    assert len(calls) == 3
