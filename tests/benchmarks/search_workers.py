"""Benchmark row f: the same search on 2 worker processes against 1, through the CLI.

    python tests/benchmarks/search_workers.py [--trials 4 16] [--epochs 30] [--rounds 1]

Equal trials (the course's space on California housing, a fixed number of epochs, no early
stopping: patience above the epochs), seeded, each run from a fresh artifact folder, so
every trial trains; worker start-up is inside the wall time. With ``--rounds`` above 1 the
order alternates (1 then 2 workers, then 2 then 1), so a machine that slows down or speeds
up during the benchmark tilts neither side; the table gives medians and each round's ratio.

The last line is the machine's own ceiling, measured in the same minutes: 4 of the search's
trainings without Prefect, all in one process (TensorFlow's default threads, as a one-worker
search trains) against 2 in each of two processes side by side (each with the thread limits
of a two-worker search: half the cores), training time only. The flow's speed-up cannot
exceed it by much.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ROOT, run, set_mirror  # noqa: E402


def _alternating(rounds: int, first, second):
    """``first`` and ``second`` in turn, the order swapped every other round, so that a machine
    that speeds up or slows down during a benchmark tilts neither side."""
    for round_ in range(rounds):
        yield round_, first
        yield round_, second
        first, second = second, first


def _search(trials: int, epochs: int, workers: int, artifacts: Path) -> dict:
    command = [sys.executable, "-m", "flows", "search", "--strategy", "random", "--n-iter", str(trials),
               "--epochs", str(epochs), "--patience", str(epochs + 1), "--workers", str(workers),
               "--json", "--artifacts", str(artifacts)]
    seconds, _, summary, peak = run(command)
    print(f"{trials} trials, {workers} worker(s): {seconds:.1f} s, peak {peak:.0f} MiB, "
          f"epochs {summary['epochs']}, best {summary['best_params']}", flush=True)
    return {"seconds": seconds, "peak": peak, "summary": summary, "artifacts": artifacts}


def measure(trials: int, epochs: int, work: Path, rounds: int = 1) -> dict:
    """Median wall seconds and peak RSS of all processes for 1 and 2 workers, each round's
    speed-up, and the JSON summaries of the first round."""
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for round_, workers in _alternating(rounds, 1, 2):
        runs[workers].append(_search(trials, epochs, workers, work / f"{trials}-{workers}-{round_}"))
    measured = {w: {"seconds": statistics.median(r["seconds"] for r in rs), "peak": max(r["peak"] for r in rs),
                    "summary": rs[0]["summary"], "artifacts": rs[0]["artifacts"]} for w, rs in runs.items()}
    measured["ratios"] = [one["seconds"] / two["seconds"] for one, two in zip(runs[1], runs[2])]
    measured["speedup"] = statistics.median(measured["ratios"])
    measured["same_best"] = all(r["summary"]["best_params"] == runs[1][0]["summary"]["best_params"]
                                for rs in runs.values() for r in rs)
    return measured


def _plain_trainings(scaled: str, configs: list[dict], epochs: int) -> float:
    """In a child process: train ``configs`` with the stage's own ``train()`` (no Prefect) once
    told to go (so that children side by side start together); the training seconds, imports
    and data reading excluded."""
    import keras  # noqa: F401  (train() imports it when called)

    from tasks.model.callbacks import Watch
    from tasks.stages.train import train
    from tasks.store.dataset import read_frame

    frame = read_frame(scaled)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    for config in configs:
        with tempfile.TemporaryDirectory() as folder:
            train(frame, "mlp30", Path(folder) / "work", epochs=epochs, batch_size=32, seed=42, hparams=config,
                  watch=Watch(patience=epochs + 1))
    return time.perf_counter() - start


def search_inputs(artifacts: Path, count: int) -> tuple[str, list[dict]]:
    """A finished search's scaled data file and its first ``count`` trials' parameters."""
    import pandas as pd

    table = pd.read_parquet(next((artifacts / "search").glob("*.parquet")))
    return (str(next((artifacts / "scaled").glob("*.parquet"))),
            table[["depth", "width", "learning_rate"]].head(count).to_dict("records"))


def together(code: str, scaled: str, parts: list[list[dict]], epochs: int, env: dict[str, str]) -> list[str]:
    """Run ``python -c code BENCH_DIR SCALED PART EPOCHS`` once per part, all at the same time:
    each child prints "ready" once its imports and data are in, then waits for a line on stdin;
    all are told to go only when all are ready, and every one before any is waited for (a
    ``communicate`` per child in turn would let the second start only once the first ended).
    The last line each child printed, in order."""
    children = [subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).resolve().parent), scaled,
                                  json.dumps(part), str(epochs)], cwd=ROOT, text=True, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **env})
                for part in parts]
    try:
        for child in children:
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a plain training did not start:\n{child.stderr.read()[-3000:]}")
        for child in children:  # the signal to all first, then the waiting
            child.stdin.write("go\n")
            child.stdin.flush()
        with ThreadPoolExecutor(len(children)) as waiting:  # no child blocks on a full pipe meanwhile
            outs = [(out, err, child.returncode)
                    for child, (out, err) in zip(children, waiting.map(subprocess.Popen.communicate, children))]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for _out, err, code_ in outs:
        if code_ != 0:
            raise RuntimeError(f"a plain training failed:\n{err[-3000:]}")
    return [out.strip().splitlines()[-1] for out, _, _ in outs]


def ceiling(search_artifacts: Path, epochs: int, rounds: int = 1, count: int = 4) -> dict:
    """The first ``count`` trainings of a finished search, plainly: all in one process after one
    another against half in each of two processes side by side (alternating which goes first,
    as ``measure`` does); the median speed-up of training time."""
    from tasks.search.plan import thread_limits

    scaled, configs = search_inputs(search_artifacts, count)
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from search_workers import _plain_trainings; "
            "print(_plain_trainings(sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])))")

    def seconds(parts: list[list[dict]], env: dict[str, str]) -> float:
        return max(float(out) for out in together(code, scaled, parts, epochs, env))

    half, runs = len(configs) // 2, {"alone": [], "side_by_side": []}
    for _, side in _alternating(rounds, "alone", "side_by_side"):
        runs[side].append(seconds([configs], {}) if side == "alone" else
                          seconds([configs[:half], configs[half:]], thread_limits(2)))
    ratios = [alone / both for alone, both in zip(runs["alone"], runs["side_by_side"])]
    return {"alone": statistics.median(runs["alone"]), "side_by_side": statistics.median(runs["side_by_side"]),
            "ratios": ratios, "speedup": statistics.median(ratios), "count": len(configs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each side, in alternating order")
    args = parser.parse_args()
    set_mirror()
    work = Path(tempfile.mkdtemp(prefix="keras-flows-search-bench-"))
    rows = []
    for trials in args.trials:
        m = measure(trials, args.epochs, work, args.rounds)
        rows.append(f"| {trials} | {m[1]['seconds']:.1f} | {m[2]['seconds']:.1f} | **{m['speedup']:.2f}** | "
                    f"{', '.join(f'{r:.2f}' for r in m['ratios'])} | "
                    f"{m[1]['peak']:.0f} / {m[2]['peak']:.0f} | {m['same_best']} |")
    top = ceiling(m[1]["artifacts"], args.epochs, args.rounds)  # on the last search's data and trials
    print(f"\n{args.epochs} epochs a trial, no early stopping; {os.cpu_count()}-core machine; "
          f"{args.rounds} round(s), medians\n")
    print("| trials | 1 worker, s | 2 workers, s | speed-up | each round | peak RSS, MiB (1 / 2 workers, all "
          "processes) | same best |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nThe machine's ceiling, the same minutes: {top['count']} of these trainings without Prefect, "
          f"one process {top['alone']:.1f} s, two side by side {top['side_by_side']:.1f} s: "
          f"**{top['speedup']:.2f}** (each round: {', '.join(f'{r:.2f}' for r in top['ratios'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
