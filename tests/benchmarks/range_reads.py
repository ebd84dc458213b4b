"""What a slice of a table in a bucket costs: read by range against downloaded whole.

    python tests/benchmarks/range_reads.py [--rows 4000000] [--rounds 3]

A scaled-like table (``--rows`` rows: row id, split, target and 8 float32 features, written a
batch of 262,144 rows at a time, its last quarter the test rows) is put in an S3 bucket (moto's
server on 127.0.0.1) by one host; a second host (a working copy of its own) reads its test rows
(``read_parquet(..., filters=test)``, as evaluate does) by range, and, for comparison, fetches the
object whole and reads the same rows from the file. Prints the object's MiB, the MiB each way
fetched and their seconds (medians over ``--rounds``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tasks.store import blocks  # noqa: E402
from tasks.store.artifacts import ArtifactStore  # noqa: E402
from tasks.store.dataset import read_parquet  # noqa: E402
from tasks.store.remote import CACHE_ENV  # noqa: E402
from tests.services import s3_server  # noqa: E402

BATCH = 262_144


def _batches(rows: int):
    rng = np.random.default_rng(0)
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        columns = {"row_id": pa.array(np.arange(start, start + n)),
                   "split": pa.array(["test" if start >= rows * 3 // 4 else "train"] * n),
                   "target": pa.array(rng.standard_normal(n))}
        columns.update({f"f{i}": pa.array(rng.standard_normal(n).astype(np.float32)) for i in range(8)})
        yield pa.record_batch(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with s3_server() as s3, tempfile.TemporaryDirectory() as work:
        os.environ.update({k: v for k, v in s3.items() if k.startswith("AWS_")})
        url = f"s3://{s3['bucket']}/range"
        os.environ[CACHE_ENV] = f"{work}/host-a"
        ref = ArtifactStore(url).put_batches(_batches(args.rows), "scaled", dataset="bench")
        store = ArtifactStore(url)
        size = store.record(ref).blocks.size
        seconds: dict[str, list[float]] = {"by range": [], "whole": []}
        fetched: dict[str, float] = {}
        test = [("split", "=", "test")]
        for r in range(args.rounds):
            os.environ[CACHE_ENV] = f"{work}/host-b{r}"
            other = ArtifactStore(url)
            path = other.here(ref).path
            blocks.FETCHED.update(blocks=0, bytes=0)
            start = time.perf_counter()
            rows = read_parquet(path, filters=test).num_rows
            seconds["by range"].append(time.perf_counter() - start)
            fetched["by range"] = blocks.FETCHED["bytes"] / 2**20
            assert not Path(path).exists() and rows > 0  # read where it lies
            start = time.perf_counter()
            whole = read_parquet(other.here(ref, whole=True).path, filters=test).num_rows
            seconds["whole"].append(time.perf_counter() - start)
            fetched["whole"] = Path(path).stat().st_size / 2**20
            assert whole == rows
    print(f"\n{args.rows:,} rows, object {size / 2**20:,.1f} MiB, test rows {rows:,}\n")
    print("| read of the test rows | MiB fetched | s, median (all) |\n|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {fetched[name]:,.1f} | {statistics.median(values):.2f} "
              f"({', '.join(f'{v:.2f}' for v in values)}) |")


if __name__ == "__main__":
    main()
