"""Benchmark: the streamed load of a big housing-like table (issue 35), alone, in this process.

    DATA_MIRROR=... python tests/benchmarks/streamed_load.py [--rows 20000000] [--format parquet|csv]

Writes the table with big_table.py (its own process) into a temporary folder, then reads it with ``StreamedTable``
into a fresh store as a raw artifact of row groups (``ArtifactStore.put_batches``): prints the
rows, seconds, rows per second and this process's peak RSS (the table itself is never whole in
memory). The table and the store are deleted at the end.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from tasks.stages.table_stream import StreamedTable
    from tasks.store.artifacts import ArtifactStore
    from tests.benchmarks.big_table import TARGET

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000, help="rows (default: %(default)s)")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keras-flows-stream-") as work:
        table = Path(work) / f"big.{args.format}"
        subprocess.run([sys.executable, str(ROOT / "tests/benchmarks/big_table.py"), str(table),
                        "--rows", str(args.rows)], check=True, stdout=subprocess.DEVNULL)
        start = time.perf_counter()
        streamed = StreamedTable(table, TARGET, "regression")
        ref = ArtifactStore(Path(work) / "store").put_batches(streamed.batches(), "raw")
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| {args.format} | {ref.rows:,} | {table.stat().st_size / 2**20:,.0f} | {seconds:.1f} | "
              f"{ref.rows / seconds:,.0f} | {peak:,.0f} |")


if __name__ == "__main__":
    main()
