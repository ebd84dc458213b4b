"""Publishing lineage to Prefect: keys, effective parameters, a stage output's markdown, real artifacts."""
from __future__ import annotations

import base64
import dataclasses
import json
import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from prefect import flow, task
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

from tasks.store.artifacts import ArtifactStore
from tasks.store.lineage import ArtifactRef, RawFile, Training
from tasks.store.publish import (
    _markdown,
    asset_key,
    effective,
    in_a_run,
    publish,
    publish_markdown,
    publish_table,
    slug,
)

RAW_FILE = RawFile("cal_housing.tgz", "aaaa0f6b8c4d1bd43c2fd6d9b0f0c7ad5a4ffad0b9b4b1c4b4c2b0c6dd6f0f1e")
UI = "http://prefect.example:4200"


def _table(values: list[float]) -> pa.Table:
    return pa.table({"row_id": list(range(len(values))), "x": values})


def _training(**hyperparameters) -> Training:
    return Training(model="mlp30", train_seconds=1.5, epochs_run=3, weights=301, resumed_at_epoch=0,
                    best_val_loss=0.42, selected_on="val_loss", hyperparameters=hyperparameters)


@pytest.fixture
def no_ui():
    """No Prefect UI configured (nor an API to infer one from): plain text, no links."""
    with temporary_settings(restore_defaults={PREFECT_API_URL, PREFECT_UI_URL}):
        yield


@pytest.fixture
def with_ui():
    with temporary_settings(updates={PREFECT_UI_URL: UI}):
        yield


# ---- names -----------------------------------------------------------------------------
def test_slug_keeps_lowercase_letters_digits_and_single_runs_of_dashes():
    assert slug("California Housing / Scaled_v2") == "california-housing-scaled-v2"
    assert slug("--Fashion-MNIST (user table).parquet--") == "fashion-mnist-user-table-parquet"
    assert slug("zoo-california-housing") == "zoo-california-housing"


def test_an_asset_key_is_one_per_dataset_and_stage():
    assert asset_key("California Housing", "validation raw") == "keras-flows://california-housing/validation-raw"
    assert asset_key("fashion-mnist", "model") == "keras-flows://fashion-mnist/model"


# ---- effective parameters --------------------------------------------------------------
def test_a_model_record_s_hyperparameters_replace_the_none_defaults(tmp_path):
    store = ArtifactStore(tmp_path)
    weights = tmp_path / "model.keras"
    weights.write_bytes(b"model weights")
    params = {"model": "mlp30", "learning_rate": None, "epochs": 20, "batch_size": None}
    ref = store.put_file(weights, "model", params=params,
                         training=_training(learning_rate=0.001, batch_size=32, optimizer="sgd"))

    assert effective(store.record(ref), params) == {"model": "mlp30", "epochs": 20, "learning_rate": 0.001,
                                                    "batch_size": 32, "optimizer": "sgd"}


def test_without_a_model_record_the_parameters_stay_as_given(tmp_path):
    store = ArtifactStore(tmp_path)
    ref = store.put_table(_table([1.0, 2.0]), "scaled", params={"scaler": None})

    assert effective(store.record(ref), {"scaler": None, "seed": 7}) == {"scaler": None, "seed": 7}
    assert effective(None, {"learning_rate": None}) == {"learning_rate": None}


# ---- the markdown of a stage output ----------------------------------------------------
@pytest.fixture
def stage_output(tmp_path):
    """A split index made from a raw table, which came from a raw file."""
    store = ArtifactStore(tmp_path / "store")
    raw = store.put_table(_table([1.0, 2.0, 3.0, 4.0]), "raw", parents=[RAW_FILE], dataset="california-housing")
    split = store.put_table(_table([1.0, 2.0, 3.0]), "split", parents=[raw], dataset="california-housing",
                            params={"test_seed": 7, "valid_seed": 11})
    return store, raw, split


