"""Benchmark: the regression flow on a big housing-like table, streamed (issue 35).

    DATA_MIRROR=... python tests/benchmarks/big_flow.py [--rows 50000000] [--stream auto|yes|no]
        [--epochs 1] [--batch-size 4096] [--workers 1 [2 ...]] [--runner thread|dask] [--region]

Writes the table with big_table.py (Parquet, in its own process), then runs
``regression(data=..., target="MedHouseVal", epochs=1, batch_size=4096, stream=...)`` in a fresh
process as the CLI starts it (the embedded server included), sampling the resident memory of
that process and its children together every 50 ms. Prints one markdown table: each stage's
seconds and rows per second, the data stages' sum, the flow's seconds, the peak memory of all
its processes, and the test MSE; then the predict flow scores the whole table with the new
champion in the same process (its seconds; the peak covers it too). With several ``--workers``,
one run each on the same table (a fresh store each), then the data stages' seconds of the first
against each other's. ``--region``: the table has big_table.py's categorical column too. The
table and the stores are deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = "MedHouseVal"
DATA_STAGES = ("load", "validate-raw", "split", "validate-split", "scale", "validate-scaled")


def child(table: str, artifacts: str, epochs: int, batch_size: int, stream: str, workers: int, runner: str) -> dict:
    """One regression flow, started as the CLI starts it; its stages' seconds from Prefect."""
    from bench import tree_rss_mib
    from run_flow import stage_seconds

    from flows.__main__ import started

    samples, done = [], threading.Event()  # (time, MiB of this process and its children), every 50 ms

    def sample() -> None:
        while not done.wait(0.05):
            samples.append((time.time(), tree_rss_mib(os.getpid())))
    threading.Thread(target=sample, daemon=True).start()
    with started() as server:
        from flows.launch.runners import with_runner
        from flows.predict import predict
        from flows.regression import regression

        with server.api():
            begun = time.perf_counter()
            flow = with_runner(regression, workers, "dask") if runner == "dask" else regression
            result = flow(epochs=epochs, batch_size=batch_size, data=table, target=TARGET, artifacts=artifacts,
                                stream={"yes": True, "no": False}.get(stream), workers=workers)
            seconds = time.perf_counter() - begun
            stages, peaks = stage_seconds(result["run_id"]), stage_peaks(result["run_id"], samples)
            begun, since = time.perf_counter(), time.time()  # then the whole table scored by the new champion
            scored = predict(data=table, stream={"yes": True, "no": False}.get(stream), artifacts=artifacts)
            stages["predict (the whole table)"] = time.perf_counter() - begun
            peaks["predict (the whole table)"] = max(m for t, m in samples if t >= since)
    done.set()
    return {"flow_seconds": seconds, "stages": stages, "peaks": peaks, "test": result["test"],
            "scored": scored["rows"]}


def stage_peaks(run_id: str, samples: list[tuple[float, float]]) -> dict[str, float]:
    """Each stage's peak memory of all the process's processes, from the samples within its run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return {run.name.rsplit("-", 1)[0]: max((m for t, m in samples if run.start_time.timestamp() <= t
                                             <= run.end_time.timestamp()), default=0.0)
            for run in runs if run.start_time and run.end_time and " rows " not in run.name}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--stream", choices=("auto", "yes", "no"), default="auto")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="the flow's --workers, a run each")
    parser.add_argument("--runner", choices=("thread", "dask"), default="thread", help="the flow's --runner")
    parser.add_argument("--region", action="store_true", help="a categorical column of five regions too")
    args = parser.parse_args()
    from bench import run, set_mirror

    set_mirror()
    with tempfile.TemporaryDirectory(prefix="keras-flows-big-") as folder:
        work = Path(folder)
        table = work / "big.parquet"
        subprocess.run([sys.executable, str(HERE / "big_table.py"), str(table), "--rows", str(args.rows),
                        *(["--region"] if args.region else [])], check=True, stdout=subprocess.DEVNULL)
        data_seconds = {}
        for workers in args.workers:
            os.sync()  # no run pays for writing back what was written before it (the table, the last run's store)
            data_seconds[workers] = report(args, table, *run([
                sys.executable, str(HERE / "big_flow.py"), "--child", str(table), str(work / "artifacts"),
                str(args.epochs), str(args.batch_size), args.stream, str(workers), args.runner]), workers)
            shutil.rmtree(work / "artifacts")
        first = args.workers[0]
        for workers, seconds in list(data_seconds.items())[1:]:
            print(f"data stages, {first} worker(s) / {workers}: {data_seconds[first] / seconds:.2f}")
    return 0


def report(args, table: Path, wall: float, own: float, result: dict, peak: float, workers: int) -> float:
    """Print one run's table; its data stages' seconds."""
    stages = result["stages"]
    print(f"\nRegression flow on {args.rows:,} rows ({table.stat().st_size / 2**20:,.0f} MiB Parquet), "
          f"--stream {args.stream}, --epochs {args.epochs} --batch-size {args.batch_size} --workers {workers} "
          f"--runner {args.runner}{' (with a categorical column)' if args.region else ''}\n")
    print("| stage | seconds | rows / s | peak MiB, all processes |\n|---|---|---|---|")
    for stage in (*DATA_STAGES, "train", "evaluate", "report", "champion", "predict (the whole table)"):
        if stage in stages:
            print(f"| {stage} | {stages[stage]:.1f} | {args.rows / stages[stage]:,.0f} | "
                  f"{result['peaks'].get(stage, 0):,.0f} |")
    data = sum(stages.get(stage, 0.0) for stage in DATA_STAGES)
    print(f"| data stages | {data:.1f} | {args.rows / data:,.0f} |")
    print(f"| whole flow (after start-up) | {result['flow_seconds']:.1f} | |")
    print(f"| process wall (start-up included) | {wall:.1f} | |")
    print(f"\npeak RSS, all processes: {peak:,.0f} MiB (the flow's own: {own:,.0f} MiB); "
          f"test {json.dumps(result['test'])}", flush=True)
    return data


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        table, artifacts, epochs, batch, stream, workers, runner = sys.argv[2:9]
        print(json.dumps(child(table, artifacts, int(epochs), int(batch), stream, int(workers), runner)))
        sys.exit(0)
    sys.exit(main())
