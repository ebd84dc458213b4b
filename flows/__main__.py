"""Command line: ``python -m flows classification|regression|zoo|search|serve|predict|export|champion|lineage|verify``.

Runs a flow on Prefect's embedded server, or on the server named by PREFECT_API_URL.
With ``--json`` the last line printed is one JSON object: flow, run_id, test metrics
and the path of every artifact, for scripts and schedulers.
"""
from __future__ import annotations

from tasks.core.allocator import without_huge_page_advice

without_huge_page_advice()  # before the imports below load numpy; the run's processes inherit it

import argparse  # noqa: E402
import atexit  # noqa: E402
import contextlib  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from flows.launch.console import FilteredStderr, brief_console, error_block  # noqa: E402
from flows.launch.embedded import EmbeddedServer, shared  # noqa: E402
from flows.launch.options import check_options, parser, plan_options, search_plan, training_options  # noqa: E402
from flows.launch.table_options import table_options  # noqa: E402
from flows.launch.teardown import exit_without_teardown  # noqa: E402
from tasks.core.errors import InputError  # noqa: E402


def _quiet_defaults() -> None:
    """Settings a user would otherwise have to find: no telemetry, no TensorFlow chatter."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def prefetch(*modules: str) -> None:
    """Import heavy libraries on a side thread: they load while Prefect starts its server."""
    for name in modules:
        threading.Thread(target=importlib.import_module, args=(name,), daemon=True).start()


@contextlib.contextmanager
def started(keras: bool = True, pool: int = 0) -> Iterator[EmbeddedServer]:
    """What a run starts before its heavy imports, each on a core the GIL does not hold:
    Great Expectations' helper process, the embedded server (unless one is configured) and
    Keras's import on a side thread (not for a search whose trials all run in workers), or,
    for a search on a local pool of ``pool`` workers, the template process they fork from.
    The helper is stopped on the way out; the server when the process exits (``embedded``)."""
    from tasks.checks.gx import start_worker, stop_worker

    try:
        start_worker()
        server = shared()
        if keras:
            prefetch("keras")
        if pool > 1:
            from flows.launch.runners import prestart

            prestart(pool, server.url)
        yield server
    finally:
        stop_worker()


def _list_models() -> int:
    from tasks.model.registry import MODELS

    for name, entry in MODELS.items():
        print(f"{name:24s} {entry.task:15s} {entry.summary}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from flows.launch.serve import read_config, serve, spec_of

    if args.config:
        specs = read_config(args.config)
    elif args.flow_name and (args.interval or args.cron):
        specs = [spec_of(args)]
    else:
        parser().error("serve needs FLOW with --interval or --cron, or --config FILE")
    serve(specs)
    return 0


def _search(args: argparse.Namespace, server: EmbeddedServer):
    from flows.launch.runners import with_runner
    from flows.search import search

    flow = with_runner(search, args.workers, args.runner, args.address)
    with server.api():
        return flow(**plan_options(args), task=args.task, model=args.model, **training_options(args), data=args.data,
                    target=args.target, **table_options(args), scale_target=args.scale_target,
                    artifacts=args.artifacts, force=args.force,
                    workers=args.workers)


def _run(args: argparse.Namespace, server: EmbeddedServer):
    if args.flow == "search":
        return _search(args, server)
    if args.flow == "zoo":
        from flows.zoo import zoo

        models = args.model.split(",") if args.model else None
        with server.api():
            return zoo(task=args.task, models=models, **training_options(args), data=args.data, target=args.target,
                       **table_options(args), scale_target=args.scale_target, artifacts=args.artifacts,
                       force=args.force)
    if args.flow == "predict":
        from flows.predict import predict

        with server.api():
            return predict(data=args.data, model=args.model, dataset=args.dataset, out=args.out, strict=args.strict,
                           stream=args.stream, artifacts=args.artifacts)
    flow = getattr(importlib.import_module(f"flows.{args.flow}"), args.flow)
    if args.runner == "dask":  # the scans' parts on a Dask cluster (the flow's own stages stay here)
        from flows.launch.runners import with_runner

        flow = with_runner(flow, args.workers, "dask", args.address)
    scaling = {"scale_target": args.scale_target} if hasattr(args, "scale_target") else {}
    with server.api():
        return flow(model=args.model, **training_options(args), data=args.data, target=args.target, **scaling,
                    **table_options(args), workers=args.workers, artifacts=args.artifacts, force=args.force)


def main(argv: list[str] | None = None) -> int:
    """Run what the options ask for; the exit code: 0 done, 2 the input or options are at fault
    (one error block, no traceback unless --debug), 1 anything else (with its traceback)."""
    args = parser().parse_args(argv)
    if getattr(args, "list", False):
        return _list_models()
    quiet = None if args.debug else FilteredStderr()
    try:
        return _main(args)
    except InputError as error:
        if args.debug:
            traceback.print_exc()
        print(error_block(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are kept; run the same command again to go on", file=sys.stderr)
        return 130
    except Exception:  # the program's fault: all the detail there is
        traceback.print_exc()
        return 1
    finally:
        if quiet is not None:
            quiet.close()


def _verify(args: argparse.Namespace) -> int:
    from tasks.store.verify import verify

    checked, problems = verify(args.artifacts)
    for problem in problems:
        print(problem)
    print(f"{args.artifacts}: {checked} artifacts checked, " +
          (f"{len(problems)} problem{'s' if len(problems) != 1 else ''}" if problems else "all intact"))
    return 2 if problems else 0


def _champion(args: argparse.Namespace) -> int:
    from tasks.serving.champion import history, matching_gates
    from tasks.store.artifacts import ArtifactStore

    store = ArtifactStore(args.artifacts)
    known = matching_gates(store, args.dataset)
    for gate in known:
        decisions = history(store, gate)
        now = [d for d in decisions if d.promoted]
        print(f"{known[gate]}: " + (f"champion {now[-1].model.sha256[:16]} ({now[-1].metric} {now[-1].value:.4f}) "
                                    f"{store.url(now[-1].model.path)}" if now else
                                    "no champion (no model had a finite score)"))
        for d in decisions:
            print(f"  {d.decided_at}  {d.model.sha256[:16]}  {d.metric} {d.value:.4f}  "
                  f"{'promoted' if d.promoted else 'kept'}: {d.reason}")
    return 0


def _main(args: argparse.Namespace) -> int:
    if args.flow == "verify":
        return _verify(args)
    if args.flow == "champion":
        return _champion(args)
    if args.flow == "export":
        _quiet_defaults()
        from tasks.serving.export import export
        from tasks.serving.resolve import trained
        from tasks.store.artifacts import ArtifactStore

        store = ArtifactStore(args.artifacts)
        print(export(store, trained(store, args.model, args.dataset)))
        return 0
    if args.flow == "lineage":
        from tasks.store.verify import lineage_lines

        print("\n".join(lineage_lines(args.artifacts, args.target)))
        return 0
    check_options(args)
    if args.flow == "search" or getattr(args, "flow_name", None) == "search":
        search_plan(args)  # a bad space or budget is refused before anything starts
    _quiet_defaults()
    if args.flow == "serve":
        return _serve(args)
    if not args.debug:
        brief_console()
    in_workers = args.flow == "search" and (args.workers > 1 or args.runner == "dask")
    pool = args.workers if args.flow == "search" and args.runner == "process" else 0
    with started(keras=not in_workers, pool=pool) as server:
        summary = _run(args, server)
    _print(args, summary)
    return 0


def _print(args: argparse.Namespace, summary: dict) -> None:
    if args.json:
        print(json.dumps(summary))
        return
    if args.flow == "predict":
        print(f"predict run {summary['run_id']}: {summary['rows']} rows scored with {summary['model']}")
        for stage, path in summary["artifacts"].items():
            print(f"  {stage:10s} {path}")
        return
    if args.flow == "search":
        print(f"best of {summary['trials']}: {summary['best_params']} (val_loss {summary['best_val_loss']:.4f})")
    for model, test in (summary["test"].items() if args.flow == "zoo" else [(args.model or "best", summary["test"])]):
        print(f"{summary['flow']} run {summary['run_id']}: {model} test "
              + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))
    for stage, path in summary["artifacts"].items():
        print(f"  {stage:10s} {path}")


if __name__ == "__main__":
    # after a run that returned, leave without the interpreter's teardown; main returns its exit
    # code for failed runs too (1, 2 or 130): only an exception escaping it, or an argparse exit
    # (SystemExit), takes Python's normal path
    _finished: list[int] = []
    atexit.register(exit_without_teardown, _finished)  # registered first, so it runs last
    _finished.append(main())
    sys.exit(_finished[0])
