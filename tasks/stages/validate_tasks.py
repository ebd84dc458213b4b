"""The three validation points as Prefect tasks: each runs its point on the whole data
(``tasks/stages/validate.py``) or, for a table streamed a row group at a time, on profiles
reduced over the groups (``tasks/stages/validate_stream.py``, in ``workers`` parts side by side:
``tasks/stages/fan_out.py``), writes the report and passes its
input on. Apart from both, so that neither imports the other's caller."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.stages.validate import CheckFailed, Report, validate_raw, validate_scaled, validate_split
from tasks.stages.validate_stream import validate_raw_streamed, validate_scaled_streamed, validate_split_streamed
from tasks.store.artifacts import DATA_DOCS, ArtifactRef, ArtifactStore
from tasks.store.dataset import is_streamed, read_frame, read_index
from tasks.store.stage import StageRun, logger, reported


def data_docs_site(artifacts: str) -> str | None:
    """This flow run's Data Docs folder (none outside a flow run: nothing to name it after), in the
    store's folder, or, for a store named by a URL, in this host's working copy of it."""
    from prefect.runtime import flow_run

    return str(ArtifactStore(artifacts).root.resolve() / DATA_DOCS / str(flow_run.id)) if flow_run.id else None


def _validated(point: str, subject: ArtifactRef, parents: list[ArtifactRef], artifacts: str,
               check: Callable[[str | None], Report], force: bool) -> ArtifactRef:
    """Run a validation point once per input; write its report; pass the input on."""
    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        try:
            report = check(data_docs_site(artifacts))
        except CheckFailed as failed:  # the report keeps Great Expectations' result; nothing is cached
            pages = failed.report.pages
            run.put_table(failed.report.table(), validation_seconds=failed.report.seconds, data_docs=tuple(pages))
            logger().error("validation %s failed:\n%s%s", point, "\n".join(f"  - {f.line}" for f in failed.failures),
                           "".join(f"\n  Data Docs: {page}" for page in pages))
            raise
        for warning in report.warnings:
            logger().warning("validation %s: %s", point, warning)
        passed = sum(check["success"] for check in report.checks)
        logger().info("validation %s: %s expectations passed in %.2f s", point,
                      f"{passed} of {len(report.checks)}" if passed < len(report.checks) else passed, report.seconds)
        return {"report": run.put_table(report.table(), validation_seconds=report.seconds,
                                        data_docs=tuple(report.pages), warnings=tuple(report.warnings))}

    run = StageRun(ArtifactStore(artifacts), f"validation-{point}", __name__, parents=parents)
    run.run(produce, force)
    return reported(dataclasses.replace(subject), run)  # a new value: the graph draws validate -> next


@task(name="validate-raw", cache_policy=NO_CACHE)
def validate_raw_task(raw: ArtifactRef, artifacts: str, force: bool = False, workers: int = 1) -> ArtifactRef:
    def check(site: str | None) -> Report:
        if is_streamed(raw):
            return validate_raw_streamed(raw.path, site, parts=workers)
        return validate_raw(read_frame(raw.path), site)
    return _validated("raw", raw, [raw], artifacts, check, force)


@task(name="validate-split", cache_policy=NO_CACHE)
def validate_split_task(index: ArtifactRef, raw: ArtifactRef, artifacts: str, force: bool = False,
                        workers: int = 1) -> ArtifactRef:
    def check(site: str | None) -> Report:
        if is_streamed(index):
            return validate_split_streamed(index.path, raw.rows, site, parts=workers)
        return validate_split(read_index(index.path), raw.rows, site)
    return _validated("split", index, [index, raw], artifacts, check, force)


@task(name="validate-scaled", cache_policy=NO_CACHE)
def validate_scaled_task(scaled: ArtifactRef, artifacts: str, force: bool = False, workers: int = 1) -> ArtifactRef:
    def check(site: str | None) -> Report:
        if is_streamed(scaled):
            return validate_scaled_streamed(scaled.path, site, parts=workers)
        return validate_scaled(read_frame(scaled.path), site)
    return _validated("scaled", scaled, [scaled], artifacts, check, force)
