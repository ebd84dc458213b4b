"""Running it like production: cache across runs, invalidation by code, restart from the failed step."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.__main__ import main as cli
from flows.regression import regression
from tasks.model.callbacks import InjectedCrash
from tasks.store import stage

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane



def _side(path: str | Path) -> dict:
    return json.loads(Path(path).with_suffix(".json").read_text())


def _run(csv: Path, artifacts: Path, epochs: int = 2, force: bool = False) -> dict:
    return regression(model="mlp30", epochs=epochs, data=str(csv), target="MedHouseVal",
                      artifacts=str(artifacts), force=force)


def test_a_run_that_failed_at_train_restarts_at_train(housing_csv, tmp_path, monkeypatch):
    artifacts = tmp_path / "a"
    monkeypatch.setattr("tasks.stages.train.injected_crash", lambda: 2)  # every attempt crashes
    with pytest.raises(InjectedCrash):
        _run(housing_csv, artifacts, epochs=3)
    assert not (artifacts / "model").exists()
    [raw_before] = (artifacts / "raw").glob("*.parquet")
    failed_run = _side(raw_before)["flow_run_id"]
    monkeypatch.undo()

    again = _run(housing_csv, artifacts, epochs=3)
    for stage_name in ("raw", "split", "scaled", "scaler"):  # steps 1..k-1 come from the cache
        assert _side(again["artifacts"][stage_name])["flow_run_id"] == failed_run, stage_name
    model = _side(again["artifacts"]["model"])
    assert model["flow_run_id"] == again["run_id"]
    assert model["training"]["resumed_at_epoch"] == 2  # and training resumed from its backup
    assert model["training"]["epochs_run"] == 3


def test_changing_model_code_reruns_training_and_what_follows_only(housing_csv, tmp_path, monkeypatch):
    artifacts = tmp_path / "a"
    first = _run(housing_csv, artifacts)
    changed = tmp_path / "models.py"  # the registry with one helper edited
    changed.write_text(Path(stage._module_file("tasks.model.registry")).read_text() + "\n_HELPER_CHANGED = True\n")
    original = stage._module_file
    monkeypatch.setattr(stage, "_module_file",
                        lambda name: changed if name == "tasks.model.registry" else original(name))
    stage.code_hash.cache_clear()
    try:
        second = _run(housing_csv, artifacts)
    finally:
        monkeypatch.undo()
        stage.code_hash.cache_clear()
    for kept in ("raw", "split", "scaled", "scaler"):
        assert second["artifacts"][kept] == first["artifacts"][kept], kept
    cache_entries = {name: len(list((artifacts / "_cache" / name).glob("*.json")))
                     for name in ("raw", "split", "scaled", "model", "metrics")}
    assert cache_entries == {"raw": 1, "split": 1, "scaled": 1, "model": 2, "metrics": 2}
    # same seed, same weights, same bytes: one model file whose record names both trainings
    assert second["artifacts"]["model"] == first["artifacts"]["model"]
    for produced in ("model", "metrics"):
        record = _side(second["artifacts"][produced])
        runs = [record["flow_run_id"]] + [p["flow_run_id"] for p in record["also_produced_by"]]
        assert runs == [first["run_id"], second["run_id"]], produced

    unchanged = _run(housing_csv, artifacts)
    assert unchanged["artifacts"] == first["artifacts"]  # back to the original code: all cached
    forced = _run(housing_csv, artifacts, force=True)  # trains again, to the same bytes
    assert forced["artifacts"]["model"] == first["artifacts"]["model"]
    assert [p["flow_run_id"] for p in _side(forced["artifacts"]["model"])["also_produced_by"]] == \
        [second["run_id"], forced["run_id"]]


def test_lineage_prints_the_chain_back_to_the_raw_file(housing_csv, tmp_path, capsys):
    result = _run(housing_csv, tmp_path / "a", epochs=1)
    digest = Path(result["artifacts"]["metrics"]).stem
    assert cli(["lineage", digest[:12], "--artifacts", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("metrics  " + digest[:16])
    text = "\n".join(out)
    for step in ("  model  ", "    scaled  ", "      raw  ", "      split  "):
        assert step in text, step
    assert "raw file housing-slice.csv  sha256 " in text
    assert cli(["lineage", "ffffffffffff", "--artifacts", str(tmp_path / "a")]) == 2  # not in this store: exit 2


def test_a_crash_at_epoch_3_of_6_is_retried_and_matches_an_uninterrupted_run(housing_csv, tmp_path, monkeypatch):
    from tasks.model.callbacks import CRASH_ENV

    straight = regression(model="mlp30", epochs=6, data=str(housing_csv), target="MedHouseVal",
                          artifacts=str(tmp_path / "straight"))
    monkeypatch.setenv(CRASH_ENV, "3")
    crashed = regression(model="mlp30", epochs=6, data=str(housing_csv), target="MedHouseVal",
                         artifacts=str(tmp_path / "crashed"))
    model = _side(crashed["artifacts"]["model"])["training"]
    assert model["resumed_at_epoch"] == 3 and model["epochs_run"] == 6
    assert crashed["test"]["loss"] == pytest.approx(straight["test"]["loss"], abs=1e-6)
    assert Path(crashed["artifacts"]["model"]).name == Path(straight["artifacts"]["model"]).name  # same bytes


def test_schedules_come_from_a_config_file(tmp_path):
    from flows.launch.serve import deployments, read_config

    config = tmp_path / "schedules.toml"
    config.write_text('[[deployment]]\nflow = "regression"\nname = "nightly"\ncron = "0 3 * * *"\n'
                      '[deployment.parameters.train]\nmodel = "wide_deep"\nepochs = 30\n'
                      '[[deployment]]\nflow = "classification"\ninterval = 3600\n')
    nightly, hourly = deployments(read_config(config))
    assert nightly.name == "nightly" and nightly.schedules[0].schedule.cron == "0 3 * * *"
    assert nightly.parameters["train"] == {"model": "wide_deep", "epochs": 30}
    assert hourly.name == "classification-scheduled" and hourly.schedules[0].schedule.interval.total_seconds() == 3600
    config.write_text('[[deployment]]\nflow = "regression"\n')
    with pytest.raises(ValueError, match="exactly one of interval"):
        deployments(read_config(config))
    config.write_text('[[deployment]]\nflow = "nope"\ninterval = 5\n')
    with pytest.raises(ValueError, match="unknown flow 'nope'"):
        deployments(read_config(config))
