"""The store on object storage: ``s3://bucket/prefix``, or any URI ``pyarrow.fs`` knows (``gs://``,
``abfs://``, ``file://``, ``hdfs://``), through a local working copy.

The bucket is the store: every host writes its artifacts there and finds the others' there. Each
host also keeps a working copy of what it wrote or read (under ``KERAS_FLOWS_CACHE``, default
``~/.cache/keras-flows``), so that the stages write plain local files exactly as with a folder
store; an object fetched into the working copy is checked against its name (its sha256) before
anything reads it, and a table read only in part is read by range from the bucket, each block
checked against its recorded digest (``tasks/store/sources.py``, ``tasks/store/blocks.py``).

Credentials are configured the standard way and never in the URL: for S3 the variables boto3
reads (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``...),
a profile, or the instance's role. A URL holding a user or password is refused, so that no secret
can reach a lineage record, a log line or a flow run's parameters.

Object stores have no rename: an object becomes visible only when its upload completes (a single
PUT, or the completion of a multipart upload), so a reader sees the whole object or none. Two hosts
writing the same content address at once write the same bytes; whichever completes last wins, and
both are what the name says.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import urllib.parse
from pathlib import Path, PurePosixPath

from tasks.core.errors import DataError, OptionError

CACHE_ENV = "KERAS_FLOWS_CACHE"  # where a host keeps its working copies of remote stores
_CHUNK = 1 << 20  # an upload's writes (pyarrow gathers them into the parts of a multipart upload)
# a download's reads: pyarrow's S3 input stream sends a GET per read, so each costs a request's latency
# (a 200 MiB object from moto on loopback: 20.8 s in reads of 1 MiB, 1.3 s in reads of 32 MiB)
_DOWNLOAD_CHUNK = 32 << 20


def is_url(location: str | os.PathLike) -> bool:
    """A store or table named by a URL (``scheme://...``) rather than a local path."""
    return "://" in str(location)


def downloaded(url: str, folder: Path, option: str = "--data") -> Path:
    """A file named by a URL (a user's table in a bucket), copied into ``folder``: read from
    there like any local table, and hashed like one for the lineage."""
    remote = Remote(url, option)
    target = folder / hashlib.sha256(remote.url.encode()).hexdigest()[:16] / Path(remote.base).name
    if not remote.get("", target):
        raise DataError(f"{option} {remote.url}: no such object")
    return target


def quarantine_key(key: str) -> str:
    """Where a damaged artifact is moved aside (``_quarantine/<stage>/<name>.<time>``): kept, never deleted."""
    path = PurePosixPath(key)
    return f"_quarantine/{path.parent.name}/{path.name}.{time.time_ns()}"


class Remote:
    """One prefix of an object store, reached through ``pyarrow.fs``; keys are relative paths."""

    def __init__(self, url: str, option: str = "--artifacts"):
        import pyarrow as pa
        import pyarrow.fs as pafs

        parts = urllib.parse.urlsplit(url)
        if parts.username or parts.password:  # named without them
            shown = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname or ""))
            raise OptionError(f"{option} {shown}: credentials do not belong in the URL; set them the standard "
                              "way (for S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or a role)")
        self.url = url.rstrip("/")
        try:
            self.fs, self.base = pafs.FileSystem.from_uri(self.url)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as error:
            raise OptionError(f"{option} {self.url}: not a storage URL pyarrow can open ({error})") from None
        self.base = self.base.rstrip("/")

    @property
    def working_copy(self) -> Path:
        """This host's local copy of the store (the same folder for every process of the host)."""
        home = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "keras-flows")
        return home / "stores" / hashlib.sha256(self.url.encode()).hexdigest()[:16]

    def key(self, relative: str) -> str:
        """The object's path in the filesystem (``relative`` "" is the URL's own object)."""
        return "/".join(part for part in (self.base, relative) if part)

    def put(self, local: Path, relative: str) -> None:
        """Upload a finished local file; the object appears whole when the upload completes."""
        with open(local, "rb") as source, self.fs.open_output_stream(self.key(relative)) as target:
            shutil.copyfileobj(source, target, _CHUNK)

    def get(self, relative: str, local: Path) -> bool:
        """Download an object over ``local`` (atomically: a temp file, then a rename); False when
        there is no such object."""
        import pyarrow.fs as pafs

        if self.fs.get_file_info(self.key(relative)).type != pafs.FileType.File:
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as target, self.fs.open_input_stream(self.key(relative)) as source:
                shutil.copyfileobj(source, target, _DOWNLOAD_CHUNK)
            os.replace(tmp, local)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def files(self, relative: str = "") -> dict[str, int]:
        """Every object under ``relative`` (all of them for ""): relative key -> size."""
        import pyarrow.fs as pafs

        folder = self.key(relative).rstrip("/")
        selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
        start = len(self.base) + 1 if self.base else 0
        return {info.path[start:]: info.size for info in self.fs.get_file_info(selector)
                if info.type == pafs.FileType.File}

    def delete(self, relative: str) -> None:
        """Remove a folder: every object under it (a finished training's backup) and its markers."""
        import pyarrow.fs as pafs

        if self.fs.get_file_info(self.key(relative)).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.key(relative))

    def move(self, relative: str, to: str) -> None:
        """Move an object aside (a copy, then a delete, on stores without rename)."""
        import pyarrow.fs as pafs

        if self.fs.get_file_info(self.key(relative)).type == pafs.FileType.File:
            self.fs.move(self.key(relative), self.key(to))

    def quarantine(self, relative: str) -> str:
        """Move a damaged object aside, where the next reader does not take it; its new key."""
        target = quarantine_key(relative)
        self.move(relative, target)
        return target

    def size(self, relative: str) -> int | None:
        """An object's size in bytes (one metadata request), None when there is no such object."""
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(self.key(relative))
        return info.size if info.type == pafs.FileType.File else None


