"""Benchmark: an epoch trained from the scaled artifact's row groups against the same epoch from
memory (issue 35: the stream must keep the model busy, <= 1.1 x).

    DATA_MIRROR=... python tests/benchmarks/stream_epoch.py [--rows 3000000] [--batch-size 4096] [--reps 3]

Builds a housing-like table (big_table.py's rows) and its scaled artifact with the streamed stages
(no flow), then, alternating, trains the table set-up's model (Wide & Deep) with ``train()`` from a
``ScaledFile`` (a PyDataset of row groups) and from the same rows in memory (a ``Frame``), for 1 and
for 3 epochs; an epoch's seconds are (3 epochs - 1 epoch) / 2 of ``fit``'s time, so model building
and the first epoch's tracing cancel. Prints the medians and their ratio.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from tasks.model.streamed_batches import ScaledFile
    from tasks.stages.scale_stream import StreamedScale
    from tasks.stages.split_stream import split_batches
    from tasks.stages.table_stream import StreamedTable
    from tasks.stages.train import train
    from tasks.store.artifacts import ArtifactStore
    from tasks.store.dataset import read_frame
    from tests.benchmarks.big_table import TARGET, write

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keras-flows-epoch-") as folder:
        work = Path(folder)
        write(work / "big.parquet", args.rows)
        store = ArtifactStore(work / "store")
        raw = store.put_batches(StreamedTable(work / "big.parquet", TARGET, "regression").batches(), "raw")
        index = store.put_batches(split_batches(raw.path), "split")
        scaled = store.put_batches(StreamedScale(raw.path, index.path, scale_target=True).scaled_batches(), "scaled")
        sources = {"stream": ScaledFile(scaled.path), "memory": read_frame(scaled.path)}
        epoch = {name: [] for name in sources}
        for rep in range(args.reps):
            for name in (("stream", "memory") if rep % 2 == 0 else ("memory", "stream")):
                fit = [train(sources[name], "wide_deep", work / f"w-{name}-{rep}-{e}", epochs=e,
                             batch_size=args.batch_size, seed=rep).seconds for e in (1, 3)]
                epoch[name].append((fit[1] - fit[0]) / 2)
        med = {name: statistics.median(values) for name, values in epoch.items()}
        train_rows = sources["stream"].rows("train")
        print(f"{args.rows:,} rows ({train_rows:,} train), batch {args.batch_size}, {args.reps} reps: epoch seconds "
              f"stream {med['stream']:.2f} ({', '.join(f'{v:.2f}' for v in epoch['stream'])}), memory "
              f"{med['memory']:.2f} ({', '.join(f'{v:.2f}' for v in epoch['memory'])}); "
              f"stream / memory {med['stream'] / med['memory']:.2f} (target <= 1.1)")


if __name__ == "__main__":
    main()
