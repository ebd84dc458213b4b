"""The data stages' streamed bodies, for a table larger than memory.

A table is streamed when asked (``--stream``) or, by default, when its values would take more
than ``STREAM_BYTES`` in memory (a Parquet file's rows x columns x 8 bytes, a CSV's size); the
course's datasets are streamed only when asked. The load records the choice in the spec
(``DatasetSpec.streamed``), so every later stage reads it from its input and takes the same
path; the artifacts keep their stage names, layouts and lineage, and only their row groups
differ. The stage tasks call these functions in place of their in-memory bodies.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.errors import DataError, OptionError
from tasks.stages.split_stream import split_batches
from tasks.stages.streamed_stats import rows_per_batch
from tasks.stages.table import table_kind
from tasks.stages.table_stream import StreamedTable, is_text_type
from tasks.store.artifacts import ArtifactRef
from tasks.store.dataset import Frame, to_arrow
from tasks.store.lineage import RawFile
from tasks.store.remote import is_url

STREAM_BYTES = 2**30
SPLIT_IN_MEMORY_ROWS = 5_000_000  # up to here, the course's seeded split (it holds every row id and target)


def streams(source, stream: bool | None) -> bool:
    """Whether a flow's ``Source`` (tasks/stages/load.py) is streamed: as asked (``stream``), else
    by its size, for a local table whose columns a stream takes (see the module's text). A table
    named by a URL is streamed only when asked."""
    if stream is not None:
        return stream
    if source.path is None or is_url(source.path):
        return False
    path = Path(source.path)
    if not path.is_file():
        return False  # the load names the missing file
    if table_kind(path) == "parquet":
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError):
            return False  # the load names what is wrong with the file
        labels = schema.field(source.target).type if source.target in schema.names else None
        if source.task == "classification" and labels is not None and is_text_type(labels):
            return False  # text labels are coded in sorted order, which needs every row first
    return (values_bytes(path) or 0) > STREAM_BYTES


def values_bytes(path: Path) -> int | None:
    """What a table's values would take in memory, near enough to choose the path: a Parquet
    file's rows x columns x 8 bytes, a CSV's size; None for a file that cannot be read as one."""
    if table_kind(path) == "parquet":
        try:
            meta = pq.ParquetFile(path).metadata
        except (pa.ArrowException, OSError):
            return None
        return meta.num_rows * meta.num_columns * 8
    return path.stat().st_size


def put_raw(run, source) -> ArtifactRef:
    """The raw artifact of a streamed ``Source`` (tasks/stages/load.py): a user's table a batch at a
    time, never whole in memory; the course's datasets (small) read whole, written as row groups."""
    if source.path is None:
        frame, files = source.read()
        if frame.spec.is_image:
            raise OptionError(f"--stream: {frame.spec.name} is images, which are not streamed (they fit in memory); "
                              "run it without --stream")
        run.parents = [RawFile(*f.split(":")) for f in files]
        spec = frame.spec.replace(streamed=True)
        table = to_arrow(Frame(spec, frame.X, frame.y, frame.row_id, frame.split, frame.text))
        return run.put_batches(table.to_batches(max_chunksize=rows_per_batch()))
    if not source.target:
        raise DataError("--data needs --target COLUMN (the label or value column)")
    run.parents = [RawFile(*f.split(":")) for f in source.identity()]
    return run.put_batches(StreamedTable(source.local, source.target, source.task, source.table).batches())


def index_batches(raw_path: str, rows: int, in_memory) -> Iterator[pa.RecordBatch]:
    """The split index: the in-memory split's (``in_memory()``, a table) up to
    ``SPLIT_IN_MEMORY_ROWS`` rows, so the course's data keeps the course's split; past that,
    the seeded hash split, a row group at a time."""
    if rows <= SPLIT_IN_MEMORY_ROWS:
        yield from in_memory().to_batches(max_chunksize=rows_per_batch())
    else:
        yield from split_batches(raw_path)
