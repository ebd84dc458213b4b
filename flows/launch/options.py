"""The command line's options: what each flow takes, with the course's set-up as defaults.

Kept apart from ``__main__`` (which runs what the options ask for) and light: building the
parser imports no Prefect, Keras or Great Expectations, so ``--help`` answers at once.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from flows.launch.device_options import add_device_options, check_device_options
from flows.launch.table_options import add_fan_out_options, add_table_options, check_table_options
from tasks.core.errors import OptionError
from tasks.core.params import COURSE, SCALE_TARGET, SCHEDULES, TABLE, TrainParams
from tasks.search.plan import RUNNERS, STRATEGIES, SURROGATES
from tasks.store.remote import Remote, is_url

DATASET = {"classification": "Fashion-MNIST", "regression": "California housing"}
DESCRIPTION = ("Command line: ``python -m flows classification|regression|zoo|search|serve|predict|export|"
               "champion|lineage|verify [options]``.")


def _training_options(sub: argparse.ArgumentParser, course: TrainParams | None, model_help: str) -> None:
    """The training options. Those whose default depends on the data (model, epochs, patience,
    min_delta) default to empty, the flow's set-up: ``course``'s for its dataset, ``TABLE``'s with
    --data; their help names both values, or, where ``course`` is None (zoo, serve, search), says so."""
    def either(name: str) -> str:  # the course's set-up for its dataset, the table set-up with --data
        if course is None:
            return " (default: the task's course set-up; with --data, the table set-up)"
        task = next(task for task, known in COURSE.items() if known is course)
        return f" (default: {getattr(course, name):g}, the course's; {getattr(TABLE[task], name):g} with --data)" \
            if name != "model" else f" (default: {course.model}, the course's; {TABLE[task].model} with --data)"

    sub.add_argument("--model", help=model_help + (either("model") if course else ""))
    sub.add_argument("--epochs", type=int, help="most epochs (EarlyStopping may stop sooner)" + either("epochs"))
    sub.add_argument("--batch-size", type=int, default=TrainParams.batch_size,
                     help="examples per gradient step (default: %(default)s)")
    sub.add_argument("--steps-per-execution", type=int, default=TrainParams.steps_per_execution, metavar="N",
                     help="batches per compiled training call: the same gradient steps as 1, dispatched "
                          "fewer times (default: %(default)s)")
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
    sub.add_argument("--patience", type=int, help="EarlyStopping: epochs without progress on the validation loss "
                                                  "before it stops" + either("patience"))
    sub.add_argument("--min-delta", type=float, help="EarlyStopping: the least decrease of the validation loss "
                                                     "that counts as progress" + either("min_delta"))
    sub.add_argument("--data", metavar="PATH|URL", help="your own table (.csv or .parquet, a path or a URL) instead")
    sub.add_argument("--target", metavar="COLUMN", help="with --data: the label/value column")
    add_table_options(sub)
    if course is not COURSE["classification"]:  # a classifier's target is its labels
        sub.add_argument("--scale-target", choices=SCALE_TARGET, default="auto",
                         help="regression: learn the target standardised on the train rows; the model still "
                              "answers in the target's units. auto: yes for your own table, no for the course's "
                              "housing (default: %(default)s)")
    sub.add_argument("--artifacts", default="artifacts", metavar="DIR|URL",
                     help="artifact store: a folder, or a URL such as s3://bucket/prefix (default: %(default)s)")
    sub.add_argument("--force", action="store_true", help="re-run every stage, ignoring the cache")
    sub.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    sub.add_argument("--debug", action="store_true",
                     help="show tracebacks and TensorFlow's start-up lines (hidden for a failure the input caused)")


def _search_options(sub, serving: bool = False) -> None:
    sub.add_argument("--strategy", choices=STRATEGIES, default="random",
                     help="sweep, grid, random, genetic (NSGA-II), heuristic (TPE or a Gaussian process), "
                          "halving (successive halving on epochs), or scikit-learn's own searches with 3-fold "
                          "cross-validation (default: %(default)s)")
    if not serving:
        sub.add_argument("--task", choices=list(COURSE), default="regression", help="(default: %(default)s)")
    sub.add_argument("--space", help='e.g. "learning_rate=loguniform(1e-4,3e-2) depth=int(1,4) '
                                     'optimizer=choice(sgd,adam)", or a TOML file with a [space] table '
                                     "(default: the course's depth 1..4, width 1..99, learning rate 1e-4..1e-2; "
                                     "for sweep its six learning rates)")
    sub.add_argument("--n-iter", type=int, default=10,
                     help="trials of random, genetic, heuristic and halving; candidates of sklearn-random and "
                          "sklearn-halving (default: %(default)s)")
    sub.add_argument("--grid-points", type=int, default=3,
                     help="grid: points per numeric parameter (default: %(default)s)")
    sub.add_argument("--population", type=int, default=4, help="genetic: trials per generation (default: %(default)s)")
    sub.add_argument("--startup-trials", type=int,
                     help="heuristic: random trials before the model proposes (default: half of --n-iter, at most 5)")
    sub.add_argument("--surrogate", choices=SURROGATES, default="tpe",
                     help="heuristic: the model that proposes, TPE or a Gaussian process (gp: needs PyTorch, "
                          "pip install -e '.[gp]') (default: %(default)s)")
    sub.add_argument("--min-epochs", type=int,
                     help="halving: epochs of the first rung (default: --epochs / reduction-factor^3)")
    sub.add_argument("--reduction-factor", type=int, default=3,
                     help="halving: about 1 trial in this many goes on at each rung (default: %(default)s)")
    sub.add_argument("--max-failures", type=int, default=3,
                     help="failed trials in a row that stop the search (default: %(default)s)")
    sub.add_argument("--workers", type=int, default=1,
                     help="trials in parallel, one process each (default: %(default)s)")
    sub.add_argument("--runner", choices=RUNNERS, default="process",
                     help="process: trials in this machine's processes; dask: on a Dask cluster, a local one of "
                          "--workers processes unless --address names a scheduler (default: %(default)s)")
    sub.add_argument("--address", metavar="tcp://HOST:PORT", help="with --runner dask: an existing scheduler")


def _store_options(sub: argparse.ArgumentParser) -> None:
    """The options of the commands that read a store and run no training."""
    sub.add_argument("--artifacts", default="artifacts", metavar="DIR|URL",
                     help="artifact store: a folder, or a URL such as s3://bucket/prefix (default: %(default)s)")
    sub.add_argument("--debug", action="store_true", help="show the traceback of a failure")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m flows", description=DESCRIPTION,
        epilog="Data: built-in datasets are read from data/, then $DATA_MIRROR, then downloaded. "
               "Artifacts (Parquet + JSON lineage sidecars) go to --artifacts.")
    commands = main.add_subparsers(dest="flow", required=True, metavar="FLOW")
    for name, course in COURSE.items():
        sub = commands.add_parser(name, help=f"{DATASET[name]} {name} (or your own table)",
                                  description=f"Run the {name} flow: load, validate, split, scale, train, "
                                              f"evaluate. Default data: {DATASET[name]}.")
        _training_options(sub, course, "model name in the registry (see `zoo --list`)")
        add_device_options(sub)
        add_fan_out_options(sub)
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
    sub.add_argument("flow_name", nargs="?", choices=[*COURSE, "search"], metavar="FLOW",
                     help="classification, regression or search (with the search options below)")
    when = sub.add_mutually_exclusive_group()
    when.add_argument("--interval", type=int, metavar="SECONDS", help="run every SECONDS")
    when.add_argument("--cron", metavar="EXPR", help='cron schedule, e.g. "0 3 * * *"')
    sub.add_argument("--config", metavar="FILE", help="TOML file of deployments instead of FLOW")
    sub.add_argument("--name", help="deployment name (default: FLOW-scheduled)")
    _training_options(sub, None, "model name (default: the flow's course model)")
    _search_options(sub.add_argument_group("search options (serve search)"), serving=True)

    sub = commands.add_parser("search", help="search hyperparameters: trials on the valid split, best scored on test",
                              description="Prepare the data once, train one trial per configuration (cached: a "
                                          "search run again re-uses finished trials), choose on the validation "
                                          "loss, score the best once on the test split.")
    _search_options(sub)
    _training_options(sub, None, "the model every trial trains (default: the task's course model)")

    sub = commands.add_parser("predict", help="score new data with the champion (skew and drift checked first)",
                              description="Check a table (or idx images) against the training data's columns "
                                          "and profile, then score it with the dataset's champion or a named "
                                          "model and write the predictions as an artifact. Skew (missing, extra "
                                          "or text columns where training had numbers, missing values training did "
                                          "not impute) fails and writes nothing; drift (means, spreads or ranges "
                                          "unlike training's, categories training never saw or in other shares) "
                                          "warns, or fails with --strict.")
    sub.add_argument("--data", required=True, metavar="PATH", help="new rows: .csv, .parquet, or idx images (.gz)")
    sub.add_argument("--model", default="champion",
                     help="champion, or a model artifact's sha256 prefix (default: %(default)s)")
    sub.add_argument("--dataset", help="whose champion, when the store has several (default: its only one)")
    sub.add_argument("--out", metavar="PATH", help="also write the predictions here (.parquet or .csv)")
    sub.add_argument("--strict", action="store_true", help="fail on drift instead of warning")
    sub.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                     help="check and score the table a batch of rows at a time, never whole in memory (default: "
                          "when its values would take over 1 GiB; --no-stream: never)")
    sub.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    _store_options(sub)

    sub = commands.add_parser("export", help="export the champion as a TensorFlow SavedModel for serving",
                              description="Write the champion (or a named model) with its scaler folded in as a "
                                          "TensorFlow SavedModel under ARTIFACTS/export/<model sha256>/, with "
                                          "signature.json naming the input columns: serving needs no project code.")
    sub.add_argument("--model", default="champion",
                     help="champion, or a model artifact's sha256 prefix (default: %(default)s)")
    sub.add_argument("--dataset", help="whose champion, when the store has several (default: its only one)")
    _store_options(sub)

    sub = commands.add_parser("champion", help="show a dataset's champion model and the gate's decisions",
                              description="After the classification and regression flows evaluate a model, it "
                                          "becomes the champion of its dataset (and target) only if its test "
                                          "metric beats the champion's by the stated margin (accuracy +0.001, "
                                          "MSE 0.5%% lower). This prints each champion and the gate's history.")
    sub.add_argument("--dataset", help="which dataset (default: every one in the store)")
    _store_options(sub)

    sub = commands.add_parser("lineage", help="print an artifact's chain back to the raw files",
                              description="Follow an artifact's sidecars back to the raw files' sha256.")
    sub.add_argument("target", help="an artifact path, or a prefix of its sha256")
    _store_options(sub)

    sub = commands.add_parser("verify", help="re-hash every artifact and check its sidecar, parents and cache",
                              description="Check the store: every artifact's bytes against its name, its sidecar, "
                                          "its parents, and every cache entry. Exit code 2 when anything is wrong.")
    _store_options(sub)
    return main


def training_options(args: argparse.Namespace) -> dict:
    """The training options given (the others are left to the flow: the course's set-up)."""
    return {name: value for name in TRAINING_OPTIONS if (value := getattr(args, name, None)) is not None}


TRAINING_OPTIONS = tuple(field.name for field in dataclasses.fields(TrainParams) if field.name != "model")


def plan_options(args: argparse.Namespace) -> dict:
    """The search options as the search flow's parameters."""
    return {"strategy": args.strategy, "space": args.space, "n_iter": args.n_iter, "grid_points": args.grid_points,
            "population": args.population, "max_failures": args.max_failures, "min_epochs": args.min_epochs,
            "reduction_factor": args.reduction_factor, "startup_trials": args.startup_trials,
            "surrogate": args.surrogate}


def search_plan(args: argparse.Namespace):
    """The search plan from the options (``check_options`` first); a bad space or budget is refused before
    anything starts."""
    from tasks.search.plan import make_plan

    options = plan_options(args)
    return make_plan(options.pop("strategy"), options.pop("space"), seed=args.seed, **options)


def check_options(args: argparse.Namespace) -> None:
    """Refuse, before any stage runs, options that cannot work (each named with its value)."""
    import math

    if getattr(args, "address", None) and getattr(args, "runner", None) != "dask":
        raise OptionError("--address names a Dask scheduler: give it with --runner dask")
    positive = {"--epochs": getattr(args, "epochs", None), "--batch-size": getattr(args, "batch_size", None),
                "--depth": getattr(args, "depth", None), "--width": getattr(args, "width", None),
                "--steps-per-execution": getattr(args, "steps_per_execution", None),
                "--workers": getattr(args, "workers", None)}
    for name, value in positive.items():
        if value is not None and value < 1:
            raise OptionError(f"{name} {value}: must be at least 1")
    rate = getattr(args, "learning_rate", None)
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise OptionError(f"--learning-rate {rate}: must be a positive number, e.g. 0.01")
    if getattr(args, "patience", None) is not None and args.patience < 0:
        raise OptionError(f"--patience {args.patience}: must be 0 or more epochs")
    delta = getattr(args, "min_delta", None)
    if delta is not None and not (math.isfinite(delta) and delta >= 0):
        raise OptionError(f"--min-delta {delta}: must be a number of 0 or more, e.g. 0.001")
    if getattr(args, "data", None) and not getattr(args, "target", None) and args.flow != "predict":
        raise OptionError("--data needs --target COLUMN (the label or value column)")
    check_table_options(args)
    check_device_options(args)
    if getattr(args, "data", None) and not is_url(args.data) and not Path(args.data).is_file():
        raise OptionError(f"--data {args.data}: no such file")
    out = getattr(args, "out", None)
    if out and (Path(out).is_dir() or Path(out).suffix.lower() not in (".csv", ".parquet")):
        raise OptionError(f"--out {out}: " + ("a folder; name a file" if Path(out).is_dir() else
                                              "name a .csv or .parquet file"))
    _check_artifacts(getattr(args, "artifacts", None))
    if args.flow != "predict":  # its --model is "champion" or a hash
        _check_models(args)


def _check_artifacts(folder: str | None) -> None:
    """The store must be a folder of its own: not a file, not inside the raw data's folders."""
    import os

    from tasks.core.raw_places import MIRROR_ENV, cache_dir

    if folder is None:
        return
    if is_url(folder):  # a store on object storage: a URL pyarrow can open, with no credentials in it
        Remote(folder)
        return
    path = Path(folder).resolve()
    if path.exists() and not path.is_dir():
        raise OptionError(f"--artifacts {folder}: a file, not a folder")
    for name, raw in ((MIRROR_ENV, os.environ.get(MIRROR_ENV)), ("the data cache", str(cache_dir()))):
        if raw and (path == Path(raw).resolve() or Path(raw).resolve() in path.parents):
            raise OptionError(f"--artifacts {folder}: inside {name} ({raw}); the raw files stay apart from the "
                              "run's outputs: choose another folder")


def _check_models(args: argparse.Namespace) -> None:
    from tasks.model.registry import entry

    task = {"classification": "classification", "regression": "regression"}.get(args.flow) \
        or getattr(args, "task", None) or ("regression" if getattr(args, "flow_name", None) == "search"
                                            else getattr(args, "flow_name", None))
    for name in (getattr(args, "model", None) or "").split(","):
        if name:
            entry(name, task)  # an unknown model, or one of the other task, is named with the choices
