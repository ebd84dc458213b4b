"""Benchmark: scikit-learn's small tables through the flows at their defaults, beside a
scikit-learn baseline fitted on the very same split.

    python tests/benchmarks/tables.py [--tables diabetes,wine,breast_cancer,digits] [--work DIR]

Each table (``sklearn.datasets.load_*``, written to CSV with its target as column ``target``) runs
as a user runs it, ``python -m flows regression|classification --data T.csv --target target``, every
option at its default. The flow's split (its split artifact) then gives the baseline its rows: fitted
on the train rows (what the flow's model is fitted on), scored once on the test rows.

- regression: test MSE of the flow against ``RidgeCV`` (on standardised features): target <= 1.05 x;
- classification: test accuracy against ``LogisticRegression`` (standardised, max_iter 5000):
  target >= the baseline's - 0.02.

Prints one markdown table, and the flow's wall seconds per table.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TABLES = {"diabetes": "regression", "wine": "classification", "breast_cancer": "classification",
          "digits": "classification"}


def write_table(name: str, folder: Path) -> Path:
    """The scikit-learn dataset as a CSV a user would have: features by name, then ``target``."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    path = folder / f"{name}.csv"
    bunch.frame.rename(columns={bunch.target.name: "target"}).to_csv(path, index=False)
    return path


def run_flow(task: str, table: Path, artifacts: Path) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows", task, "--data", str(table), "--target", "target",
                           "--artifacts", str(artifacts), "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{table.name}: the flow failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def baseline(task: str, table: Path, split_path: str) -> float:
    """The baseline's test score on the flow's own split: MSE (regression) or accuracy."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import accuracy_score, mean_squared_error
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tasks.store.dataset import read_index

    df = pd.read_csv(table)
    X, y = df.drop(columns="target").to_numpy(float), df["target"].to_numpy()
    index = read_index(split_path)
    train, test = index.row_id[index.split == "train"], index.row_id[index.split == "test"]
    if task == "regression":
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        return float(mean_squared_error(y[test], model.fit(X[train], y[train]).predict(X[test])))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    return float(accuracy_score(y[test], model.fit(X[train], y[train]).predict(X[test])))


@contextlib.contextmanager
def work_folder(given: str | None) -> Iterator[Path]:
    """The folder for a benchmark's tables and stores: ``given`` (kept), or a temporary one."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(given or scratch)
        work.mkdir(parents=True, exist_ok=True)
        yield work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated: " + ", ".join(TABLES))
    parser.add_argument("--work", help="folder for the tables and stores (default: a temporary one)")
    args = parser.parse_args()
    with work_folder(args.work) as work:
        print("| table | rows | flow | test score, flow | baseline | score | target | met | flow wall s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in args.tables.split(","):
            task = TABLES[name]
            table = write_table(name, work)
            summary, seconds = run_flow(task, table, work / f"artifacts-{name}")
            base = baseline(task, table, summary["artifacts"]["split"])
            rows = sum(1 for _ in open(table)) - 1
            if task == "regression":
                score, target = summary["test"]["loss"], 1.05 * base
                print(f"| {name} | {rows} | {task} | MSE {score:.1f} | RidgeCV {base:.1f} | ratio {score / base:.3f} "
                      f"| <= 1.05 | {'yes' if score <= target else '**no**'} | {seconds:.1f} |")
            else:
                score = summary["test"]["accuracy"]
                print(f"| {name} | {rows} | {task} | accuracy {score:.4f} | LogisticRegression {base:.4f} | gap "
                      f"{score - base:+.4f} | >= -0.02 | {'yes' if score >= base - 0.02 else '**no**'} | "
                      f"{seconds:.1f} |")


if __name__ == "__main__":
    main()
