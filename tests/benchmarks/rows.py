"""Benchmark: the regression flow on the 20,640-row housing table and on a 1-million-row one.

    python tests/benchmarks/rows.py [--rows 1032000] [--batch-size 4096] [--epochs 1]

Both tables are user tables (``--data``, Parquet) built from the real housing data; the
large one repeats every row 50 times, each copy's features multiplied by its own factor
within 1e-4 of 1, so no row is a duplicate of another and the values keep their spread.
Each flow runs in a fresh process and artifact folder (the embedded server included);
prints one markdown table: seconds per stage, peak memory, their growth with the rows, and
the targets. Needs DATA_MIRROR (or data/). Not collected by the default test run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TARGET = "MedHouseVal"
DATA_STAGES = ("load", "validate-raw", "split", "validate-split", "scale", "validate-scaled")


def housing_tables(folder: Path, rows: int) -> dict[str, tuple[Path, int]]:
    """The housing data as a Parquet user table, and ``rows`` rows of it made distinct."""
    import pandas as pd

    from tasks.stages.load import load_california_housing

    raw, _ = load_california_housing()
    small = pd.DataFrame(raw.X, columns=list(raw.spec.features))
    small[TARGET] = raw.y
    copies = -(-rows // len(small))
    rng = np.random.default_rng(0)
    factors = 1 + rng.uniform(-1e-4, 1e-4, size=(copies, 1, len(raw.spec.features)))
    big_x = (raw.X[None, :, :] * factors).reshape(-1, len(raw.spec.features))[:rows]
    big = pd.DataFrame(big_x, columns=list(raw.spec.features))
    big[TARGET] = np.tile(raw.y, copies)[:rows]
    tables = {}
    for name, frame in (("20,640 rows", small), (f"{rows:,} rows", big)):
        path = folder / f"housing-{len(frame)}.parquet"
        frame.to_parquet(path, index=False)
        tables[name] = (path, frame.memory_usage(index=False).sum())
    return tables


def child(table: str, artifacts: str, epochs: int, batch_size: int) -> dict:
    """One regression flow, started as the CLI starts it; its stages' seconds from Prefect."""
    start = time.perf_counter()
    from run_flow import stage_seconds

    from flows.__main__ import started

    with started() as server:
        from flows.regression import regression

        with server.api():
            begun = time.perf_counter()
            result = regression(epochs=epochs, batch_size=batch_size, data=table, target=TARGET, artifacts=artifacts)
            flow_seconds = time.perf_counter() - begun
            stages = stage_seconds(result["run_id"])
    return {"flow_seconds": flow_seconds, "wall_seconds": time.perf_counter() - start, "stages": stages,
            "test": result["test"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_032_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args()
    from bench import run, set_mirror

    set_mirror()
    work = Path(tempfile.mkdtemp(prefix="keras-flows-rows-"))
    tables = housing_tables(work, args.rows)
    results = {}
    for name, (path, _) in tables.items():
        results[name] = [run([sys.executable, str(HERE / "rows.py"), "--child", str(path),
                              str(work / f"artifacts-{path.stem}-{rep}"), str(args.epochs), str(args.batch_size)])
                         for rep in range(args.reps)]
    (small_name, (_, small_bytes)), (big_name, (_, big_bytes)) = tables.items()
    med = lambda name, key: statistics.median(r[2]["stages"].get(key, 0.0) for r in results[name])  # noqa: E731
    print(f"\nRegression flow, user table (Parquet), --batch-size {args.batch_size} --epochs {args.epochs}; "
          f"{args.reps} rep(s), median; {os.cpu_count()} cores\n")
    print(f"| stage | {small_name}, s | {big_name}, s | growth | target |\n|---|---|---|---|---|")
    rows = [(stage, med(small_name, stage), med(big_name, stage), "") for stage in (*DATA_STAGES, "train")]
    data = [sum(med(name, stage) for stage in DATA_STAGES) for name in (small_name, big_name)]
    rows.insert(len(DATA_STAGES), ("data stages", *data, "<= 6 s"))
    rows.append(("evaluate", med(small_name, "evaluate"), med(big_name, "evaluate"), "<= 1 s"))
    flows = [statistics.median(r[2]["flow_seconds"] for r in results[name]) for name in (small_name, big_name)]
    rows.append(("whole flow (in the process, after start-up)", *flows, ""))
    for stage, small, big, target in rows:
        met = "" if not target else (" ✓" if big <= float(target.split()[1]) else " ✗")
        print(f"| {stage} | {small:.2f} | {big:.2f} | {big / small if small else float('nan'):.1f}× | "
              f"{target}{met} |")
    peaks = [statistics.median(r[3] for r in results[name]) for name in (small_name, big_name)]
    limit = peaks[0] + 4 * big_bytes / 2**20
    print(f"| peak RSS, MiB (all processes) | {peaks[0]:.0f} | {peaks[1]:.0f} | {peaks[1] / peaks[0]:.1f}× | "
          f"<= {limit:.0f} (20,640-row run + 4 × the table's {big_bytes / 2**20:.0f} MiB)"
          f"{' ✓' if peaks[1] <= limit else ' ✗'} |")
    own = [statistics.median(r[1] for r in results[name]) for name in (small_name, big_name)]
    print(f"| peak RSS, MiB (the flow's own process) | {own[0]:.0f} | {own[1]:.0f} | {own[1] / own[0]:.1f}× | |")
    for name in (small_name, big_name):
        print(f"\n{name}: test {json.dumps(results[name][0][2]['test'])}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        table, artifacts, epochs, batch = sys.argv[2:6]
        print(json.dumps(child(table, artifacts, int(epochs), int(batch))))
        sys.exit(0)
    sys.exit(main())
