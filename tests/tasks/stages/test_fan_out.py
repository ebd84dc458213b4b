"""A streamed stage's scan cut into spans of rows: the spans cover the table once, in order; a
span reads exactly its rows from row groups of any size; in a flow run the parts are Prefect
task runs on the flow's task runner, their results in the spans' order."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.runtime import flow_run

from tasks.stages.fan_out import rows_in, scanned, spans


def uneven_groups(tmp_path, rows: int = 3_000):
    """A table of ``rows`` row ids in row groups of 300, 700, 300, 700, ... rows."""
    path = tmp_path / "uneven.parquet"
    with pq.ParquetWriter(path, pa.schema([("row_id", pa.int64())])) as writer:
        start = 0
        while start < rows:
            size = min(300 if (start // 1_000) * 1_000 == start else 700, rows - start)
            writer.write_table(pa.table({"row_id": np.arange(start, start + size)}))
            start += size
    assert pq.ParquetFile(path).metadata.num_row_groups > 4
    return str(path)


def test_spans_cover_the_rows_once_in_whole_batches():
    assert spans(3_000, 3, 400) == [(0, 1_200), (1_200, 2_400), (2_400, 3_000)]
    assert spans(3_000, 1, 400) == [(0, 3_000)]
    assert spans(10, 4, 400) == [(0, 10)]  # never a span of no rows beside one of rows
    assert spans(0, 2, 400) == [(0, 0)]
    cut = spans(1_000_003, 7, 1_000)
    assert cut[0][0] == 0 and cut[-1][1] == 1_000_003 and len(cut) == 7
    assert all(a[1] == b[0] and a[1] % 1_000 == 0 for a, b in zip(cut, cut[1:]))


def ids(path, span, batch_rows=256):
    return np.concatenate([b.column(0).to_numpy() for b in rows_in(path, ["row_id"], span, batch_rows)] or [[]])


def test_a_span_reads_exactly_its_rows_from_row_groups_of_any_size(tmp_path):
    path = uneven_groups(tmp_path)
    assert np.array_equal(ids(path, (1_150, 2_333)), np.arange(1_150, 2_333))  # from mid-group to mid-group
    assert np.array_equal(np.concatenate([ids(path, s) for s in spans(3_000, 4, 256)]), np.arange(3_000))
    assert len(ids(path, (3_000, 3_000))) == 0


def rows_and_sum(span, path):
    """A scan: the span's rows and their ids' sum."""
    got = ids(path, span)
    return len(got), int(got.sum())


def test_in_a_flow_run_the_parts_run_as_task_runs_and_come_back_in_order(tmp_path):
    path = uneven_groups(tmp_path)

    @flow
    def scan_in_parts():
        return str(flow_run.id), scanned(rows_and_sum, 3_000, 3, path, batch_rows=400)

    run_id, parts = scan_in_parts()
    assert parts == [(1_200, sum(range(1_200))), (1_200, sum(range(1_200, 2_400))), (600, sum(range(2_400, 3_000)))]
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    assert sorted(run.name for run in runs) == ["rows_and_sum rows 0-1,200", "rows_and_sum rows 1,200-2,400",
                                               "rows_and_sum rows 2,400-3,000"]
    assert {run.state_type.value for run in runs} == {"COMPLETED"}
    assert scanned(rows_and_sum, 3_000, 3, path, batch_rows=400) == parts  # outside a flow run: here, in turn
