"""Run the classification flow twice in one process; print timings per run and per stage.

Started as the CLI starts a run (Great Expectations' helper process, the embedded server
unless PREFECT_API_URL points at a running one, Keras on a side thread). The first run
includes Prefect's start-up; the second, with nothing changed, must reuse every stage.
"""
import json
import sys
import time


def stage_seconds(run_id: str) -> dict[str, float]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return {run.name.rsplit("-", 1)[0]: run.total_run_time.total_seconds() for run in runs}


def main(epochs: int, artifacts: str) -> dict:
    start = time.perf_counter()
    from flows.__main__ import started

    with started() as server:  # as the CLI starts a run
        from flows.classification import classification

        imported = time.perf_counter()
        with server.api():  # the CLI's defaults, the course's set-up
            first = classification(epochs=epochs, artifacts=artifacts)
            done_first = time.perf_counter()
            second = classification(epochs=epochs, artifacts=artifacts)
            done_second = time.perf_counter()
            stages, stages_second = stage_seconds(first["run_id"]), stage_seconds(second["run_id"])
    return {"import_seconds": imported - start, "first_seconds": done_first - imported,
            "second_seconds": done_second - done_first, "test": first["test"],
            "same_artifacts": first["artifacts"] == second["artifacts"],
            "stages": stages, "stages_second": stages_second}


if __name__ == "__main__":  # the helper process re-imports this file: start nothing there
    print(json.dumps(main(int(sys.argv[1]), sys.argv[2])))
