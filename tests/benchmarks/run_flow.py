"""Run the classification flow twice in one process; print timings per run and per stage.

The first run includes Prefect's start-up (the embedded server, unless PREFECT_API_URL
points at a running one); the second, with nothing changed, must reuse every stage.
"""
import json
import sys
import time

start = time.perf_counter()
from flows.__main__ import prefetch  # noqa: E402
from tasks.gx import start_worker  # noqa: E402

start_worker()  # as the CLI does
prefetch("keras")
from flows.classification import classification  # noqa: E402
from tasks.params import TrainParams  # noqa: E402


def stage_seconds(run_id: str) -> dict[str, float]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return {run.name.rsplit("-", 1)[0]: run.total_run_time.total_seconds() for run in runs}


epochs, artifacts = int(sys.argv[1]), sys.argv[2]
imported = time.perf_counter()
params = TrainParams("mlp", epochs=epochs, seed=42)
first = classification(train=params, artifacts=artifacts)
done_first = time.perf_counter()
second = classification(train=params, artifacts=artifacts)
done_second = time.perf_counter()
print(json.dumps({
    "import_seconds": imported - start, "first_seconds": done_first - imported,
    "second_seconds": done_second - done_first, "test": first["test"],
    "same_artifacts": first["artifacts"] == second["artifacts"],
    "stages": stage_seconds(first["run_id"]), "stages_second": stage_seconds(second["run_id"])}))
