"""Command line: ``python -m flows classification|regression|zoo [options]``.

Runs a flow on Prefect's embedded server, or on the server named by PREFECT_API_URL.
With ``--json`` the last line printed is one JSON object: flow, run_id, test metrics
and the path of every artifact, for scripts and schedulers.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import importlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Iterator

from flows.embedded import EmbeddedServer
from tasks.params import CLASSIFICATION, REGRESSION, SCHEDULES, TrainParams
from tasks.search import STRATEGIES

COURSE = {"classification": CLASSIFICATION, "regression": REGRESSION}
DATASET = {"classification": "Fashion-MNIST", "regression": "California housing"}


def _quiet_defaults() -> None:
    """Settings a user would otherwise have to find: no telemetry, no TensorFlow chatter."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def prefetch(*modules: str) -> None:
    """Import heavy libraries on a side thread: they load while Prefect starts its server."""
    for name in modules:
        threading.Thread(target=importlib.import_module, args=(name,), daemon=True).start()


@contextlib.contextmanager
def started() -> Iterator[EmbeddedServer]:
    """What a run starts before its heavy imports, each on a core the GIL does not hold:
    Great Expectations' helper process, the embedded server (unless one is configured) and
    Keras's import on a side thread. Both processes are stopped on the way out."""
    from tasks.gx import start_worker, stop_worker

    server = EmbeddedServer()
    try:
        start_worker()
        server.start()
        prefetch("keras")
        yield server
    finally:
        server.stop()
        stop_worker()


