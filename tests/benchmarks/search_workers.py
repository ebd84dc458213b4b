"""Benchmark row f: the same search on 2 worker processes against 1, through the CLI.

    python tests/benchmarks/search_workers.py [--trials 4 16] [--epochs 30]

Equal trials (the course's space on California housing, a fixed number of epochs, no early
stopping: patience above the epochs), seeded, each run from a fresh artifact folder, so
every trial trains; worker start-up is inside the wall time. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import run, set_mirror  # noqa: E402


def measure(trials: int, epochs: int, work: Path) -> dict:
    """Wall seconds, peak RSS of all processes and the JSON summary, for 1 and 2 workers."""
    measured = {}
    for workers in (1, 2):
        command = [sys.executable, "-m", "flows", "search", "--strategy", "random", "--n-iter", str(trials),
                   "--epochs", str(epochs), "--patience", str(epochs + 1), "--workers", str(workers),
                   "--json", "--artifacts", str(work / f"{trials}-{workers}")]
        seconds, _, summary, peak = run(command)
        measured[workers] = {"seconds": seconds, "peak": peak, "summary": summary}
        print(f"{trials} trials, {workers} worker(s): {seconds:.1f} s, peak {peak:.0f} MiB, "
              f"epochs {summary['epochs']}, best {summary['best_params']}", flush=True)
    measured["speedup"] = measured[1]["seconds"] / measured[2]["seconds"]
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    set_mirror()
    work = Path(tempfile.mkdtemp(prefix="keras-flows-search-bench-"))
    rows = []
    for trials in args.trials:
        m = measure(trials, args.epochs, work)
        rows.append(f"| {trials} | {m[1]['seconds']:.1f} | {m[2]['seconds']:.1f} | **{m['speedup']:.2f}** | "
                    f"{m[1]['peak']:.0f} / {m[2]['peak']:.0f} | "
                    f"{m[1]['summary']['best_params'] == m[2]['summary']['best_params']} |")
    print(f"\n{args.epochs} epochs a trial, no early stopping; 2-core machine\n")
    print("| trials | 1 worker, s | 2 workers, s | speed-up | peak RSS, MiB (1 / 2 workers, all processes) "
          "| same best |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
