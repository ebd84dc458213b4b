"""Benchmark rows g and h: the production set-up's costs, on this machine.

    python tests/benchmarks/production.py g [--rounds 3] [--epochs 5]
    python tests/benchmarks/production.py h [--runs 8] [--epochs 5]

g. The regression flow (the housing data, the command line as a user runs it) with its store in an
   S3 bucket (moto's server on 127.0.0.1) against a local folder, alternating, a fresh store each
   time: the ratio of the medians of their wall seconds (target <= 1.15).
h. ``--runs`` regression runs of the ``regression/housing`` deployment, all scheduled at once on a
   Prefect server (PostgreSQL), drained by one process worker and then by two (``--limit 1`` each,
   stores on S3, locks on Redis): the ratio of the seconds until the last run finished (target >=
   1.7). Each run trains with its own seed, so that no run reuses another's training.

Prints one markdown table. Needs DATA_MIRROR, PostgreSQL and redis-server (tests/e2e/debian-packages.sh).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.services import postgres, prefect_server, redis_server, s3_server, stop  # noqa: E402


def _aws(s3: dict) -> dict[str, str]:
    return {k: v for k, v in s3.items() if k.startswith("AWS_")}


def row_g(rounds: int, epochs: int) -> None:
    seconds: dict[str, list[float]] = {"local folder": [], "S3 bucket": []}
    with s3_server() as s3, tempfile.TemporaryDirectory() as work:
        env = {**os.environ, **_aws(s3), "KERAS_FLOWS_CACHE": f"{work}/cache"}
        for round_ in range(rounds):
            stores = (("local folder", f"{work}/local-{round_}"), ("S3 bucket", f"s3://{s3['bucket']}/r{round_}"))
            for name, store in stores:
                begun = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "flows", "regression", "--epochs", str(epochs),
                                       "--artifacts", store], cwd=ROOT, env=env, capture_output=True, text=True)
                assert done.returncode == 0, done.stderr[-2000:]
                seconds[name].append(time.perf_counter() - begun)
                print(f"round {round_ + 1}: {name} {seconds[name][-1]:.1f} s", flush=True)
    local, s3_ = (statistics.median(seconds[k]) for k in ("local folder", "S3 bucket"))
    print(f"\n| store | wall s, median (all) |\n|---|---|\n| local folder | {local:.1f} "
          f"({', '.join(f'{s:.1f}' for s in seconds['local folder'])}) |\n| S3 bucket | {s3_:.1f} "
          f"({', '.join(f'{s:.1f}' for s in seconds['S3 bucket'])}) |\n"
          f"| g. S3 / local | {s3_ / local:.2f} (target <= 1.15) |")


def _drain(api, env: dict, base: Path, workers: int, runs: int, epochs: int, round_: int) -> float:
    from tests.e2e.test_deployments import online, start_deployment, wait, worker

    production = {"env": env, "api": api}
    names = [f"w{round_}-{i}" for i in range(workers)]
    started = [worker(api.url, base / name, name, {k: env[k] for k in env if k.startswith(("AWS_", "KERAS_FLOWS_"))})
               for name in names]
    try:
        online(api, set(names))
        begun = time.perf_counter()
        ids = [start_deployment(production, "regression/housing", epochs=epochs, seed=1000 * round_ + i)
               for i in range(runs)]
        states = [wait(api, run_id, 3600)["state_type"] for run_id in ids]
        assert states == ["COMPLETED"] * runs, states
        return time.perf_counter() - begun
    finally:
        for process in started:
            stop(process)


def row_h(runs: int, epochs: int) -> None:
    from tests.e2e.test_deployments import POOL, prefect

    with tempfile.TemporaryDirectory() as work, postgres() as database, prefect_server(database) as api, \
            s3_server() as s3, redis_server() as locks:
        base = Path(work)
        env = {**os.environ, **_aws(s3), "PREFECT_API_URL": api.url, "PREFECT_HOME": f"{work}/deployer",
               "KERAS_FLOWS_REPOSITORY": str(ROOT), "KERAS_FLOWS_ARTIFACTS": f"s3://{s3['bucket']}/h",
               "KERAS_FLOWS_LOCKS": locks}
        prefect(env, "work-pool", "create", POOL, "--type", "process")
        prefect(env, "--no-prompt", "deploy", "--all")
        one = _drain(api, env, base, 1, runs, epochs, 1)
        print(f"1 worker: {one:.1f} s", flush=True)
        two = _drain(api, env, base, 2, runs, epochs, 2)
        print(f"2 workers: {two:.1f} s", flush=True)
    print(f"\n| workers | {runs} runs drained, s |\n|---|---|\n| 1 | {one:.1f} |\n| 2 | {two:.1f} |\n"
          f"| h. 1 worker / 2 workers | {one / two:.2f} (target >= 1.7) |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", choices=["g", "h"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    options = parser.parse_args()
    row_g(options.rounds, options.epochs) if options.row == "g" else row_h(options.runs, options.epochs)
