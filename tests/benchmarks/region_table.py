"""Benchmark: the real housing table with a text column and missing values, at the defaults.

    DATA_MIRROR=... python tests/benchmarks/region_table.py [--rows N] [--work DIR]

Two user tables cut from the same real rows, run as a user runs them (``python -m flows regression
--data T.csv --target MedHouseVal``, every other option at its default):

- *plain*: the eight numeric features;
- *region*: the same, plus ``region`` (text, derived from the coordinates: north, bay,
  central-coast, south, inland) and 1 % of ``AveBedrms`` missing, with ``--missing impute``.

Both draw the same split (same row count, same seed), so their test MSEs compare. Then, on 500
held-out rows of the region model's test split with 25 of an unseen region and 10 missing
``AveBedrms``: ``predict`` (its unseen count and drift warning), and ``export``'s SavedModel fed the
raw rows, text included, against ``predict``'s numbers. Prints one markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
TARGET = "MedHouseVal"


def tables(folder: Path, rows: int | None) -> tuple[Path, Path, pd.DataFrame]:
    """The plain and the region table (seeded), and the region table's rows."""
    from tasks.stages.load import HOUSING_FEATURES, load_california_housing

    frame, _ = load_california_housing()
    df = pd.DataFrame(frame.X, columns=HOUSING_FEATURES)
    df[TARGET] = frame.y
    if rows:
        df = df.sample(n=rows, random_state=0).reset_index(drop=True)
    df.to_csv(folder / "plain.csv", index=False)
    lat, lon = df["Latitude"], df["Longitude"]
    df["region"] = np.where(lat > 38.5, "north", np.where(lon > -118.5, np.where(lat > 35, "inland", "south"),
                                                          np.where(lat > 36.5, "bay", "central-coast")))
    holes = np.random.default_rng(0).choice(len(df), len(df) // 100, replace=False)
    df.loc[holes, "AveBedrms"] = np.nan
    df.to_csv(folder / "region.csv", index=False)
    return folder / "plain.csv", folder / "region.csv", df


def flows(*args: str) -> tuple[str, str, float]:
    """Run ``python -m flows ARGS``: its stdout, its stderr (the log) and its wall seconds."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=7200)
    if done.returncode != 0:
        raise SystemExit(f"flows {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout, done.stderr, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, help="a sample of the housing rows (default: all 20,640)")
    parser.add_argument("--work", help="folder for the tables and stores (default: a temporary one)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        plain, region, rows = tables(work, args.rows)
        runs = {}
        for name, table, extra in (("plain", plain, []), ("region", region, ["--missing", "impute"])):
            out, _, seconds = flows("regression", "--data", str(table), "--target", TARGET, *extra,
                                 "--artifacts", str(work / f"store-{name}"), "--json")
            runs[name] = (json.loads(out.strip().splitlines()[-1]), seconds)
        print("| table | test MSE | flow wall s |\n|---|---|---|")
        for name, (summary, seconds) in runs.items():
            print(f"| {name} | {summary['test']['loss']:.4f} | {seconds:.1f} |")
        ratio = runs["region"][0]["test"]["loss"] / runs["plain"][0]["test"]["loss"]
        print(f"\nregion / plain test MSE: {ratio:.4f} ({'no worse' if ratio <= 1.0 else 'worse'})")
        score_new_rows(work, rows, runs["region"][0])


def score_new_rows(work: Path, rows: pd.DataFrame, summary: dict) -> None:
    """predict on held-out rows with an unseen region and holes; the export fed the same raw rows."""
    import tensorflow as tf

    from tasks.store.dataset import read_index

    index = read_index(summary["artifacts"]["split"])
    test = index.row_id[index.split == "test"][:500]
    new = rows.iloc[test].drop(columns=[TARGET]).reset_index(drop=True)
    new.loc[:24, "region"] = "atlantis"
    new.loc[25:34, "AveBedrms"] = np.nan
    new.to_csv(work / "new.csv", index=False)
    store = str(work / "store-region")
    _, said, seconds = flows("predict", "--data", str(work / "new.csv"), "--artifacts", store,
                          "--out", str(work / "predictions.csv"))
    drift = [line.strip() for line in said.splitlines() if "never saw" in line]
    print(f"\npredict on {len(new)} new rows ({seconds:.1f} s): {drift[0] if drift else 'NO unseen category reported'}")
    folder, _, _ = flows("export", "--artifacts", store)
    folder = Path(folder.strip().splitlines()[-1])
    signature = json.loads((folder / "signature.json").read_text())
    loaded = tf.saved_model.load(str(folder / "saved_model"))
    numbers = new[signature["inputs"]["features"]].to_numpy(np.float32)
    served = np.asarray(loaded.serve({"features": tf.constant(numbers),
                                      "region": tf.constant(new[["region"]].to_numpy(str))})).ravel()
    predicted = pd.read_csv(work / "predictions.csv")["prediction"].to_numpy()
    print(f"export vs predict on the raw rows (text and holes included): max |difference| "
          f"{np.abs(served - predicted).max():.2e} (target <= 1e-5)")


if __name__ == "__main__":
    main()
