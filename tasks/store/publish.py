"""Lineage made visible in the Prefect UI, which has no asset graph of its own.

For every stage output: a markdown artifact under a stable key per dataset and stage
(the Artifacts page then shows that stage's history across runs) naming the hash,
parameters, upstream artifacts and run; and a Prefect asset materialization event
(``prefect.asset.materialization.succeeded``) whose related resources are the upstream
assets, which the Event Feed shows. Outside a Prefect run both are skipped.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from tasks.store.lineage import ArtifactRef, Lineage, RawFile

ASSET_SCHEME = "keras-flows"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def asset_key(dataset: str, stage: str) -> str:
    """One stable asset per dataset and stage; each materialization names its content hash."""
    return f"{ASSET_SCHEME}://{slug(dataset)}/{slug(stage)}"


def _parent_key(dataset: str, parent: ArtifactRef | RawFile | str) -> str:
    if isinstance(parent, ArtifactRef):
        return asset_key(dataset, parent.stage)
    return f"file://{_raw_file(parent)[0]}"  # a raw file, by name


def _raw_file(parent: RawFile | str) -> tuple[str, str]:
    """(name, sha256) of a raw-file parent: a verified file, or "name:sha256" before loading."""
    if isinstance(parent, RawFile):
        return parent.file, parent.sha256
    name, _, digest = str(parent).partition(":")
    return name, digest


def ui_url() -> str | None:
    """The Prefect UI's address for links (PREFECT_UI_URL, else the API's without ``/api``)."""
    try:
        from prefect.settings import get_current_settings

        return (get_current_settings().ui_url or "").rstrip("/") or None
    except Exception:  # no Prefect settings: plain text, no links
        return None


def _links(dataset: str, parent: ArtifactRef, ui: str | None) -> str:
    """Links to the parent's artifact page (its stable key) and to the run that produced it."""
    if ui is None:
        return ""
    links = [f"[artifact]({ui}/artifacts/key/{slug(f'{dataset}-{parent.stage}')})"]
    record = _record(parent)  # none this process can read: the artifact link alone
    if record is not None and record.flow_run_id:
        links.append(f"[run]({ui}/runs/flow-run/{record.flow_run_id})")
    return " " + " · ".join(links)


def _record(ref: ArtifactRef) -> Lineage | None:
    try:
        return Lineage.read(ref.sidecar_path)
    except Exception:  # no record yet, or not one this version reads
        return None


def effective(record: Lineage | None, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as they took effect: a model's record holds the hyperparameters its
    defaults filled in (``learning_rate=0.01``, not ``None`` for "the model's default")."""
    if record is None or record.training is None:
        return params
    return {**{k: v for k, v in params.items() if v is not None}, **record.training.hyperparameters}


def _data_docs(record: Lineage | None) -> list[str]:
    """A validation report's links to Great Expectations' page of each check (every expectation
    and its observed value), in the Data Docs site of the run that validated."""
    if record is None or not record.data_docs:
        return []
    pages = [Path(page) for page in record.data_docs]
    return ["- **Data Docs** " + " · ".join(f"[{page.stem}]({page.as_uri()})" for page in pages)
            + f" (site `{pages[0].parents[4]}`)"]


def _markdown(dataset: str, ref: ArtifactRef, parents: list, params: dict[str, Any], reused: bool,
              run_id: str | None) -> str:
    ui, record = ui_url(), _record(ref)  # the sidecar, read once
    run = f"[`{run_id}`]({ui}/runs/flow-run/{run_id})" if ui and run_id else f"`{run_id}`"
    lines = [f"### {dataset} / {ref.stage}", "",
             f"- **artifact** `{ref.path}`", f"- **sha256** `{ref.sha256}`",
             f"- **rows** {ref.rows if ref.rows is not None else '-'}",
             f"- **flow run** {run}" + (" (outputs reused from the cache)" if reused else ""),
             "- **parameters** " + (", ".join(f"`{k}={v}`" for k, v in effective(record, params).items()) or "-"),
             *_data_docs(record), "- **upstream**"]
    for parent in parents:
        if isinstance(parent, ArtifactRef):
            lines.append(f"  - {parent.stage} `{parent.sha256[:16]}` `{parent.path}`" + _links(dataset, parent, ui))
        else:
            name, digest = _raw_file(parent)
            lines.append(f"  - raw file {name} sha256 `{digest or '-'}`")
    if ref.path.endswith(".png") and Path(ref.path).stat().st_size < 400_000:  # show, don't link
        data = base64.b64encode(Path(ref.path).read_bytes()).decode()
        lines += ["", f"![{ref.stage}](data:image/png;base64,{data})"]
    return "\n".join(lines)


def in_a_run() -> bool:
    """Whether this code runs inside a Prefect flow or task run (a plain call, as in a unit test
    or a notebook, has no run to attach artifacts to)."""
    from prefect.context import FlowRunContext, TaskRunContext

    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    """A Prefect table artifact under a stable key (its history is kept across runs); nothing
    outside a run."""
    if in_a_run():
        from prefect.artifacts import create_table_artifact

        create_table_artifact(key=slug(key), table=rows, description=description)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    """A Prefect markdown artifact under a stable key; nothing outside a run."""
    if in_a_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(key=slug(key), markdown=markdown, description=description)


def publish(dataset: str, refs: dict[str, ArtifactRef], parents: list, params: dict[str, Any],
            reused: bool) -> None:
    """Markdown artifact + asset event for each output of one stage run (no-op outside a task run)."""
    from prefect.events import emit_event
    from prefect.runtime import flow_run, task_run

    if task_run.id is None:
        return
    upstream = [{"prefect.resource.id": _parent_key(dataset, p), "prefect.resource.role": "asset"}
                for p in parents]
    for ref in refs.values():
        publish_markdown(f"{dataset}-{ref.stage}", _markdown(dataset, ref, parents, params, reused, flow_run.id),
                         f"{dataset} {ref.stage}")
        if not reused:
            emit_event(event="prefect.asset.materialization.succeeded",
                       resource={"prefect.resource.id": asset_key(dataset, ref.stage),
                                 "prefect.resource.name": f"{dataset} {ref.stage}"},
                       related=upstream, payload={"sha256": ref.sha256, "path": ref.path, "rows": ref.rows})
