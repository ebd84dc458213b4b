"""Every search strategy at an equal budget on California housing, through the CLI.

    python tests/benchmarks/strategies.py [--strategies random halving ...] [--n-iter 10] [--workers 2]
        [--space SPACE] [--epochs 100] [--patience 10] [--min-delta 0] [--artifacts DIR]

Each strategy runs ``python -m flows search`` with the same fixed training settings and
trial budget (sweep: the course's six learning rates; grid: 2 points per parameter), each in
a fresh artifact folder of its own, so that every trial trains and the wall times compare.
Prints one markdown row per strategy: best validation MSE, its test MSE, trials, total
epochs, wall time and the best parameters.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import run, set_mirror  # noqa: E402

ALL = ["sweep", "grid", "random", "genetic", "heuristic", "halving", "sklearn-random"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", nargs="+", default=ALL)
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--space")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--min-delta", type=float, default=0.0)
    parser.add_argument("--artifacts", default=None)
    parser.add_argument("--extra", default="", help="more options for every run, e.g. '--population 5'")
    args = parser.parse_args()
    set_mirror()
    artifacts = args.artifacts or tempfile.mkdtemp(prefix="keras-flows-strategies-")
    fixed = ["--epochs", str(args.epochs), "--patience", str(args.patience), "--min-delta", str(args.min_delta),
             "--workers", str(args.workers), "--json", *args.extra.split()]
    rows = []
    for strategy in args.strategies:
        budget = [] if strategy == "sweep" else ["--n-iter", str(args.n_iter)]
        if strategy == "grid":
            budget = ["--grid-points", "2"]
        space = ["--space", args.space] if args.space and strategy != "sweep" else []
        seconds, _, out, _ = run([sys.executable, "-m", "flows", "search", "--strategy", strategy, *budget, *space,
                                  *fixed, "--artifacts", str(Path(artifacts) / strategy)])
        trials = sum(out["trials"].values())
        row = (f"| {strategy} | {out['best_val_loss']:.4f} | {out['test']['loss']:.4f} | {trials} "
               f"({', '.join(f'{k} {v}' for k, v in out['trials'].items())}) | {out['epochs']} | {seconds / 60:.1f} | "
               + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in out["best_params"].items())
               + " |")
        print(row, flush=True)
        rows.append(row)
    print(f"\n{args.epochs} epochs at most, EarlyStopping patience {args.patience}, min_delta {args.min_delta}; "
          f"{args.workers} workers; artifacts in {artifacts}\n")
    print("| strategy | best valid MSE | its test MSE | trials | total epochs | wall min | best parameters |\n"
          "|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
