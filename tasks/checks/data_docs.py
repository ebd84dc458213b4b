"""Great Expectations' Data Docs for one flow run: ``<artifacts>/data-docs/<run id>/``.

GE's own site builder renders each validation result as a page of every expectation and its
observed value. Those pages are plain HTML, so they read offline; the site's index lists the
validations through JavaScript from public CDNs, so offline it is empty. The stage's artifact
therefore links each validation page itself, and the page paths are known before any HTML is
written: the helper process replies with them and renders after (``tasks/checks/gx.py``).
"""
from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any


def planned(site: str, results: list[tuple[str, Any]], gx_context
            ) -> tuple[list[str], Callable[[], str | None]]:
    """The pages that ``results`` (check name, GE validation result) will have in ``site``,
    and the call that writes them with ``gx_context`` (it returns what went wrong, if anything:
    a report that cannot be written does not fail the run; ``error.txt`` in the site says why)."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run = RunIdentifier(run_name=os.path.basename(os.path.normpath(site)))
    keys = [ValidationResultIdentifier(ExpectationSuiteIdentifier(result.suite_name), run, check.replace(" ", "-"))
            for check, result in results]
    for _, result in results:
        result.meta["run_id"] = run  # the page's "Run Name" is the flow run's id
    pages = [os.path.join(site, "validations", *key.to_tuple()) + ".html" for key in keys]
    return pages, lambda: _quietly(site, lambda: _build(gx_context, site, keys, [r for _, r in results]))


def _quietly(site: str, build: Callable[[], None]) -> str | None:
    try:
        build()
    except Exception as error:  # noqa: BLE001 - a report, not the run: say why beside it
        try:
            os.makedirs(site, exist_ok=True)
            with open(os.path.join(site, "error.txt"), "w") as note:
                note.write(traceback.format_exc())
        except OSError:
            pass
        return f"{type(error).__name__}: {error}"
    return None


def _build(gx_context, site: str, keys: list, results: list) -> None:
    """Store the results in the context and build the run's site from them alone (a served
    process validates many runs: other runs' results are dropped from the store)."""
    store = gx_context.validation_results_store
    run_name = keys[0].run_id.run_name if keys else None
    for key in store.list_keys():
        if key.run_id.run_name != run_name:
            store.remove_key(key)
    for key, result in zip(keys, results):
        store.set(key, result)
    name = f"run-{run_name}"
    if name not in (gx_context.variables.data_docs_sites or {}):
        gx_context.add_data_docs_site(site_name=name, site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": site},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "show_cta_footer": False}})
    gx_context.build_data_docs(site_names=[name], resource_identifiers=keys)
