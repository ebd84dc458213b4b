"""Training beyond one device on this machine: one device, two devices, two processes.

    python tests/benchmarks/beyond_one_device.py [--epochs 5] [--rounds 1]

The regression flow on the course's housing (the 30-unit MLP, batch 32), from the command line as
a user runs it, a fresh store each time: ``--devices 1`` (one process, one device), ``--devices 2``
(TensorFlow's MirroredStrategy over the CPU split into two logical devices) and ``--hosts 2`` (two
training processes on loopback, MultiWorkerMirroredStrategy). Prints the command's wall seconds,
the training stage's seconds (its lineage's ``train_seconds``: the processes' start included for
``--hosts``) and the test MSE, medians over ``--rounds``. On a CPU the point is that they run and
match; expect no gain.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPS = {"1 device": ["--devices", "1"], "2 devices (logical CPUs)": ["--devices", "2"],
          "2 processes (loopback)": ["--hosts", "2"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in SETUPS}
    with tempfile.TemporaryDirectory() as work:
        for round_ in range(args.rounds):
            for name, options in SETUPS.items():
                store = Path(work) / f"{round_}-{options[0]}{options[1]}"
                start = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "flows", "regression", "--epochs", str(args.epochs),
                                       *options, "--artifacts", str(store), "--json"], cwd=ROOT, env=os.environ.copy(),
                                      capture_output=True, text=True, check=True)
                wall = time.perf_counter() - start
                run = json.loads(done.stdout.strip().splitlines()[-1])
                training = json.loads(Path(run["artifacts"]["model"]).with_suffix(".json").read_text())["training"]
                rows[name].append((wall, training["train_seconds"], run["test"]["loss"]))
                print(f"round {round_ + 1}: {name}: {wall:.1f} s, training {training['train_seconds']:.1f} s",
                      flush=True)
    print(f"\n| set-up ({args.epochs} epochs) | wall s | training s | test MSE |\n|---|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(v[0] for v in values):.1f} | "
              f"{statistics.median(v[1] for v in values):.1f} | {statistics.median(v[2] for v in values):.4f} |")


if __name__ == "__main__":
    main()