def _training_options(sub: argparse.ArgumentParser, course: TrainParams | None, model_help: str) -> None:
    """The training options; ``course`` gives their defaults, or None where the flow picks them
    later (zoo and serve: the course's set-up of the task they run)."""
    def default(name: str):
        return getattr(course, name) if course else None

    shown = " (default: %(default)s)" if course else " (default: the task's course set-up)"
    sub.add_argument("--model", default=default("model"), help=model_help + (shown if course else ""))
    sub.add_argument("--epochs", type=int, default=default("epochs"),
                     help="most epochs (EarlyStopping may stop sooner)" + shown)
    sub.add_argument("--batch-size", type=int, default=TrainParams.batch_size,
                     help="examples per gradient step (default: %(default)s)")
    sub.add_argument("--learning-rate", type=float, help="optimizer learning rate (default: the model's)")
    sub.add_argument("--optimizer", choices=["sgd", "adam", "nadam", "rmsprop"], help="default: the model's")
    sub.add_argument("--schedule", choices=SCHEDULES,
                     help="learning rate per epoch: constant (the course), or cosine decay to ~0 "
                          "(default: the model's)")
    sub.add_argument("--depth", type=int, help="hidden layers of a dense model (default: the model's)")
    sub.add_argument("--width", type=int, help="units per hidden layer (default: the model's)")
    sub.add_argument("--activation", help="hidden activation, e.g. relu, selu, elu (default: the model's)")
    sub.add_argument("--initializer", help="hidden layers' kernel initializer, e.g. lecun_normal, he_normal "
                                           "(default: the model's)")
    sub.add_argument("--seed", type=int, default=TrainParams.seed,
                     help="random seed for weights and shuffling (default: %(default)s)")
    sub.add_argument("--patience", type=int, default=default("patience"),
                     help="EarlyStopping: epochs without progress on the validation loss before it stops" + shown)
    sub.add_argument("--min-delta", type=float, default=default("min_delta"),
                     help="EarlyStopping: the least decrease of the validation loss that counts as progress"
                          + shown)
    sub.add_argument("--data", metavar="PATH", help="your own table (.csv or .parquet) instead")
    sub.add_argument("--target", metavar="COLUMN", help="with --data: the label/value column")
    sub.add_argument("--artifacts", default="artifacts", metavar="DIR",
                     help="artifact store folder (default: %(default)s)")
    sub.add_argument("--force", action="store_true", help="re-run every stage, ignoring the cache")
    sub.add_argument("--json", action="store_true", help="print a JSON summary as the last line")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m flows", description=__doc__.split("\n\n")[0],
        epilog="Data: built-in datasets are read from data/, then $DATA_MIRROR, then downloaded. "
               "Artifacts (Parquet + JSON lineage sidecars) go to --artifacts.")
    commands = main.add_subparsers(dest="flow", required=True, metavar="FLOW")
    for name, course in COURSE.items():
        sub = commands.add_parser(name, help=f"{DATASET[name]} {name} (or your own table)",
                                  description=f"Run the {name} flow: load, validate, split, scale, train, "
                                              f"evaluate. Default data: {DATASET[name]}.")
        _training_options(sub, course, "model name in the registry (see `zoo --list`)")
    sub = commands.add_parser("zoo", help="train several models on one dataset and compare them",
                              description="Train a set of registry models with the same budget; write a "
                                          "comparison table and a plot of their validation curves.")
    sub.add_argument("--task", choices=list(COURSE), default="classification", help="(default: %(default)s)")
    sub.add_argument("--list", action="store_true", help="list the registry's models and exit")
    _training_options(sub, None, "comma-separated model names (default: every model for --task)")

    sub = commands.add_parser("serve", help="serve a flow on a cron or interval schedule (needs a server)",
                              description="Serve flows as scheduled deployments on the Prefect server named by "
                                          "PREFECT_API_URL. SIGTERM or Ctrl-C stops serving and deletes the "
                                          "scheduled runs. Either FLOW with --interval/--cron and training "
                                          "options, or --config FILE with [[deployment]] tables "
                                          "(flow, name, interval or cron, parameters).")
    sub.add_argument("flow_name", nargs="?", choices=list(COURSE), metavar="FLOW",
                     help="classification or regression")
    when = sub.add_mutually_exclusive_group()
    when.add_argument("--interval", type=int, metavar="SECONDS", help="run every SECONDS")
    when.add_argument("--cron", metavar="EXPR", help='cron schedule, e.g. "0 3 * * *"')
    sub.add_argument("--config", metavar="FILE", help="TOML file of deployments instead of FLOW")
    sub.add_argument("--name", help="deployment name (default: FLOW-scheduled)")
    _training_options(sub, None, "model name (default: the flow's course model)")

    sub = commands.add_parser("search", help="search hyperparameters: trials on the valid split, best scored on test",
                              description="Prepare the data once, train one trial per configuration (cached: a "
                                          "search run again re-uses finished trials), choose on the validation "
                                          "loss, score the best once on the test split.")
    sub.add_argument("--strategy", choices=STRATEGIES, default="random", help="(default: %(default)s)")
    sub.add_argument("--task", choices=list(COURSE), default="regression", help="(default: %(default)s)")
    sub.add_argument("--space", help='e.g. "learning_rate=loguniform(1e-4,3e-2) depth=int(1,4) '
                                     'optimizer=choice(sgd,adam)", or a TOML file with a [space] table '
                                     "(default: the course's depth 1..4, width 1..99, learning rate 1e-4..1e-2; "
                                     "for sweep its six learning rates)")
    sub.add_argument("--n-iter", type=int, default=10, help="trials of random, genetic and heuristic (default: 10)")
    sub.add_argument("--grid-points", type=int, default=3, help="points per numeric parameter in a grid (default: 3)")
    sub.add_argument("--population", type=int, default=4, help="genetic: trials per generation (default: 4)")
    sub.add_argument("--max-failures", type=int, default=3, help="failed trials in a row that stop it (default: 3)")
    sub.add_argument("--workers", type=int, default=1, help="trials in parallel, one process each (default: 1)")
    _training_options(sub, None, "the model every trial trains (default: the task's course model)")

    sub = commands.add_parser("lineage", help="print an artifact's chain back to the raw files",
                              description="Follow an artifact's sidecars back to the raw files' sha256.")
    sub.add_argument("target", help="an artifact path, or a prefix of its sha256")
    sub.add_argument("--artifacts", default="artifacts", metavar="DIR",
                     help="artifact store folder (default: %(default)s)")
    return main


def _params(args: argparse.Namespace, course: TrainParams, model: str) -> TrainParams:
    """The options over the course's set-up for the task; an option left unset keeps the course's."""
    given = {name: getattr(args, name.replace("-", "_")) for name in
             ("epochs", "batch_size", "learning_rate", "optimizer", "schedule", "depth", "width",
              "activation", "initializer", "seed", "patience", "min_delta")}
    return dataclasses.replace(course, model=model, **{k: v for k, v in given.items() if v is not None})


