"""Serve the flows as scheduled deployments (``python -m flows serve ...``).

Needs a Prefect server: ``prefect server start`` and PREFECT_API_URL pointing at it.
Stop with SIGTERM (or Ctrl-C): Prefect pauses the deployments and deletes their scheduled
runs, so nothing is left waiting for a worker that is gone.
"""
from __future__ import annotations

import argparse
import contextlib
import tomllib
from pathlib import Path
from typing import Any

from tasks.core.errors import OptionError
from tasks.store.remote import is_url


def _flows() -> dict[str, Any]:
    from flows.classification import classification
    from flows.predict import predict
    from flows.regression import regression
    from flows.search import search
    from flows.zoo import zoo

    return {"classification": classification, "regression": regression, "zoo": zoo, "search": search,
            "predict": predict}


def read_config(path: str | Path) -> list[dict[str, Any]]:
    """``[[deployment]]`` tables: flow, name, interval (seconds) or cron, parameters (and for a
    search: runner and address, where its trials run)."""
    specs = tomllib.loads(Path(path).read_text()).get("deployment", [])
    if not specs:
        raise OptionError(f"{path}: no [[deployment]] tables")
    return specs


def pinned(location: str) -> str:
    """A path made absolute (a served run may start in another folder); a URL as it is."""
    return location if is_url(location) else str(Path(location).resolve())


def spec_of(args: argparse.Namespace) -> dict[str, Any]:
    """The deployment ``python -m flows serve FLOW --interval|--cron ...`` asks for: the flow's
    parameters that the training (and, for a search, the search) options set; the flow's own
    defaults, the course's set-up, stand for the rest."""
    from flows.launch.options import plan_options, training_options
    from flows.launch.table_options import table_options

    parameters = {**({"model": args.model} if args.model else {}), **training_options(args),
                  "target": args.target, **table_options(args),
                  **({"scale_target": args.scale_target} if args.flow_name != "classification" else {}),
                  # served runs may start elsewhere: pin the paths
                  "data": pinned(args.data) if args.data else None, "artifacts": pinned(args.artifacts)}
    spec = {"flow": args.flow_name, "name": args.name or f"{args.flow_name}-scheduled",
            "interval": args.interval, "cron": args.cron, "parameters": parameters}
    if args.flow_name == "search":
        parameters.update(plan_options(args), workers=args.workers)
        spec.update(runner=args.runner, address=args.address)
    return spec


def deployments(specs: list[dict[str, Any]]) -> list[Any]:
    flows, built = _flows(), []
    for spec in specs:
        name = spec.get("flow")
        if name not in flows:
            raise OptionError(f"unknown flow {name!r} in a deployment; choose from {sorted(flows)}")
        if bool(spec.get("interval")) == bool(spec.get("cron")):
            raise OptionError(f"deployment of {name!r}: give exactly one of interval (seconds) or cron")
        flow = flows[name]
        if name == "search":  # its trials' runner is the flow's, not a parameter
            from flows.launch.runners import with_runner

            flow = with_runner(flow, spec.get("parameters", {}).get("workers", 1), spec.get("runner", "process"),
                               spec.get("address"))
        built.append(flow.to_deployment(
            name=spec.get("name", f"{name}-scheduled"), interval=spec.get("interval"), cron=spec.get("cron"),
            parameters=spec.get("parameters", {})))
    return built


def serve(specs: list[dict[str, Any]]) -> None:
    """Block, running each deployment on its schedule, until SIGTERM / Ctrl-C. One run at a time:
    a run that comes due while another trains waits for it, rather than both fighting for the
    cores (a schedule whose runs outlast its interval would otherwise pile them up)."""
    from prefect import serve as prefect_serve

    built = deployments(specs)
    try:
        prefect_serve(*built, limit=1)
    finally:
        _leave_nothing_scheduled([d.full_name for d in built])


def _leave_nothing_scheduled(names: list[str]) -> None:
    """Pause the served deployments and delete their scheduled runs. Prefect's runner does both
    on SIGTERM, but a run its server's scheduler inserted in that same moment survives (seen in
    CI on a loaded machine), and a SIGTERM before the runner started skips the pause."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound

    scheduled = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])))
    with get_client(sync_client=True) as client:
        ids = []
        for name in names:
            with contextlib.suppress(ObjectNotFound):  # stopped before it was created
                ids.append(client.read_deployment_by_name(name).id)
        for deployment_id in ids:
            client.pause_deployment(deployment_id)
        if not ids:
            return
        served = DeploymentFilter(id=DeploymentFilterId(any_=ids))
        for run in client.read_flow_runs(deployment_filter=served, flow_run_filter=scheduled):
            client.delete_flow_run(run.id)
