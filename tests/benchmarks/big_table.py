"""A housing-like table of any size, for the benchmarks of tables larger than memory.

    DATA_MIRROR=... python tests/benchmarks/big_table.py OUT.parquet --rows 50000000 [--seed 0]
        [--group-rows 1000000] [--region]          (OUT.csv writes CSV)

Each row is a real California-housing row drawn at random (seeded) with every value, target
included, multiplied by its own factor ``1 + 0.01 * N(0, 1)``: the columns keep their spread and
relations, and no two rows are alike. ``--region`` adds a text column of five regions by the
row's latitude and longitude (as region_table.py), a categorical column. Written a group of
rows at a time (one Parquet row group, or one CSV block), so generating 50,000,000 rows holds
one group in memory. Never committed: run it where a benchmark needs the table.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
TARGET = "MedHouseVal"


def regions(latitude: np.ndarray, longitude: np.ndarray) -> pa.DictionaryArray:
    """Five regions of California by place (region_table.py's), dictionary-encoded text."""
    names = np.array(["north", "inland", "south", "bay", "central-coast"])
    code = np.where(latitude > 38.5, 0, np.where(longitude > -118.5, np.where(latitude > 35, 1, 2),
                                                 np.where(latitude > 36.5, 3, 4)))
    return pa.DictionaryArray.from_arrays(pa.array(code, pa.int32()), pa.array(names))


def groups(rows: int, seed: int, group_rows: int, region: bool = False) -> Iterator[pa.RecordBatch]:
    """The table's rows, ``group_rows`` at a time (seeded: the same arguments give the same rows)."""
    sys.path.insert(0, str(ROOT))
    from tasks.stages.load import HOUSING_FEATURES, load_california_housing

    frame, _ = load_california_housing()
    real = np.column_stack([frame.X, frame.y])
    names = [*HOUSING_FEATURES, TARGET]
    rng = np.random.default_rng(seed)
    for start in range(0, rows, group_rows):
        count = min(group_rows, rows - start)
        drawn = real[rng.integers(0, len(real), count)]
        drawn *= 1.0 + 0.01 * rng.standard_normal(drawn.shape)
        columns, labels = list(drawn.T), list(names)
        if region:
            columns.insert(-1, regions(drawn[:, names.index("Latitude")], drawn[:, names.index("Longitude")]))
            labels.insert(-1, "region")
        yield pa.record_batch(columns, names=labels)


def write(out: Path, rows: int, seed: int = 0, group_rows: int = 1_000_000, region: bool = False) -> None:
    """Write the table to ``out`` (.parquet or .csv)."""
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    batches = groups(rows, seed, group_rows, region)
    first = next(batches)
    if out.suffix == ".csv":
        with csv.CSVWriter(out, first.schema) as writer:
            for batch in (first, *batches):
                writer.write_batch(batch)
        return
    with pq.ParquetWriter(out, first.schema, compression="zstd") as writer:
        for batch in (first, *batches):
            writer.write_batch(batch, row_group_size=group_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the table to write (.parquet or .csv)")
    parser.add_argument("--rows", type=int, default=50_000_000, help="rows (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="which rows and noise (default: %(default)s)")
    parser.add_argument("--group-rows", type=int, default=1_000_000, help="rows per row group (default: %(default)s)")
    parser.add_argument("--region", action="store_true", help="add a categorical column of five regions")
    args = parser.parse_args()
    if args.out.suffix not in (".parquet", ".csv"):
        parser.error(f"{args.out}: name a .parquet or .csv file")
    start = time.perf_counter()
    write(args.out, args.rows, args.seed, args.group_rows, args.region)
    print(f"{args.out}: {args.rows:,} rows, {args.out.stat().st_size / 2**20:,.0f} MiB, "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