def test_the_markdown_names_the_hash_rows_parameters_run_and_upstream(stage_output, no_ui):
    _, raw, split = stage_output

    text = _markdown("california-housing", split, [raw, RAW_FILE, "extra.csv:beef"], {"test_seed": 7},
                     reused=True, run_id="0b1e-run")

    assert text.splitlines() == [
        "### california-housing / split", "",
        f"- **artifact** `{split.path}`",
        f"- **sha256** `{split.sha256}`",
        "- **rows** 3",
        "- **flow run** `0b1e-run` (outputs reused from the cache)",
        "- **parameters** `test_seed=7`",
        "- **upstream**",
        f"  - raw `{raw.sha256[:16]}` `{raw.path}`",
        f"  - raw file cal_housing.tgz sha256 `{RAW_FILE.sha256}`",
        "  - raw file extra.csv sha256 `beef`",
    ]


def test_with_a_ui_the_markdown_links_the_run_and_each_parent_s_artifact_and_run(stage_output, with_ui):
    store, raw, split = stage_output
    record = store.record(raw)  # as if a flow run had produced the parent
    store.write_json(raw.sidecar_path, dataclasses.replace(record, flow_run_id="parent-run").to_json())

    text = _markdown("California Housing", split, [raw], {}, reused=False, run_id="this-run")

    assert f"- **flow run** [`this-run`]({UI}/runs/flow-run/this-run)" in text.splitlines()
    assert "- **parameters** -" in text.splitlines()
    assert (f"  - raw `{raw.sha256[:16]}` `{raw.path}` [artifact]({UI}/artifacts/key/california-housing-raw)"
            f" · [run]({UI}/runs/flow-run/parent-run)") in text.splitlines()


def test_a_model_s_markdown_shows_its_effective_hyperparameters(tmp_path, no_ui):
    store = ArtifactStore(tmp_path)
    weights = tmp_path / "model.keras"
    weights.write_bytes(b"weights")
    ref = store.put_file(weights, "model", training=_training(learning_rate=0.01))

    text = _markdown("california-housing", ref, [], {"model": "mlp30", "learning_rate": None}, False, None)

    assert "- **parameters** `model=mlp30`, `learning_rate=0.01`" in text.splitlines()
    assert "- **rows** -" in text.splitlines() and "- **flow run** `None`" in text.splitlines()


def _png(path: Path, pixels: np.ndarray) -> Path:
    import matplotlib.image

    matplotlib.image.imsave(path, pixels)
    return path


def test_a_small_png_is_embedded_and_a_large_one_is_not(tmp_path, no_ui):
    store = ArtifactStore(tmp_path / "store")
    rng = np.random.default_rng(0)
    small = store.put_file(_png(tmp_path / "curve.png", rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)), "plot")
    large = store.put_file(_png(tmp_path / "noise.png", rng.integers(0, 255, (420, 420, 3), dtype=np.uint8)),
                           "plot-large")
    assert Path(small.path).stat().st_size < 400_000 <= Path(large.path).stat().st_size

    shown = _markdown("fashion-mnist", small, [], {}, False, "r")
    linked = _markdown("fashion-mnist", large, [], {}, False, "r")

    image = re.fullmatch(r"!\[plot\]\(data:image/png;base64,(.+)\)", shown.splitlines()[-1])
    assert image and base64.b64decode(image.group(1)) == Path(small.path).read_bytes()
    assert "data:image/png" not in linked and linked.splitlines()[-1] == "- **upstream**"


@pytest.fixture(scope="module")
def data_docs_pages(housing, tmp_path_factory) -> tuple[Path, list[str]]:
    """Great Expectations' real Data Docs pages of two checks, in a run's site."""
    from tasks.checks.gx import Check, expect, run_suites

    site = tmp_path_factory.mktemp("artifacts") / "data-docs" / "run-publish"
    frame = pd.DataFrame({"MedHouseVal": housing.y[:50]})
    checks = [Check(name, frame, [expect("ExpectColumnValuesToNotBeNull", column="MedHouseVal")], "row")
              for name in ("target", "features")]
    outcome, _ = run_suites("raw", checks, str(site))
    return site, outcome.pages


