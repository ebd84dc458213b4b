"""SIGKILL at the worst moments, and two runs at once on one store: nothing partial is ever seen
under an artifact's name, no cache entry points at what is not there, and the next run ends as
an uninterrupted one would, byte for byte."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.faults import PAUSE_ENV
from tasks.store.verify import verify

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane


ROOT = Path(__file__).resolve().parents[2]


def _command(table: Path, artifacts: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flows", "regression", "--data", str(table), "--target", "MedHouseVal",
            "--epochs", "4", "--artifacts", str(artifacts), "--json", *extra]


def _run(command: list[str]) -> dict:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _killed_at(command: list[str], marker: str, env: dict | None = None) -> None:
    """Start the run, and SIGKILL it and every process it started once stderr shows ``marker``."""
    run = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                           env={**os.environ, **(env or {})}, start_new_session=True)
    for line in run.stderr:
        if marker in line:
            os.killpg(run.pid, signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, f"never reached {marker!r}"


@pytest.fixture(scope="module")
def table(tmp_path_factory, housing):
    import pandas as pd

    path = tmp_path_factory.mktemp("crash") / "houses.csv"
    df = pd.DataFrame(housing.X[:1_500], columns=list(housing.spec.features))
    df["MedHouseVal"] = housing.y[:1_500]
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def straight(table, tmp_path_factory) -> dict:
    """The uninterrupted run every crashed one must end equal to."""
    return _run(_command(table, tmp_path_factory.mktemp("straight") / "a"))


def _names(summary: dict) -> dict[str, str]:
    return {stage: Path(path).name for stage, path in summary["artifacts"].items()}


def test_runs_killed_while_writing_validating_and_training_are_finished_by_the_next_as_one_run(
        table, straight, tmp_path):
    artifacts = tmp_path / "a"
    for marker, env in (("paused at stage:validation-split", {PAUSE_ENV: "stage:validation-split"}),
                        ("paused at write:scaled", {PAUSE_ENV: "write:scaled"}),  # mid-write of an artifact
                        ("epoch 2/4", {})):  # mid-training (each run takes the stages the one before finished)
        _killed_at(_command(table, artifacts), marker, {"PREFECT_LOGGING_LEVEL": "INFO", **env})
        problems = verify(artifacts)[1]  # an artifact whose sidecar was not written yet is the only loose end
        assert not [p for p in problems if "do not match" in p or "_cache" in p], (marker, problems)
        assert not list((artifacts / "scaled").glob("[!.]*.parquet")) or marker != "paused at write:scaled"
    again = _run(_command(table, artifacts))
    assert _names(again) == _names(straight)  # the same bytes as an uninterrupted run, every artifact
    assert again["test"] == straight["test"] and verify(artifacts)[1] == []
    model = json.loads(Path(again["artifacts"]["model"]).with_suffix(".json").read_text())
    assert model["training"]["resumed_at_epoch"] > 1  # the killed training resumed from its backup


def test_two_runs_at_once_on_one_store_both_finish_and_the_store_verifies(table, straight, tmp_path):
    artifacts = tmp_path / "a"
    same = [subprocess.Popen(_command(table, artifacts), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    other = subprocess.Popen(_command(table, artifacts, "--seed", "7"), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    results = []
    for run in (*same, other):
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert _names(results[0]) == _names(results[1]) == _names(straight)  # the same result
    model = json.loads(Path(results[0]["artifacts"]["model"]).with_suffix(".json").read_text())
    assert not model.get("also_produced_by"), model.get("also_produced_by")  # trained once: one waited, then took it
    assert results[2]["artifacts"]["scaled"] == results[0]["artifacts"]["scaled"]  # shared data stages
    assert results[2]["artifacts"]["model"] != results[0]["artifacts"]["model"]  # its own training
    assert verify(artifacts)[1] == []
