"""How the training stage's default ``steps_per_execution`` was chosen: fit seconds per N.

    python tests/benchmarks/steps_per_execution.py [--values 1,8,16,32,64,128] [--epochs 4]

Trains the course's two default models with ``tasks.stages.train.train`` (the stage's own fit: its
callbacks, seeding and checkpoint) on the full scaled data, once per N, in this process;
prints fit seconds and the largest difference of each history from N=1's (the same steps
must give the same numbers). Needs DATA_MIRROR (or data/). Not collected by the test run.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", default="1,8,16,32,64,128")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    from bench import set_mirror

    set_mirror()
    import numpy as np

    from tasks.stages.load import load_california_housing, load_fashion_mnist
    from tasks.stages.scale import scale
    from tasks.stages.split import split
    from tasks.stages.train import train

    work = Path(tempfile.mkdtemp(prefix="keras-flows-spe-"))
    print("| model | N | fit s | largest history difference from N=1 |\n|---|---|---|---|")
    for model, loader in (("mlp", load_fashion_mnist), ("mlp30", load_california_housing)):
        raw = loader()[0]
        scaled = scale(raw, split(raw))[0]
        first = None
        for n in (int(v) for v in args.values.split(",")):
            result = train(scaled, model, work / f"{model}-{n}", epochs=args.epochs, batch_size=32, seed=42,
                           steps_per_execution=n)
            history = result.history.drop(columns="epoch").to_numpy()
            first = history if first is None else first
            gap = float(np.max(np.abs(history - first)))
            print(f"| {model} | {n} | {result.seconds:.1f} | {gap:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