def test_a_validation_report_links_each_data_docs_page_and_names_its_site(data_docs_pages, tmp_path, no_ui):
    site, pages = data_docs_pages
    assert all(Path(page).is_file() for page in pages)
    store = ArtifactStore(tmp_path)
    report = store.put_table(pa.table({"frame": ["target", "features"]}), "validation-raw", data_docs=tuple(pages))

    text = _markdown("california-housing", report, [], {}, False, "r")

    links = " · ".join(f"[{Path(page).stem}]({Path(page).as_uri()})" for page in pages)
    assert f"- **Data Docs** {links} (site `{site}`)" in text.splitlines()
    assert [Path(page).stem for page in pages] == ["target", "features"]


# ---- Prefect artifacts -----------------------------------------------------------------
def test_nothing_is_in_a_run_outside_prefect():
    assert in_a_run() is False


@task
def _produce_and_publish(root: str, dataset: str, table_key: str) -> dict:
    store = ArtifactStore(root)
    raw = store.put_table(_table([1.0, 2.0, 3.0, 4.0]), "raw", parents=[RAW_FILE], dataset=dataset)
    split = store.put_table(_table([1.0, 2.0, 3.0]), "split", parents=[raw], dataset=dataset, params={"seed": 7})
    publish(dataset, {"split": split}, [raw], {"seed": 7}, reused=False)
    publish_table(table_key, [{"split": "train", "rows": 2}, {"split": "test", "rows": 1}], "rows per split")
    return {"in_a_task": in_a_run(), "split": split.to_dict()}


@flow
def _publishing_flow(root: str, dataset: str, table_key: str, markdown_key: str) -> dict:
    from prefect.runtime import flow_run

    publish_markdown(markdown_key, "# written in the flow body", "from the flow")
    made = _produce_and_publish(root, dataset, table_key)
    body = ArtifactStore(root).put_table(_table([9.0]), "summary", dataset=dataset)
    publish(dataset, {"summary": body}, [], {}, reused=False)  # not in a task run: no artifact
    return {**made, "in_the_flow": in_a_run(), "flow_run_id": str(flow_run.id)}


@pytest.fixture(scope="module")
def prefect_server():
    """Prefect's temporary server (on the tests' persistent database): the one a plain flow call
    starts where no API is configured, started here with time to boot on a loaded machine, and
    stopped once this module's last logs and events are sent (as Prefect's own test harness does)
    instead of running until this process exits."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    started_here = not server.running
    server.start(timeout=120)
    yield server
    if started_here:
        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
        server.stop()


def _artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


@pytest.mark.slow
def test_artifacts_are_created_inside_a_flow_run_and_nothing_outside(tmp_path, prefect_server):
    tag = uuid.uuid4().hex[:10]  # the test server's database outlives this run: keys of this run only
    dataset, table_key, markdown_key = f"Demo {tag}", f"demo-{tag}-split-rows", f"demo-{tag}-notes"
    publish_table(f"{table_key}-outside", [{"a": 1}], "outside a run")
    publish_markdown(f"{markdown_key}-outside", "# outside", "outside a run")

    result = _publishing_flow(str(tmp_path / "store"), dataset, table_key, markdown_key)

    assert result["in_the_flow"] is True and result["in_a_task"] is True
    table, = _artifacts(table_key)
    assert (table.type, str(table.flow_run_id), table.description) == ("table", result["flow_run_id"],
                                                                       "rows per split")
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert rows == [{"split": "train", "rows": 2}, {"split": "test", "rows": 1}]
    notes, = _artifacts(markdown_key)
    assert (notes.type, notes.data, str(notes.flow_run_id)) == ("markdown", "# written in the flow body",
                                                                result["flow_run_id"])
    split = ArtifactRef(**result["split"])
    lineage, = _artifacts(slug(f"{dataset}-split"))
    assert lineage.type == "markdown" and lineage.description == f"{dataset} split"
    assert f"- **sha256** `{split.sha256}`" in lineage.data and result["flow_run_id"] in lineage.data
    assert "- **parameters** `seed=7`" in lineage.data
    assert _artifacts(slug(f"{dataset}-summary")) == []  # published from the flow body, outside any task run
    assert _artifacts(f"{table_key}-outside") == [] and _artifacts(f"{markdown_key}-outside") == []
