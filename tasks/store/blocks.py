"""Block digests: an object in a bucket read by ranges, each range checked against its name.

An artifact's name is the sha256 of all its bytes, which a reader can check only by reading them
all. A reader that needs a slice of a big table in a bucket (the test rows, one span of a scan)
should not download the whole object for it, nor read bytes nobody checked. So an artifact written
into a store on object storage also records, in its lineage sidecar, the sha256 of each
``BLOCK_BYTES`` block of its bytes (``BlockDigests``, computed while the bytes are written, in the
same pass as the whole digest). ``CheckedObject`` is a read-only, seekable file over the object
that fetches whole blocks by range requests, checks each against its digest before handing out a
byte of it, and keeps the last few: ``pyarrow.parquet.ParquetFile`` over it reads the footer and
the column chunks it needs, and nothing else is fetched.

A block that does not match its digest (the object changed in the bucket since it was written)
is never read: the object is moved aside under ``_quarantine/`` (kept, never deleted) and the
reader fails with ``DamagedObject`` naming the object and the block; the next run finds the
artifact gone, and the stage that wrote it runs again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import threading
from collections import OrderedDict
from typing import Any

from tasks.core.errors import DataError

BLOCK_BYTES = 8 * 2**20  # a range request's size: large enough to amortise a request, small beside a table
HELD_BLOCKS = 4  # blocks kept after they were checked (a column chunk rarely spans more)
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (an artifact's name)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class DamagedObject(DataError):
    """An object in the bucket whose bytes no longer match the digests recorded when it was written."""


@dataclasses.dataclass(frozen=True)
class Blocks:
    """An object's size and the sha256 of each of its blocks (the last one shorter), in order."""

    size: int
    block_bytes: int
    sha256: tuple[str, ...]

    def span(self, index: int) -> tuple[int, int]:
        """Where block ``index`` starts and how many bytes it holds."""
        start = index * self.block_bytes
        return start, min(self.block_bytes, self.size - start)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Blocks:
        return cls(int(raw["size"]), int(raw["block_bytes"]), tuple(raw["sha256"]))


class BlockDigests:
    """The block digests of bytes written in order, however they are cut into writes."""

    def __init__(self, block_bytes: int | None = None):
        self.block_bytes = block_bytes or BLOCK_BYTES
        self.digests: list[str] = []
        self.current, self.filled, self.size = hashlib.sha256(), 0, 0

    def update(self, data) -> None:
        view = memoryview(data).cast("B")
        self.size += len(view)
        while len(view):
            take = min(len(view), self.block_bytes - self.filled)
            self.current.update(view[:take])
            self.filled += take
            view = view[take:]
            if self.filled == self.block_bytes:
                self.digests.append(self.current.hexdigest())
                self.current, self.filled = hashlib.sha256(), 0

    def result(self) -> Blocks:
        last = [self.current.hexdigest()] if self.filled or not self.digests else []
        return Blocks(self.size, self.block_bytes, tuple(self.digests + last))


class HashingWriter:
    """A file wrapper that hashes every byte on its way to disk (one pass, no copy), and for a
    store on object storage also each block's (``tasks/store/blocks.py``)."""

    def __init__(self, raw, blocks: bool = False):
        self.raw, self.digest = raw, hashlib.sha256()
        self.blocks = BlockDigests() if blocks else None

    def write(self, data) -> int:
        self.digest.update(data)
        if self.blocks is not None:
            self.blocks.update(data)
        return self.raw.write(data)

    def facts(self) -> dict[str, Any]:
        """What the lineage records of the bytes beyond their name: their block digests, if kept."""
        return {"blocks": self.blocks.result()} if self.blocks is not None else {}

    def __getattr__(self, name):
        return getattr(self.raw, name)


# Bytes and blocks fetched by range in this process, for the log and for tests that check a slice
# was read without the whole object
FETCHED = {"blocks": 0, "bytes": 0}


class CheckedObject(io.RawIOBase):
    """An object of a bucket as a read-only file whose every byte was checked against its block's
    digest before it is read. ``remote`` is a ``tasks.store.remote.Remote``, ``key`` the object's
    key relative to it; ``quarantine(key)`` moves a damaged object aside and says where."""

    def __init__(self, remote, key: str, blocks: Blocks, quarantine):
        super().__init__()
        self.remote, self.key, self.blocks, self.quarantine = remote, key, blocks, quarantine
        self.position, self.damage = 0, None
        self.held: OrderedDict[int, bytes] = OrderedDict()
        self.lock = threading.Lock()  # pyarrow may read column chunks from several threads
        self.source = remote.fs.open_input_file(remote.key(key))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.blocks.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def read(self, size: int = -1) -> bytes:
        end = self.blocks.size if size is None or size < 0 else min(self.blocks.size, self.position + size)
        parts = []
        with self.lock:
            if self.damage is not None:  # every later read fails as the first did (pyarrow reads on threads)
                raise self.damage
            while self.position < end:
                index = self.position // self.blocks.block_bytes
                start, _ = self.blocks.span(index)
                block = self._block(index)
                piece = block[self.position - start:end - start]
                parts.append(piece)
                self.position += len(piece)
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)

    def _block(self, index: int) -> bytes:
        if index in self.held:
            self.held.move_to_end(index)
            return self.held[index]
        start, length = self.blocks.span(index)
        data = self.source.read_at(length, start)  # a bucket not answering raises OSError: a stage retries it
        if len(data) < length and len(data) < self.source.size() - start:  # cut short on the way: not damage
            raise OSError(f"{self.remote.url}/{self.key}: {len(data):,} of {length:,} bytes came back; try again")
        if hashlib.sha256(data).hexdigest() != self.blocks.sha256[index]:
            where = self.quarantine(self.key)
            raise self._damaged(DamagedObject(
                f"{self.remote.url}/{self.key}: bytes {start:,}-{start + length - 1:,} (block {index + 1} of "
                f"{len(self.blocks.sha256)}) changed in the bucket since they were written; the object was moved "
                f"to {self.remote.url}/{where}: run the flow again, and the stage that wrote it writes it back"))
        FETCHED["blocks"] += 1
        FETCHED["bytes"] += length
        self.held[index] = data
        while len(self.held) > HELD_BLOCKS:
            self.held.popitem(last=False)
        return data

    def _damaged(self, error: DataError) -> DataError:
        self.damage = error
        return error

    def close(self) -> None:
        if not self.closed:
            self.source.close()
        super().close()
