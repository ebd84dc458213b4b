"""Where a stored Parquet artifact is read from: this host's file, or the bucket's object.

A folder store's artifacts are files. A store on object storage (``tasks/store/remote.py``) has
a working copy on each host, and an artifact another host wrote is not fetched when a cache hit
finds it (only its sidecar is): it is read where it is read. A reader of the whole table fetches
the object into the working copy once and checks it against its name, as any fetched artifact; a
reader of a slice (some row groups, some columns, the footer) reads the bucket's object by
ranges, each block checked against the digests in the sidecar (``tasks/store/blocks.py``).

Every stage reads an artifact through ``parquet_file``, ``read_schema`` or ``readable``, never by
opening its path, so that the same code reads a folder store and a bucket, in any process of the
host (a Dask worker's too: the working copy names its bucket in a marker file). Work sent to
another machine names an artifact of a bucket by its object's URL (``portable``): each of these
readers takes that too, and reads it through its own host's working copy.
"""
from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.errors import DataError
from tasks.store.blocks import Blocks, CheckedObject, DamagedObject, sha256_file
from tasks.store.lineage import Lineage, LineageError
from tasks.store.locks import file_lock
from tasks.store.remote import Remote, is_url

MARKER = ".store-url"  # in a working copy's root: the URL of the store it copies


def mark(root: Path, url: str) -> None:
    """Say in a working copy which store it copies (written once; a URL holds no credentials)."""
    marker = root / MARKER
    if not marker.exists():
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".tmp-marker-")
        with os.fdopen(fd, "w") as handle:
            handle.write(url)
        os.replace(tmp, marker)  # threads racing write the same text


def _remote(url: str) -> Remote:
    """The store's ``Remote``, one per URL and endpoint settings (a test may start another server)."""
    return _remotes(url, tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))


@functools.lru_cache(maxsize=8)
def _remotes(url: str, settings: tuple) -> Remote:
    return Remote(url)


def _in_bucket(path: Path) -> tuple[Remote, str] | None:
    """The store and key of an artifact of a working copy (``<root>/<stage>/<name>``), or None."""
    root = path.parent.parent
    try:
        url = (root / MARKER).read_text().strip()
    except OSError:
        return None
    return _remote(url), path.relative_to(root).as_posix()


def _blocks(sidecar: Path) -> Blocks | None:
    """The block digests the artifact's lineage records (None: none, or no readable sidecar)."""
    try:
        return Lineage.read(sidecar).blocks
    except LineageError:
        return None


def fetch_checked(remote: Remote, key: str, path: Path) -> None:
    """Fetch an artifact whole into the working copy and check it against its name: once per host,
    however many threads and processes ask at once (the others wait and find it fetched)."""
    with file_lock(path.parent.parent / "_cache" / "_fetch" / f"{path.name}.lock"):
        if not path.exists():
            _fetch(remote, key, path)


def _fetch(remote: Remote, key: str, path: Path) -> None:
    if not remote.get(key, path):
        raise DataError(f"{remote.url}/{key}: no longer in the bucket (moved aside as damaged, or deleted): run "
                        "the flow again, and the stage that wrote it writes it back")
    if sha256_file(path) != path.stem:
        path.unlink(missing_ok=True)
        where = remote.quarantine(key)
        raise DamagedObject(f"{remote.url}/{key} changed in the bucket since it was written (its bytes no longer "
                            f"match its name); moved to {remote.url}/{where}: run the flow again, and the stage "
                            "that wrote it writes it back")


def portable(path: str | os.PathLike) -> str | os.PathLike:
    """An artifact's name on any machine: its object's URL for an artifact of a bucket's working
    copy, else its path (a folder store's: a folder every machine must reach as this one does)."""
    file = Path(path).absolute()
    found = _in_bucket(file) if file.suffix == ".parquet" else None
    return f"{found[0].url}/{found[1]}" if found else path  # (anything else: as it came)


def _here(path: str | os.PathLike) -> Path:
    """Where this host keeps an artifact named by its path, or by its object's URL (``portable``:
    ``<store URL>/<stage>/<name>``; its sidecar fetched, for the block digests, when this host has
    neither)."""
    name = str(path)
    if not is_url(name):
        return Path(path)
    store, stage, file = name.rsplit("/", 2)
    remote = _remote(store)
    mark(remote.working_copy, remote.url)
    local = remote.working_copy / stage / file
    sidecar = local.with_suffix(".json")
    if not local.exists() and not sidecar.exists():
        remote.get(f"{stage}/{sidecar.name}", sidecar)
    return local


def readable(path: str | os.PathLike, whole: bool = False) -> str | pa.PythonFile:
    """What pyarrow reads an artifact from: its file, fetched first when this host lacks it and
    ``whole`` (or the sidecar records no blocks), else the bucket's object read by checked ranges."""
    path = _here(path)
    found = None if path.exists() else _in_bucket(path)
    if found is None:
        return str(path)  # a local file, or a missing one (pyarrow says so)
    remote, key = found
    blocks = _blocks(path.with_suffix(".json"))
    if whole or blocks is None:
        fetch_checked(remote, key, path)
        return str(path)
    return pa.PythonFile(CheckedObject(remote, key, blocks, remote.quarantine), mode="r")


def parquet_file(path: str | os.PathLike, whole: bool = False) -> pq.ParquetFile:
    """An artifact's Parquet file, read page by page; ``whole``: a reader of every row group (a scan),
    fetched first rather than read by range. (Arrow's default, ``pre_buffer``, reads whole row groups
    of every column ahead: a 20,000,000-row table's read then held 1.6 GB where page by page holds 0.4 GB.)"""
    return pq.ParquetFile(readable(path, whole), pre_buffer=False)


def read_schema(path: str | os.PathLike) -> pa.Schema:
    """An artifact's schema (with the dataset spec in its metadata), from its footer alone."""
    return parquet_file(path).schema_arrow
