"""Why training feeds its own batches (tasks/model/batches.py): Keras's loader against them.

    python tests/benchmarks/feeding.py ARTIFACTS [--epochs 30] [--rounds 2]

ARTIFACTS is a finished housing search's folder (``search_workers.py`` leaves them under its
temporary folder; ``python -m flows search --n-iter 2 --epochs 1 --artifacts DIR`` makes one);
its scaled data and first trial are trained with the stage's ``train()``, no Prefect, with the
thread limits of a two-worker search: one training alone, then two side by side, for each
loader, the sides alternating over ``--rounds``. Prints the mean fit seconds and voluntary
context switches of a training. Not collected by the test run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_workers import _alternating, search_inputs, together  # noqa: E402


def _fit(scaled: str, config: dict, epochs: int, loader: str) -> tuple[float, int]:
    """In a child: one training's fit seconds and the voluntary context switches of its process."""
    import resource
    import tempfile

    import tasks.stages.train
    from tasks.model.callbacks import Watch
    from tasks.store.dataset import read_frame

    if loader == "keras":  # fit(x, y, batch_size=...): Keras builds its own pipeline
        tasks.stages.train.fit_data = lambda train, valid, batch_size: {"x": train[0], "y": train[1],
                                                                 "batch_size": batch_size, "validation_data": valid}
    frame = read_frame(scaled)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    with tempfile.TemporaryDirectory() as folder:
        seconds = tasks.stages.train.train(frame, "mlp30", Path(folder) / "work", epochs=epochs, batch_size=32, seed=42,
                                    hparams=config, watch=Watch(patience=epochs + 1)).seconds
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - before


def _side(scaled: str, config: dict, epochs: int, loader: str, processes: int) -> tuple[float, float]:
    from tasks.search.plan import thread_limits

    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import keras; from feeding import _fit; "
            "print('ready', flush=True); sys.stdin.readline(); "
            f"print(json.dumps(_fit(sys.argv[2], json.loads(sys.argv[3])[0], int(sys.argv[4]), {loader!r})))")
    outs = [json.loads(out) for out in together(code, scaled, [[config]] * processes, epochs, thread_limits(2))]
    return statistics.mean(s for s, _ in outs), statistics.mean(n for _, n in outs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", type=Path, help="a finished housing search's artifact folder")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    scaled, (config,) = search_inputs(args.artifacts, 1)
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _, loader in _alternating(args.rounds, "keras", "batches"):
        for processes in (1, 2):
            runs.setdefault((loader, processes), []).append(_side(scaled, config, args.epochs, loader, processes))
            print(f"{loader}, {processes} at a time: {runs[loader, processes][-1][0]:.2f} s", flush=True)
    print(f"\n{args.epochs} epochs of {config}, one thread each; medians over {args.rounds} round(s)\n")
    print("| loader | fit s alone | fit s, two side by side | slowdown | context switches a training |\n"
          "|---|---|---|---|---|")
    for loader in ("keras", "batches"):
        alone, both = (statistics.median(s for s, _ in runs[loader, p]) for p in (1, 2))
        switches = statistics.median(n for _, n in runs[loader, 1])
        print(f"| {loader} | {alone:.2f} | {both:.2f} | {both / alone:.2f} | {switches:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