class WorkingCopy:
    """The store's side of a remote: ``root`` is the working copy, ``remote`` the bucket (or None
    for a folder store, where every method here does nothing)."""

    root: Path
    remote: Remote | None

    def _key(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()

    def push(self, path: Path) -> None:
        """Upload a file of the working copy (a no-op for a folder store)."""
        if self.remote:
            self.remote.put(Path(path), self._key(path))

    def push_folder(self, folder: Path) -> None:
        """Upload every file under a folder of the working copy (an export, a Data Docs site)."""
        if self.remote:
            for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".tmp-")):
                self.push(path)

    def pull(self, path: Path) -> bool:
        """Refresh a small file of the working copy (a sidecar, a cache entry, a history) from the
        bucket; False when the bucket has none (and the local copy, if any, is dropped)."""
        if not self.remote:
            return Path(path).exists()
        if self.remote.get(self._key(path), Path(path)):
            return True
        Path(path).unlink(missing_ok=True)
        return False

    def pull_folder(self, relative: str, every: bool = False) -> None:
        """Fetch what the bucket holds under a folder and this host lacks (or holds at another
        size); ``every``: all of it, the bucket's copy being the newer (a training's backup)."""
        if not self.remote:
            return
        for key, size in self.remote.files(relative).items():
            local = self.root / key
            if Path(key).name.startswith(".tmp-") or (not every and local.exists() and local.stat().st_size == size):
                continue
            self.remote.get(key, local)

    def drop_folder(self, relative: str) -> None:
        """Remove a folder of the working copy and, for a URL store, its objects in the bucket."""
        shutil.rmtree(self.root / relative, ignore_errors=True)
        if self.remote:
            self.remote.delete(relative)

    def url(self, path: str | os.PathLike) -> str:
        """Where an artifact is, as the user named the store: its path, or its URL in the bucket."""
        return f"{self.remote.url}/{Path(path).parent.name}/{Path(path).name}" if self.remote else str(path)
