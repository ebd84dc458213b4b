"""Where row f loses time: the same trainings in two plain child processes against a bare pool.

    python tests/benchmarks/pool_vs_plain.py ARTIFACTS [--rounds 3] [--epochs 30]

ARTIFACTS is the folder of a finished housing search (``search_workers.py`` leaves them under
its temporary folder); its scaled data and first four trials are used. Both sides train the
trials with the stage's ``train()`` and no Prefect, two at a time on a 2-core machine, with the
thread limits of a two-worker search:

    plain  two children started with the limits in their environment (the ceiling's way)
    pool   a spawn ``ProcessPoolExecutor`` of two whose initializer is the flow's own
           ``flows.launch.runners.start_worker`` (what ``--workers 2`` runs, minus Prefect)

The sides alternate over ``--rounds``; each prints the mean fit seconds of a training.
Not collected by the test run.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_workers import _alternating, search_inputs, together  # noqa: E402


def _fit_seconds(scaled: str, config: dict, epochs: int) -> float:
    """One training in a pool worker: fit seconds only, as the trials table records them."""
    from tasks.model.callbacks import Watch
    from tasks.stages.train import train
    from tasks.store.dataset import read_frame

    with tempfile.TemporaryDirectory() as folder:
        return train(read_frame(scaled), "mlp30", Path(folder) / "work", epochs=epochs, batch_size=32, seed=42,
                     hparams=config, watch=Watch(patience=epochs + 1)).seconds


def _pool(scaled: str, configs: list[dict], epochs: int) -> float:
    from flows.launch.runners import start_worker
    from tasks.search.plan import thread_limits

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker,
                             initargs=(thread_limits(2),)) as pool:
        list(pool.map(abs, [0, 0]))  # start the workers (on demand: not always both); fit seconds
        # exclude their start-up anyway, since start_worker imports Keras before any training
        seconds = list(pool.map(_fit_seconds, [scaled] * len(configs), configs, [epochs] * len(configs)))
    return statistics.mean(seconds)


def _plain(scaled: str, configs: list[dict], epochs: int) -> float:
    from tasks.search.plan import thread_limits

    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from pool_vs_plain import _fit_seconds; "
            "configs = json.loads(sys.argv[3]); print('ready', flush=True); sys.stdin.readline(); "
            "print(json.dumps([_fit_seconds(sys.argv[2], c, int(sys.argv[4])) for c in configs]))")
    half = len(configs) // 2  # Keras imported in both before either trains (the pool's workers are warm too)
    outs = together(code, scaled, [configs[:half], configs[half:]], epochs, thread_limits(2))
    return statistics.mean(s for out in outs for s in json.loads(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", type=Path, help="a finished housing search's artifact folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    scaled, configs = search_inputs(args.artifacts, 4)
    runs: dict[str, list[float]] = {"plain": [], "pool": []}
    for _, side in _alternating(args.rounds, "plain", "pool"):
        runs[side].append((_plain if side == "plain" else _pool)(scaled, configs, args.epochs))
        print(f"{side}: {runs[side][-1]:.2f} s a training", flush=True)
    print(f"\nmedian fit seconds a training, two at a time: plain children {statistics.median(runs['plain']):.2f}, "
          f"bare pool {statistics.median(runs['pool']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
