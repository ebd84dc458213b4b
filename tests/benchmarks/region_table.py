"""Benchmark: the real housing table with a text column and missing values, at the defaults.

    DATA_MIRROR=... python tests/benchmarks/region_table.py [--rows N] [--seeds 42,1,...,9] [--work DIR]

Two user tables cut from the same real rows, run as a user runs them (``python -m flows regression
--data T.csv --target MedHouseVal``, every other option at its default):

- *plain*: the eight numeric features;
- *region*: the same, plus ``region`` (text, derived from the coordinates: north, bay,
  central-coast, south, inland) and 1 % of ``AveBedrms`` missing, with ``--missing impute``.

Both draw the same split (same row count, same split seeds), so their test MSEs compare; each runs
once per training seed (``--seed``: weights and shuffling; ten by default, since one seed's pair
differs by more than missing values cost), and the per-seed ratios are summarised with their 95 %
confidence interval, so that the difference is read against the seeds' own spread. Then, on 500
held-out rows of the region model's test split with 25 of an unseen region and 10 missing
``AveBedrms``: ``predict`` (its unseen count and drift warning), and ``export``'s SavedModel fed the
raw rows, text included, against ``predict``'s numbers. Prints one markdown table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.benchmarks.tables import work_folder  # noqa: E402

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
    parser.add_argument("--seeds", default=",".join(map(str, (42, *range(1, 10)))),
                        help="training seeds, comma-separated (default: %(default)s)")
    parser.add_argument("--work", help="folder for the tables and stores (default: a temporary one)")
    args = parser.parse_args()
    with work_folder(args.work) as work:
        plain, region, rows = tables(work, args.rows)
        seeds, mse = [int(seed) for seed in args.seeds.split(",")], {"plain": [], "region": []}
        print("| seed | plain test MSE | region test MSE | region / plain | wall s (plain, region) |\n"
              "|---|---|---|---|---|")
        for seed in seeds:
            walls = []
            for name, table, extra in (("plain", plain, []), ("region", region, ["--missing", "impute"])):
                out, _, seconds = flows("regression", "--data", str(table), "--target", TARGET, *extra,
                                        "--seed", str(seed), "--artifacts", str(work / f"store-{name}"), "--json")
                summary = json.loads(out.strip().splitlines()[-1])
                mse[name].append(summary["test"]["loss"])
                walls.append(seconds)
                if seed == seeds[0] and name == "region":
                    first_region = summary
            print(f"| {seed} | {mse['plain'][-1]:.4f} | {mse['region'][-1]:.4f} | "
                  f"{mse['region'][-1] / mse['plain'][-1]:.4f} | {walls[0]:.0f}, {walls[1]:.0f} |")
        print(comparison(np.array(mse["plain"]), np.array(mse["region"])))
        score_new_rows(work, rows, first_region)


def comparison(plain: np.ndarray, region: np.ndarray) -> str:
    """The two tables' test MSEs read against the seeds' own spread: the mean of the per-seed
    ratios with its 95 % confidence interval (Student's t, seeds paired), and the verdict that
    interval supports: "worse" only when it lies above 1, "better" only below, otherwise "no
    difference the seeds can show"."""
    from scipy import stats

    ratios = region / plain
    mean = float(ratios.mean())
    half = float(stats.t.ppf(0.975, len(ratios) - 1) * ratios.std(ddof=1) / np.sqrt(len(ratios))) \
        if len(ratios) > 1 else float("nan")
    verdict = ("worse" if mean - half > 1 else "better" if mean + half < 1 else "no difference the seeds can show"
               ) if len(ratios) > 1 else "one seed: no spread to read it against"
    return (f"\nmean test MSE over {len(ratios)} seed(s): plain {plain.mean():.4f}, "
            f"region {region.mean():.4f}; region / plain per seed: mean {mean:.4f}, 95 % CI {mean - half:.4f}-"
            f"{mean + half:.4f}, region lower at {int((region < plain).sum())} of {len(ratios)}: {verdict}")


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
