"""Command line: ``python -m flows classification|regression [options]``.

Runs a flow on Prefect's embedded server, or on the server named by PREFECT_API_URL.
With ``--json`` the last line printed is one JSON object: flow, run_id, test metrics
and the path of every artifact, for scripts and schedulers.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import threading

FLOWS = {
    "classification": {"dataset": "Fashion-MNIST", "model": "mlp", "epochs": 10},
    "regression": {"dataset": "California housing", "model": "mlp30", "epochs": 20},
}


def _quiet_defaults() -> None:
    """Settings a user would otherwise have to find: no telemetry, no TensorFlow chatter."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def prefetch(*modules: str) -> None:
    """Import heavy libraries on a side thread: they load while Prefect starts its server."""
    for name in modules:
        threading.Thread(target=importlib.import_module, args=(name,), daemon=True).start()


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m flows", description=__doc__.split("\n\n")[0],
        epilog="Data: built-in datasets are read from data/, then $DATA_MIRROR, then downloaded. "
               "Artifacts (Parquet + JSON lineage sidecars) go to --artifacts.")
    commands = main.add_subparsers(dest="flow", required=True, metavar="FLOW")
    for name, defaults in FLOWS.items():
        sub = commands.add_parser(name, help=f"{defaults['dataset']} {name} (or your own table)",
                                  description=f"Run the {name} flow: load, validate, split, scale, train, "
                                              f"evaluate. Default data: {defaults['dataset']}.",
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        sub.add_argument("--model", default=defaults["model"], help="model name in the registry")
        sub.add_argument("--epochs", type=int, default=defaults["epochs"])
        sub.add_argument("--batch-size", type=int, default=32)
        sub.add_argument("--learning-rate", type=float, default=None,
                         help="optimizer learning rate (default: the model's course value)")
        sub.add_argument("--seed", type=int, default=42, help="random seed for weights and shuffling")
        sub.add_argument("--patience", type=int, default=10, help="EarlyStopping patience in epochs")
        sub.add_argument("--data", metavar="PATH", help="your own table (.csv or .parquet) instead")
        sub.add_argument("--target", metavar="COLUMN", help="with --data: the label/value column")
        sub.add_argument("--artifacts", default="artifacts", metavar="DIR", help="artifact store folder")
        sub.add_argument("--force", action="store_true", help="re-run every stage, ignoring the cache")
        sub.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.data and not args.target:
        parser().error("--data needs --target COLUMN")
    _quiet_defaults()
    prefetch("great_expectations", "keras")
    if args.flow == "classification":
        from flows.classification import classification as flow
    else:
        from flows.regression import regression as flow
    try:
        summary = flow(model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, seed=args.seed, patience=args.patience,
                       data=args.data, target=args.target, artifacts=args.artifacts, force=args.force)
    except Exception as error:  # the flow already logged the traceback; say what failed, plainly
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary))
    else:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary["test"].items())
        print(f"{summary['flow']} run {summary['run_id']}: test {metrics}")
        for stage, path in summary["artifacts"].items():
            print(f"  {stage:8s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