def _list_models() -> int:
    from tasks.models import MODELS

    for name, entry in MODELS.items():
        print(f"{name:24s} {entry.task:15s} {entry.summary}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from flows.serve import read_config, serve

    if args.config:
        specs = read_config(args.config)
    elif args.flow_name and (args.interval or args.cron):
        course = COURSE[args.flow_name]
        params = _params(args, course, args.model or course.model)
        specs = [{"flow": args.flow_name, "name": args.name or f"{args.flow_name}-scheduled",
                  "interval": args.interval, "cron": args.cron,
                  "parameters": {"train": dataclasses.asdict(params), "target": args.target,
                                 # served runs may start elsewhere: pin the paths
                                 "data": str(Path(args.data).resolve()) if args.data else None,
                                 "artifacts": str(Path(args.artifacts).resolve())}}]
    else:
        parser().error("serve needs FLOW with --interval or --cron, or --config FILE")
    serve(specs)
    return 0


def _plan(args: argparse.Namespace):
    """The search plan from the options; a bad space or budget is refused before anything starts."""
    from tasks.search import SearchPlan, default_space
    from tasks.space import COURSE_SPACE, parse_space, read_space

    space = (read_space(args.space) if args.space and Path(args.space).is_file() else
             parse_space(args.space) if args.space else default_space(args.strategy, COURSE_SPACE))
    return SearchPlan(args.strategy, space, n_iter=args.n_iter, seed=args.seed, grid_points=args.grid_points,
                      population=args.population, max_failures=args.max_failures)


def _search(args: argparse.Namespace, server: EmbeddedServer):
    from flows.search import with_workers

    course = COURSE[args.task]
    with server.api():
        return with_workers(args.workers)(plan=args.plan, train=_params(args, course, args.model or course.model),
                                          task=args.task, data=args.data, target=args.target,
                                          artifacts=args.artifacts, force=args.force, workers=args.workers)


def _run(args: argparse.Namespace, server: EmbeddedServer):
    if args.flow == "search":
        return _search(args, server)
    if args.flow == "zoo":
        from flows.zoo import zoo

        models = args.model.split(",") if args.model else None
        with server.api():
            course = COURSE[args.task]
            return zoo(task=args.task, models=models, train=_params(args, course, course.model), data=args.data,
                       target=args.target, artifacts=args.artifacts, force=args.force)
    flow = getattr(importlib.import_module(f"flows.{args.flow}"), args.flow)
    with server.api():
        return flow(train=_params(args, COURSE[args.flow], args.model), data=args.data, target=args.target,
                    artifacts=args.artifacts, force=args.force)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "list", False):
        return _list_models()
    if args.flow == "lineage":
        from tasks.store import ArtifactStore

        try:
            print("\n".join(ArtifactStore(args.artifacts).lineage(args.target)))
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    if args.data and not args.target:
        parser().error("--data needs --target COLUMN")
    if args.flow == "search":
        try:
            args.plan = _plan(args)
        except ValueError as error:  # SpaceError too
            print(f"error: {error}", file=sys.stderr)
            return 2
    _quiet_defaults()
    if args.flow == "serve":
        return _serve(args)
    try:
        with started() as server:
            summary = _run(args, server)
    except Exception as error:  # the flow already logged the traceback; say what failed, plainly
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary))
        return 0
    if args.flow == "search":
        print(f"best of {summary['trials']}: {summary['best_params']} (val_loss {summary['best_val_loss']:.4f})")
    for model, test in (summary["test"].items() if args.flow == "zoo" else [(args.model or "best", summary["test"])]):
        print(f"{summary['flow']} run {summary['run_id']}: {model} test "
              + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))
    for stage, path in summary["artifacts"].items():
        print(f"  {stage:10s} {path}")
    return 0


def exit_without_teardown(finished: list[int]) -> None:
    """The last exit handler: after a run that returned, leave without the interpreter's teardown.

    Freeing the modules of TensorFlow, Great Expectations and Prefect takes ~1.6 s on this
    2-core machine (0.8 s for Keras alone) and does nothing a finished run needs: artifacts
    are already fsync'd, Prefect's own exit handlers (last logs and events) ran before this
    one, and logging and the standard streams are flushed here. ``main`` returns its exit
    code for failed runs too (1); only an exception escaping it, or an argparse exit
    (SystemExit), takes Python's normal path.
    """
    if not finished:
        return
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(finished[0])


if __name__ == "__main__":
    _finished: list[int] = []
    atexit.register(exit_without_teardown, _finished)  # registered first, so it runs last
    _finished.append(main())
    sys.exit(_finished[0])
