"""The streamed data stages' scans cut into parts that run side by side on the flow's task runner.

A scan that reduces a table to a few numbers (a validation point's profile, the scaler's moments)
is run over ``parts`` spans of rows, each a Prefect task (``scan-part``) submitted to the flow's
task runner, and the stage merges what the parts return, in order, into what one scan of the
whole table gives (its counts and moments to rounding, its example rows the same). A flow's
``--workers N`` sets the parts; its default runner runs them on threads of the flow's process,
where Arrow's decoding and numpy's arithmetic run without the GIL. Outside a flow run, or with
one part, the scan runs here, once. Spans start at multiples of the batch rows, so a part reads
whole row groups of the artifacts the streamed stages write. A part is sent the artifacts of a
store on object storage by their URLs (``sources.portable``): a Dask worker on another machine
reads them through its own working copy.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from tasks.stages.streamed_stats import rows_per_batch
from tasks.store.sources import parquet_file, portable

T = TypeVar("T")
Span = tuple[int, int]  # rows [start, stop) of a table


def spans(rows: int, parts: int, batch_rows: int | None = None) -> list[Span]:
    """``rows`` cut into at most ``parts`` spans of whole batches, in order."""
    batch = rows_per_batch(batch_rows)
    step = max(1, -(-rows // max(1, parts) // batch)) * batch if rows else batch
    return [(start, min(start + step, rows)) for start in range(0, max(rows, 1), step)]


def table_rows(path: str) -> int:
    """An artifact's rows, from its Parquet footer."""
    return parquet_file(path).metadata.num_rows


def rows_in(path: str, columns: list[str], span: Span, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of ``span`` of an artifact's ``columns``, a batch at a time, reading only the row
    groups that hold them (page by page, as ``streamed_stats.batches``)."""
    parquet = parquet_file(path, whole=True)
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
    ends = np.cumsum(sizes)
    groups = [i for i, end in enumerate(ends) if end > span[0] and end - sizes[i] < span[1]]
    if not groups:
        return
    at = int(ends[groups[0]] - sizes[groups[0]])
    for batch in parquet.iter_batches(batch_size=rows_per_batch(batch_rows), columns=columns, row_groups=groups):
        start, stop = max(span[0] - at, 0), min(span[1] - at, batch.num_rows)
        if stop > start:
            yield batch.slice(start, stop - start)
        at += batch.num_rows


@task(name="scan-part", cache_policy=NO_CACHE)
def scan_part(scan: Callable[..., T], span: Span, *args: Any) -> T:
    """One part of a stage's scan (see the module's text)."""
    return scan(span, *args)


def scanned(scan: Callable[..., T], rows: int, parts: int, *args: Any, batch_rows: int | None = None) -> list[T]:
    """``scan(span, *args)`` over each of ``parts`` spans of ``rows``: on the flow's task runner
    when in a flow run and there are several, else here; the results in the spans' order."""
    cut = spans(rows, parts, batch_rows)
    if len(cut) == 1 or FlowRunContext.get() is None:
        return [scan(span, *args) for span in cut]
    args = tuple(portable(a) if isinstance(a, str) else a for a in args)  # (a path that is not an artifact: itself)
    futures = [scan_part.with_options(task_run_name=f"{scan.__name__.strip('_')} rows {a:,}-{b:,}").submit(
        scan, (a, b), *args) for a, b in cut]
    return [future.result() for future in futures]
