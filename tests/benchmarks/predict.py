"""Benchmark: ``python -m flows predict`` on the 10,000 Fashion-MNIST test images against the
least a user would run: Prefect's start-up plus ``model.predict`` on the same arrays.

    python tests/benchmarks/predict.py [--reps 3]

Trains the course MLP once (1 epoch: the model's quality does not change the cost of scoring),
then, each rep in a fresh process: the CLI's predict (its predictions folder and cache entry
removed first, so it checks and scores again), and a plain script that starts the same embedded
server, loads the model, reads and scales the images and calls ``model.predict``. Prints one
markdown table; the target is a ratio of at most 1.5. Not collected by the default test run.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGES = "t10k-images-idx3-ubyte.gz"

PLAIN = """
import gzip, json, os, sys, time
start = time.perf_counter()
from flows.__main__ import started
with started() as server:
    with server.api():
        import numpy as np, pyarrow.parquet as pq
        from tasks.model import files as model_files
        from tasks.stages.load import parse_idx
        from tasks.stages.scale import StandardScaler
        model_path, scaler_path, images = sys.argv[1:4]
        X = parse_idx(gzip.decompress(open(images, "rb").read()), "images", ndim=3).reshape(10000, -1)
        X = StandardScaler.from_arrow(pq.read_table(scaler_path)).transform(X).reshape(-1, 28, 28)
        model = model_files.load(model_path)
        predicted = model.predict(X, batch_size=4096, verbose=0).argmax(axis=1)
print(json.dumps({"seconds": time.perf_counter() - start, "rows": int(len(predicted))}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    from bench import run, set_mirror

    set_mirror()
    import os

    images = Path(os.environ["DATA_MIRROR"]) / "fashion-mnist" / IMAGES
    work = Path(tempfile.mkdtemp(prefix="keras-flows-predict-"))
    artifacts = work / "artifacts"
    run([sys.executable, "-m", "flows", "classification", "--epochs", "1", "--artifacts", str(artifacts), "--json"])
    from tasks.serving.champion import champion_for
    from tasks.store.artifacts import ArtifactStore

    champion = champion_for(ArtifactStore(artifacts), None)
    flow, plain = [], []
    for _ in range(args.reps):
        for folder in (artifacts / "predictions", artifacts / "_cache" / "predictions"):
            shutil.rmtree(folder, ignore_errors=True)
        flow.append(run([sys.executable, "-m", "flows", "predict", "--data", str(images), "--artifacts",
                         str(artifacts), "--json"])[0])
        plain.append(run([sys.executable, "-c", PLAIN, champion.model.path, champion.scaler.path, str(images)])[0])
    ratio = statistics.median(f / p for f, p in zip(flow, plain))
    print(f"\npredict on the {IMAGES} (10,000 images), {args.reps} reps, median (min..max); {os.cpu_count()} cores\n")
    print("| measure | value | target |\n|---|---|---|")
    print(f"| `python -m flows predict`, wall s | {statistics.median(flow):.2f} ({min(flow):.2f}..{max(flow):.2f}) | |")
    print(f"| Prefect start-up + model.predict, wall s | {statistics.median(plain):.2f} "
          f"({min(plain):.2f}..{max(plain):.2f}) | |")
    print(f"| ratio | {ratio:.2f} | <= 1.5 {'✓' if ratio <= 1.5 else '✗'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
