"""End to end against a real Prefect server: runs, retries, artifacts, asset events, UI, schedules."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from flows.regression import regression
from tasks.model.callbacks import CRASH_ENV
from tests.tasks.checks.test_validate import _text

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane


ROOT = Path(__file__).resolve().parents[2]


def _wait(check, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (found := check()):
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _chromium(*args: str) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is required for the UI check (.ci/run installs Debian's chromium)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={tempfile.mkdtemp()}", "--window-size=1400,900", "--virtual-time-budget=15000"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


def _ink(png: Path) -> float:
    """Share of pixels that are not background white: a blank page scores ~0."""
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)[..., :3]
    return float((pixels < 0.95).any(axis=-1).mean())


def test_a_flow_run_is_recorded_with_retries_artifacts_assets_and_shown_in_the_ui(
        on_server, housing_csv, tmp_path, monkeypatch):
    api, started = on_server, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    monkeypatch.setenv(CRASH_ENV, "2")  # training crashes at epoch 2 on its first attempt
    result = regression(model="mlp30", epochs=3, data=str(housing_csv), target="MedHouseVal",
                        artifacts=str(tmp_path / "a"))
    run = api.call("GET", f"/flow_runs/{result['run_id']}")
    assert run["state_type"] == "COMPLETED"

    tasks = api.call("POST", "/task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})
    names = {t["name"].rsplit("-", 1)[0]: t for t in tasks}
    assert {"load", "validate-raw", "split", "validate-split", "scale", "validate-scaled", "train",
            "evaluate"} <= set(names)
    states = [s["name"] for s in api.call("GET", f"/task_run_states/?task_run_id={names['train']['id']}")]
    assert {"AwaitingRetry", "Retrying", "Completed"} <= set(states), states
    model = json.loads(Path(result["artifacts"]["model"]).with_suffix(".json").read_text())
    assert model["training"]["resumed_at_epoch"] == 2

    artifacts = api.call("POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    keys = {a["key"]: a["type"] for a in artifacts}
    assert keys.get("housing-slice-model") == "markdown" and keys.get("housing-slice-test-metrics") == "table"
    curve = next(a for a in artifacts if a["key"] == "housing-slice-curve")
    assert "data:image/png;base64," in curve["data"]  # the learning curve is embedded, so the UI shows it
    residuals = next(a for a in artifacts if a["key"] == "housing-slice-residuals")
    assert "data:image/png;base64," in residuals["data"]  # the report: predicted vs true, residuals by feature
    assert keys.get("housing-slice-regression-medhouseval-champion") == "markdown"
    model_page = next(a for a in artifacts if a["key"] == "housing-slice-model")["data"]
    ui = api.url.removesuffix("/api")  # upstream entries link to their artifact's key page and their run
    assert f"[artifact]({ui}/artifacts/key/housing-slice-scaled)" in model_page
    assert f"[run]({ui}/runs/flow-run/{run['id']})" in model_page
    assert "`optimizer=sgd`" in model_page and "=None`" not in model_page  # effective values

    def materialized():
        page = api.call("POST", "/events/filter", {"filter": {
            "occurred": {"since": started.isoformat(), "until": dt.datetime.now(dt.UTC).isoformat()},
            "event": {"prefix": ["prefect.asset.materialization"]}}, "limit": 50})
        return [e for e in page["events"] if e["resource"]["prefect.resource.id"] == "keras-flows://housing-slice/model"]
    event = _wait(materialized, 30, "the model's asset materialization event")[0]
    assert {"prefect.resource.id": "keras-flows://housing-slice/scaled", "prefect.resource.role": "asset"} in \
        [{k: r[k] for k in ("prefect.resource.id", "prefect.resource.role")} for r in event["related"]]

    page = api.url.removesuffix("/api") + f"/runs/flow-run/{run['id']}"
    dom = _chromium("--dump-dom", page).stdout
    (tmp_path / "flow-run.html").write_text(dom)  # kept for a look when this fails
    assert run["name"] in dom and "regression" in dom
    shot, blank = tmp_path / "flow-run.png", tmp_path / "blank.png"
    _chromium(f"--screenshot={shot}", page)
    _chromium(f"--screenshot={blank}", "about:blank")
    assert _ink(blank) < 0.001 and _ink(shot) > 0.05, (_ink(shot), shot)
    curve_page = api.url.removesuffix("/api") + f"/artifacts/artifact/{curve['id']}"
    curve_shot = tmp_path / "curve.png"
    _chromium(f"--screenshot={curve_shot}", curve_page)
    assert _ink(curve_shot) > 0.05
    report_shot = tmp_path / "residuals.png"
    _chromium(f"--screenshot={report_shot}", api.url.removesuffix("/api") + f"/artifacts/artifact/{residuals['id']}")
    assert _ink(report_shot) > 0.05, report_shot
    validation = next(a for a in artifacts if a["key"] == "housing-slice-validation-raw")["data"]
    docs = re.search(r"\[features\]\((file://[^)]+\.html)\)", validation)  # the stage links its Data Docs pages
    assert docs, validation
    offline = "--host-resolver-rules=MAP * ~NOTFOUND"  # no host name resolves: no network at all
    shown = _text(_chromium(offline, "--dump-dom", docs.group(1)).stdout)
    assert "Expectation Validation Result" in shown and "Status: Succeeded" in shown, shown[:800]
    assert f"Run Name {run['id']}" in shown and "Must have exactly" in shown  # the expectations and their results
    docs_shot = tmp_path / "data-docs.png"
    _chromium(offline, f"--screenshot={docs_shot}", docs.group(1))
    assert _ink(docs_shot) > 0.02, docs_shot
    monkeypatch.delenv(CRASH_ENV)  # an unchanged re-run: every stage shows as Cached in the UI
    again = regression(model="mlp30", epochs=3, data=str(housing_csv), target="MedHouseVal",
                       artifacts=str(tmp_path / "a"))
    assert again["artifacts"] == result["artifacts"]
    reran = api.call("POST", "/task_runs/filter", {"flow_runs": {"id": {"any_": [again["run_id"]]}}})
    assert {t["name"].rsplit("-", 1)[0]: (t["state_type"], t["state_name"]) for t in reran} == \
        {name: ("COMPLETED", "Cached") for name in names}
    assert {t["state_name"] for t in tasks} == {"Completed"}  # the first run produced everything

    keep = ROOT / "artifacts" / "e2e"  # for a person to look at
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "flow-run.png")
    shutil.copy(curve_shot, keep / "learning-curve-artifact.png")
    shutil.copy(report_shot, keep / "residuals-artifact.png")
    shutil.copy(docs_shot, keep / "data-docs.png")


def test_a_served_interval_schedule_fires_twice_then_stops_clean(prefect_server, housing_csv, tmp_path):
    api, name = prefect_server, f"e2e-interval-{int(time.time())}"
    serving = subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "regression", "--interval", "10", "--name", name,
         "--data", str(housing_csv), "--target", "MedHouseVal", "--epochs", "1", "--artifacts", str(tmp_path / "a")],
        cwd=ROOT, env={**os.environ, "PREFECT_API_URL": api.url},
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "w"))
    try:
        deployment = _wait(lambda: api.call("POST", "/deployments/filter",
                                            {"deployments": {"name": {"any_": [name]}}}), 60, "the deployment")[0]
        runs = lambda kind: api.call("POST", "/flow_runs/filter", {"flow_runs": {  # noqa: E731
            "deployment_id": {"any_": [deployment["id"]]}, "state": {"type": {"any_": [kind]}}}})
        done = _wait(lambda: len(runs("COMPLETED")) >= 2 and runs("COMPLETED"), 480, "two completed scheduled runs")
        assert all(r["state_type"] == "COMPLETED" for r in done)
    finally:
        serving.send_signal(signal.SIGTERM)
        serving.wait(timeout=120)  # a run in flight is cancelled first
    _wait(lambda: runs("SCHEDULED") == [], 30, "no scheduled runs left behind")
    assert runs("FAILED") == []


def test_the_classification_reports_show_in_the_ui_with_class_names(on_server, tmp_path):
    """The course's dataset, one epoch: the confusion matrix, the sample grid and the per-class
    table are artifacts of the run, and the UI's artifact pages draw the pictures."""
    from flows.classification import classification

    api = on_server
    result = classification(model="mlp", epochs=1, artifacts=str(tmp_path / "a"))
    artifacts = api.call("POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [result["run_id"]]}}})
    by_key = {a["key"]: a for a in artifacts}
    assert by_key["fashion-mnist-per-class"]["type"] == "markdown"  # the stage artifact; the table has its own key
    table = json.loads(by_key["fashion-mnist-per-class-scores"]["data"])
    assert [row["class"] for row in table][:2] == ["T-shirt/top", "Trouser"] and len(table) == 10
    assert sum(row["support"] for row in table) == 10_000
    ui, shots = api.url.removesuffix("/api"), {}
    for key in ("confusion", "samples"):
        assert "data:image/png;base64," in by_key[f"fashion-mnist-{key}"]["data"]
        shots[key] = tmp_path / f"{key}.png"
        _chromium(f"--screenshot={shots[key]}", f"{ui}/artifacts/artifact/{by_key[f'fashion-mnist-{key}']['id']}")
        assert _ink(shots[key]) > 0.05, shots[key]
    keep = ROOT / "artifacts" / "e2e"
    keep.mkdir(parents=True, exist_ok=True)
    for key, shot in shots.items():
        shutil.copy(shot, keep / f"{key}-artifact.png")
