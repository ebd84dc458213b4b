"""The artifact store: content-addressed files with a JSON lineage sidecar each.

Every stage output lands here as ``<root>/<stage>/<sha256>.<ext>`` next to
``<sha256>.json``. Writes are atomic (temp file in the same folder, fsync,
``os.replace``), so a reader never sees half a file, and a path holds the bytes its name
says: a file found changed on disk is moved to ``_quarantine/`` (kept, never deleted) and
written again. Tasks hand each other small ``ArtifactRef`` values, not data.

The store also keeps the stage cache: ``<root>/_cache/<stage>/<key>.json`` maps a
cache key (input hashes, parameters, code hash) to the refs the stage produced.

A store named by a URL (``s3://bucket/prefix``) lives in the object store, and ``root`` is this
host's working copy of it (``tasks/store/remote.py``): what is written here is uploaded, cache
entries and sidecars are read from the bucket, and an artifact missing here is fetched and checked
against its name before it is used.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.errors import DataError
from tasks.core.faults import pause_point
from tasks.store.blocks import DamagedObject, HashingWriter, sha256_file
from tasks.store.dataset import remember
from tasks.store.lineage import ArtifactRef, Lineage, LineageError, RawFile, parent_of
from tasks.store.locks import held
from tasks.store.parquet_layout import write_settings
from tasks.store.provenance import git_version, library_versions, run_context
from tasks.store.read_ahead import read_ahead
from tasks.store.remote import Remote, WorkingCopy, is_url, quarantine_key
from tasks.store.sources import fetch_checked, mark

_CHUNK = 1 << 20
STALE_TEMP_SECONDS = 3600  # a temporary file this old was left by a killed write, not a live one
# The store's own folders beside the content-addressed stage folders, each written by one owner
TENSORBOARD = "tensorboard"  # training's TensorBoard logs, a folder per training
CHAMPIONS = "champions"  # each champion gate's decision history (tasks/serving/champion.py)
EXPORT = "export"  # SavedModels for serving (tasks/serving/export.py)
DATA_DOCS = "data-docs"  # Great Expectations' Data Docs, a site per flow run (tasks/checks/data_docs.py)
NOT_ARTIFACTS = (TENSORBOARD, CHAMPIONS, EXPORT, DATA_DOCS)


def stable_hash(value: Any) -> str:
    """sha256 of a JSON-serialisable value, independent of dict order."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _sweep_stale_temporaries(folder: Path) -> None:
    """Delete what a write killed mid-way left (a name never given: nothing refers to it)."""
    for leftover in folder.glob(".tmp-*"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - leftover.stat().st_mtime > STALE_TEMP_SECONDS:
                leftover.unlink()


def located(root: Path, path: str) -> Path:
    """Where a recorded artifact path is in the store at ``root`` (``<root>/<stage folder>/<file>``):
    a store that was moved or copied finds its own artifacts, not those of the folder it came from."""
    return root / Path(path).parent.name / Path(path).name


class ArtifactStore(WorkingCopy):
    """A folder of content-addressed artifacts. A few verbs: put, read, cache."""

    def __init__(self, root: str | os.PathLike = "artifacts"):
        self.location = str(root)  # as the user named it: a folder, or a URL
        self.remote = Remote(self.location) if is_url(self.location) else None
        self.root = self.remote.working_copy if self.remote else Path(root)
        if self.remote:
            mark(self.root, self.remote.url)  # so that any process of this host finds the bucket of its files

    # ---- writing -------------------------------------------------------
    @contextlib.contextmanager
    def _atomic(self, folder: Path, suffix: str) -> Iterator[tuple[Any, Path]]:
        folder.mkdir(parents=True, exist_ok=True)
        _sweep_stale_temporaries(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
        tmp_path = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle, tmp_path
                pause_point(f"write:{folder.name}")
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise

    def _publish(self, tmp: Path, stage: str, sink: HashingWriter, suffix: str, rows: int | None,
                 lineage: dict[str, Any]) -> ArtifactRef:
        digest, lineage = sink.digest.hexdigest(), {**lineage, **sink.facts()}
        final = tmp.parent / f"{digest}{suffix}"
        ref = ArtifactRef(stage=stage, path=str(final), sha256=digest, rows=rows)
        if final.exists() and sha256_file(final) == digest:
            tmp.unlink()
        else:
            if final.exists():  # bytes that do not match their name were damaged: kept aside, not lost
                moved = self.quarantine(final)
                logging.getLogger("pipeline").warning("%s did not hold the bytes its name says (changed on disk); "
                                                      "moved to %s and written again", final, moved)
            os.replace(tmp, final)
        self.push(final)
        self.pull(ref.sidecar_path)  # another host's record of the same bytes, if any
        record = self._record(ref, lineage)
        try:  # the same bytes again (a retraining, a re-evaluation): keep the first record, name this run
            known = self.record(ref)
        except LineageError:  # no sidecar yet, or one this version cannot read: write this run's
            known = None
        updated = record if known is None else known.with_producer(record.producer)
        if updated.blocks is None and record.blocks is not None:  # recorded before blocks were: add them
            updated = dataclasses.replace(updated, blocks=record.blocks)
        if updated is not known:  # an unchanged record is not rewritten
            self.write_json(ref.sidecar_path, updated.to_json())
        return ref

    def write_json(self, path: Path, text: str) -> None:
        """Write a small JSON file atomically (a sidecar, a cache entry, a champion record)."""
        with self._atomic(path.parent, ".json") as (handle, tmp):
            handle.write(text.encode())
        os.replace(tmp, path)
        self.push(path)

    def put_table(self, table: pa.Table, stage: str, **lineage: Any) -> ArtifactRef:
        """Write an Arrow table as Parquet; hash the bytes while they are written."""
        with self._atomic(self.root / stage, ".parquet") as (handle, tmp):
            sink = HashingWriter(handle, blocks=self.remote is not None)
            pq.write_table(table, pa.PythonFile(sink, mode="w"), **write_settings(table))
        ref = self._publish(tmp, stage, sink, ".parquet", table.num_rows, lineage)
        remember(ref.path, table)
        return ref

    def put_batches(self, batches: Iterable[pa.RecordBatch], stage: str, **lineage: Any) -> ArtifactRef:
        """Write record batches as one Parquet file of row groups (a group per batch), hashing the
        bytes while they are written: a table larger than memory is held one batch at a time.
        The first batch's schema is the file's. An exception from ``batches`` (bad input found
        mid-table) leaves nothing behind. The batches are produced a few ahead on a thread of their
        own (``read_ahead``), so that computing the next overlaps writing the last."""
        batches = read_ahead(iter(batches))
        first = next(batches, None)
        if first is None:
            raise ValueError(f"{stage}: no rows to write")
        schema, batches, rows = first.schema, itertools.chain([first], batches), 0
        with self._atomic(self.root / stage, ".parquet") as (handle, tmp):
            sink = HashingWriter(handle, blocks=self.remote is not None)
            settings = write_settings(schema.empty_table())
            settings.pop("row_group_size")
            with pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, **settings) as writer:
                for batch in batches:
                    writer.write_batch(batch, row_group_size=max(1, batch.num_rows))
                    rows += batch.num_rows
        return self._publish(tmp, stage, sink, ".parquet", rows, lineage)

    def put_file(self, source: str | os.PathLike, stage: str, **lineage: Any) -> ArtifactRef:
        """Copy a finished file (a model, a plot) into the store under its hash."""
        source = Path(source)
        with self._atomic(self.root / stage, source.suffix) as (handle, tmp):
            sink = HashingWriter(handle)
            with open(source, "rb") as src:
                shutil.copyfileobj(src, sink, _CHUNK)
        return self._publish(tmp, stage, sink, source.suffix, None, lineage)

    @staticmethod
    def _record(ref: ArtifactRef, lineage: dict[str, Any]) -> Lineage:
        """The one place a lineage record is made: the stage's facts plus the run and the code."""
        parents = tuple(p if isinstance(p, (ArtifactRef, RawFile)) else parent_of(p)
                        for p in lineage.pop("parents", ()))
        return Lineage(artifact=ref, stage=ref.stage, parents=parents, dataset=lineage.pop("dataset", ""),
                       params=lineage.pop("params", {}), seed=lineage.pop("seed", None),
                       code_hash=lineage.pop("code_hash", None), git=git_version(), libraries=library_versions(),
                       created=dt.datetime.now(dt.UTC).isoformat(), **run_context(), **lineage)

    # ---- reading -------------------------------------------------------
    @staticmethod
    def record(ref: ArtifactRef) -> Lineage:
        """The artifact's lineage record (``LineageError`` when missing, unreadable or foreign)."""
        return Lineage.read(ref.sidecar_path)

    # ---- cache ---------------------------------------------------------
    def cache_get(self, stage: str, key: str, warn=None) -> dict[str, ArtifactRef] | None:
        """The refs a stage produced for this key, if every one is still the artifact it was.

        Cheap first: a file whose size and modification time are those recorded at write is
        taken as it is; one that changed is hashed again. An artifact whose bytes no longer match
        its name (or is gone, or lost its sidecar) makes this a miss: the stage runs again and
        writes the good bytes back, and the changed file is kept in ``_quarantine/``.
        """
        entry = self.root / "_cache" / stage / f"{key}.json"
        if not self.pull(entry):
            return None
        try:
            raw = json.loads(entry.read_text())
        except (OSError, ValueError):
            return None  # a cache entry cut short: the stage runs again and rewrites it
        refs = {name: self._located(ArtifactRef(**{k: v for k, v in fields.items() if k != "stat"}))
                for name, fields in raw.items()}
        changed = [ref for name, ref in refs.items() if not self._intact(ref, raw[name].get("stat"), warn)]
        if changed:
            return None
        return refs

    def here(self, ref: ArtifactRef, whole: bool = False) -> ArtifactRef:
        """``ref`` with its path in this store (a store that was moved or copied finds its own files).
        For a URL store, an artifact this host lacks is checked in the bucket as a cache hit is, and
        fetched unless it is a table read by range where it is read (``tasks/store/sources.py``);
        ``whole``: fetched in any case (a reader of every row, many times)."""
        ref = self._located(ref)
        path = Path(ref.path)
        if self.remote and not path.exists() and self._intact(ref, None) and whole and not path.exists():
            fetch_checked(self.remote, self._key(path), path)
        return ref

    def _located(self, ref: ArtifactRef) -> ArtifactRef:
        return dataclasses.replace(ref, path=str(located(self.root, ref.path)))

    def _intact(self, ref: ArtifactRef, stat: dict[str, int] | None, warn=None) -> bool:
        path, warn = Path(ref.path), warn or logging.getLogger("pipeline").warning
        try:
            self.pull(ref.sidecar_path)
            record = Lineage.read(ref.sidecar_path)  # missing, unreadable or foreign: the stage writes it again
        except LineageError:
            return False
        if self.remote is not None and not path.exists():  # another host's
            if path.suffix == ".parquet" and record.blocks is not None:
                return self._in_bucket(path, record.blocks.size, warn)  # its blocks are checked where it is read
            try:
                fetch_checked(self.remote, self._key(path), path)  # hashed against its name as it comes
            except DamagedObject as error:  # moved aside in the bucket: the stage writes it again
                warn("%s", error)
                return False
            except DataError:  # gone from the bucket
                return False
            return True
        try:
            now = path.stat()
        except FileNotFoundError:
            return False
        if stat and (now.st_size, now.st_mtime_ns) == (stat["size"], stat["mtime_ns"]):
            return True
        if sha256_file(path) == ref.sha256:
            return True
        target = self.quarantine(path)
        warn("%s changed on disk since it was written (its bytes no longer match its name); moved to %s, and the "
             "stage runs again to write the good bytes back", path, target)
        return False

    def _in_bucket(self, path: Path, size: int, warn) -> bool:
        """Whether the bucket holds an artifact of the size it was written at, not fetching it."""
        found = self.remote.size(self._key(path))
        if found is None or found == size:
            return found is not None
        target = self.quarantine(path)
        warn("%s holds %d bytes, not the %d it was written with (changed in the bucket); moved to %s, and the "
             "stage runs again to write the good bytes back", self.url(path), found, size, target)
        return False

    def quarantine(self, path: Path) -> Path:
        """Move a damaged artifact out of the way: kept under ``_quarantine/``, never deleted."""
        target = self.root / quarantine_key(self._key(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.remote:  # the bucket's copy too: the next reader must not take it
            self.remote.move(self._key(path), self._key(target))
        try:
            os.replace(path, target)
        except FileNotFoundError:  # another run found the same damage and moved it first
            return target.parent
        return target

    @contextlib.contextmanager
    def producing(self, stage: str, key: str) -> Iterator[None]:
        """Hold the store's lock on one stage key while it is produced (other runs wait): on this
        machine, or on every host that shares a Redis server (``tasks/store/locks.py``)."""
        where = self.remote.url if self.remote else str(self.root.resolve())
        with held(f"{where}:{stage}:{key}", self.root / "_cache" / stage / f"{key}.lock"):
            yield

    def cache_put(self, stage: str, key: str, refs: dict[str, ArtifactRef]) -> None:
        """Remember a stage's refs, with each file's size and modification time as written."""
        entry = {}
        for name, ref in refs.items():
            stat = Path(ref.path).stat()
            entry[name] = {**ref.to_dict(), "stat": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}}
        self.write_json(self.root / "_cache" / stage / f"{key}.json", json.dumps(entry, indent=2, sort_keys=True))
