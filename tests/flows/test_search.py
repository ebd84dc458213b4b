"""The search flow on a slice of the real housing data: strategies, faults, resume, no test peeking."""
from __future__ import annotations

import math
import os

import pandas as pd
import pytest

from flows.search import search

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane


FIXED = {"model": "mlp30", "epochs": 2, "patience": 5}


def _search(csv, artifacts, plan, **kwargs):
    return search(**plan, **FIXED, data=str(csv), target="MedHouseVal", artifacts=str(artifacts), **kwargs)



def _evaluation(result: dict) -> dict:
    """What the metrics artifact's lineage says the one test scoring found."""
    from tasks.store.artifacts import ArtifactStore
    from tasks.store.lineage import ArtifactRef

    found = ArtifactStore.record(ArtifactRef("metrics", result["artifacts"]["metrics"], "")).evaluation
    return {"test": found.test, "test_rows": found.test_rows}

def test_a_sweep_records_every_trial_and_a_diverged_one_is_left_out(housing_csv, tmp_path):
    plan = {"strategy": "sweep", "space": "learning_rate=choice(0.01,1e9)"}
    result = _search(housing_csv, tmp_path / "a", plan)
    assert result["trials"] == {"diverged": 1, "ok": 1}
    assert result["best_params"] == {"learning_rate": 0.01}
    table = pd.read_parquet(result["artifacts"]["trials"])
    assert sorted(table["status"]) == ["diverged", "ok"] and len(table) == 2
    diverged = table[table["status"] == "diverged"].iloc[0]
    assert math.isnan(diverged["val_loss"]) and "NaN or infinite" in diverged["reason"]
    assert result["best_val_loss"] == table["val_loss"].min()
    ok = table[table["status"] == "ok"].iloc[0]
    assert result["artifacts"]["model"] == ok["model"]  # the best trial's model is the one scored
    assert _evaluation(result) == {"test": result["test"], "test_rows": 750}  # once, on the 750 test rows


def test_a_search_run_again_reuses_every_finished_trial_and_picks_the_same(housing_csv, tmp_path):
    plan = {"strategy": "random", "space": "learning_rate=loguniform(1e-3,1e-2) width=int(4,16)", "n_iter": 3}
    first = _search(housing_csv, tmp_path / "a", plan)
    again = _search(housing_csv, tmp_path / "a", plan)
    assert again["best_params"] == first["best_params"] and again["artifacts"] == first["artifacts"]
    trials_first = pd.read_parquet(first["artifacts"]["trials"])
    assert len(trials_first) == 3 and (trials_first["status"] == "ok").all()
    fresh = _search(housing_csv, tmp_path / "b", plan)  # same seed, another store: the same trials
    assert fresh["best_params"] == first["best_params"]


def test_too_many_failures_in_a_row_stop_the_search_with_what_to_do(housing_csv, tmp_path):
    from tasks.search.plan import SearchFailed

    plan = {"strategy": "sweep", "space": "learning_rate=choice(1e9,1e10)", "max_failures": 2}
    with pytest.raises(SearchFailed, match="2 trials in a row failed.*lower learning rate"):
        _search(housing_csv, tmp_path / "a", plan)


def test_the_test_split_takes_no_part_in_choosing(housing_csv, tmp_path):
    df = pd.read_csv(housing_csv)
    df["split"] = (["train"] * 6 + ["valid"] * 2 + ["test"] * 2) * (len(df) // 10) + ["train"] * (len(df) % 10)
    clean, poisoned = tmp_path / "clean.csv", tmp_path / "poisoned.csv"
    df.to_csv(clean, index=False)
    df.loc[df["split"] == "test", "MedHouseVal"] = 1e3  # any use of the test rows would change a val_loss
    df.to_csv(poisoned, index=False)
    plan = {"strategy": "sweep", "space": "learning_rate=choice(0.003,0.01)"}
    a, b = (_search(path, tmp_path / path.stem, plan) for path in (clean, poisoned))
    trials_a, trials_b = (pd.read_parquet(r["artifacts"]["trials"]) for r in (a, b))
    assert list(trials_a["val_loss"]) == list(trials_b["val_loss"]) and a["best_params"] == b["best_params"]
    assert b["test"]["loss"] > 1e4 > a["test"]["loss"]  # the test rows are scored once, at the end


def test_the_cli_refuses_a_bad_space_before_anything_starts(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-m", "flows", "search", "--space", "depth=int(4,1)",
                          "--artifacts", str(tmp_path / "a")], cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "depth: the range's low end 4 must be below its high end 1" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "a").exists()


def test_halving_prunes_at_its_rungs_and_the_kept_trials_continue_their_training(housing_csv, tmp_path):
    from tasks.search.plan import make_plan

    fixed = {"model": "mlp30", "epochs": 6, "patience": 10}
    plan = {"strategy": "halving", "space": "learning_rate=loguniform(1e-3,3e-2)", "n_iter": 4, "min_epochs": 2,
            "reduction_factor": 2, "seed": 5}
    assert make_plan(**plan).rungs(fixed["epochs"]) == [2, 4, 6]
    result = search(**plan, **fixed, data=str(housing_csv), target="MedHouseVal", artifacts=str(tmp_path / "a"))
    table = pd.read_parquet(result["artifacts"]["trials"]).set_index("trial")
    counts = table["status"].value_counts().to_dict()
    assert counts.get("pruned", 0) >= 1 and counts.get("ok", 0) >= 1 and sum(counts.values()) == 4
    pruned = table[table["status"] == "pruned"]
    assert set(pruned["epochs_run"]) <= {2, 4} and (pruned["epochs_run"] == pruned["budget"]).all()
    assert (table.loc[table["status"] == "ok", "epochs_run"] == 6).all()
    assert result["epochs"] == table["epochs_run"].sum() < 4 * 6  # pruned trials stopped, kept ones went on
    best = table.loc[table["status"] == "ok", "val_loss"].idxmin()
    assert result["best_params"]["learning_rate"] == table.loc[best, "learning_rate"]
    history = pd.read_parquet(result["artifacts"]["history"])
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]  # one training, continued rung to rung
    assert not any((tmp_path / "a" / ".train").iterdir())  # no backup left behind, pruned ones included
    again = search(**plan, **fixed, data=str(housing_csv), target="MedHouseVal", artifacts=str(tmp_path / "a"))
    assert again["artifacts"] == result["artifacts"]  # every rung came from the cache


@pytest.mark.parametrize("strategy", ["sklearn-random", "sklearn-halving"])
def test_scikit_learn_searches_cross_validate_then_train_the_choice_once(housing_csv, tmp_path, strategy):
    plan = {"strategy": strategy, "space": "learning_rate=loguniform(1e-3,1e-2) width=int(4,16)", "n_iter": 3,
            "min_epochs": 1, "reduction_factor": 2}
    result = search(**plan, **FIXED, data=str(housing_csv), target="MedHouseVal", artifacts=str(tmp_path))
    table = pd.read_parquet(result["artifacts"]["trials"])
    chosen = table[table["status"] == "ok"].sort_values(["val_loss", "trial"]).iloc[0]
    assert result["best_params"] == {"learning_rate": chosen["learning_rate"], "width": chosen["width"]}
    assert (table["val_loss"] == -table["cv_score"]).all()
    if strategy == "sklearn-halving":  # 3 candidates at 1 epoch, the best one or two at 2
        assert list(table["budget"].unique()) == [1, 2] and "promoted" in set(table["status"])
    else:
        assert len(table) == 3 and (table["status"] == "ok").all()
    from tasks.store.artifacts import ArtifactStore
    from tasks.store.lineage import ArtifactRef

    model = ArtifactStore.record(ArtifactRef("model", result["artifacts"]["model"], ""))
    assert model.params["width"] == chosen["width"] and model.params["epochs"] == 2  # the usual training
    assert _evaluation(result) == {"test": result["test"], "test_rows": 750}


def test_trials_run_on_a_local_dask_cluster_of_two_workers(housing_csv, tmp_path):
    from flows.launch.runners import with_runner

    plan = {"strategy": "random", "space": "learning_rate=loguniform(1e-3,1e-2)", "n_iter": 2, "seed": 1}
    flow = with_runner(search, workers=2, runner="dask")  # (the process pool: tests/flows/test_clean_runs.py)
    result = flow(**plan, model="mlp30", epochs=2, data=str(housing_csv), target="MedHouseVal",
                  artifacts=str(tmp_path / "dask"), workers=2)
    table = pd.read_parquet(result["artifacts"]["trials"])
    assert (table["status"] == "ok").all()
    assert os.getpid() not in {int(w.split(":")[1]) for w in table["worker"]}  # in the cluster's processes
    alone = search(**plan, model="mlp30", epochs=2, data=str(housing_csv), target="MedHouseVal",
                   artifacts=str(tmp_path / "alone"))
    assert alone["best_params"] == result["best_params"]
    assert list(pd.read_parquet(alone["artifacts"]["trials"])["val_loss"]) == pytest.approx(list(table["val_loss"]),
                                                                                          abs=1e-4)


def test_a_search_can_be_served_on_a_schedule(tmp_path):
    """What ``python -m flows serve search ...`` deploys: the spec the command line builds, valid
    parameters for the search flow (what each scheduled run will be called with)."""
    from flows.launch.options import parser
    from flows.launch.serve import deployments, spec_of
    from flows.search import search as flow

    args = parser().parse_args(["serve", "search", "--interval", "3600", "--strategy", "halving", "--n-iter", "6",
                                "--space", "width=int(8,64)", "--workers", "2", "--epochs", "20",
                                "--name", "nightly-search", "--artifacts", str(tmp_path / "a")])
    deployment, = deployments([spec_of(args)])
    assert deployment.name == "nightly-search"
    parameters = deployment.parameters
    assert parameters["strategy"] == "halving" and parameters["n_iter"] == 6
    assert parameters["space"] == "width=int(8,64)" and parameters["workers"] == 2
    assert parameters["epochs"] == 20 and "model" not in parameters  # the flow's default: the course's model
    bound = flow.validate_parameters(parameters)  # what each scheduled run will be called with
    assert bound["strategy"] == "halving" and bound["epochs"] == 20
    assert parameters["artifacts"] == str((tmp_path / "a").resolve())


def test_a_search_killed_mid_way_resumes_without_retraining_its_finished_trials(housing_csv, tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tasks.store.lineage import Lineage

    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "flows", "search", "--n-iter", "3", "--epochs", "3", "--space",
               "learning_rate=loguniform(1e-3,1e-2)", "--data", str(housing_csv), "--target", "MedHouseVal",
               "--artifacts", str(tmp_path / "a"), "--json"]
    first = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONPATH": str(root), "PREFECT_LOGGING_LEVEL": "INFO"})
    for line in first.stdout:  # SIGKILL once the first trial is done, as a crash would
        if "trial 1/3" in line:
            children = Path(f"/proc/{first.pid}/task/{first.pid}/children").read_text().split()
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=60)
    for _ in range(30):  # its embedded server and trial workers stop once they see it gone
        left = [pid for pid in children if Path(f"/proc/{pid}").exists()
                and "(Z)" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]]
        if not left:
            break
        time.sleep(0.5)
    assert not left, [Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:120] for pid in left]
    models = tmp_path / "a" / "model"
    done = {p: Lineage.read(p).flow_run_id for p in models.glob("*.json")}
    assert len(done) == 1, "exactly the first trial had finished"
    again = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(root)})
    assert again.returncode == 0, again.stderr[-2000:]
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["trials"] == {"ok": 3}
    for sidecar, run_id in done.items():  # the finished trial was reused, not trained again
        record = Lineage.read(sidecar)
        assert record.flow_run_id == run_id != summary["run_id"] and not record.also_produced_by
    assert len(list(models.glob("*.json"))) == 3


def test_a_streamed_table_is_searched_by_trials_training_from_the_stream(housing_csv, tmp_path):
    """Halving's trials (its rungs too) train from the streamed scaled artifact's row groups; the best
    is scored once on test; scikit-learn's searches, which fit arrays, refuse a stream by name."""
    import pyarrow.parquet as pq

    from tasks.core.errors import OptionError
    from tasks.store.dataset import spec_of

    plan = {"strategy": "halving", "space": "learning_rate=loguniform(1e-3,1e-2)", "n_iter": 3, "seed": 1,
            "reduction_factor": 3, "min_epochs": 1}
    result = search(**plan, model="mlp30", epochs=3, data=str(housing_csv), target="MedHouseVal", stream=True,
                    artifacts=str(tmp_path / "a"))
    assert spec_of(pq.read_schema(result["artifacts"]["scaled"])).streamed
    table = pd.read_parquet(result["artifacts"]["trials"])
    assert set(table["status"]) >= {"ok", "pruned"} and 0 < result["test"]["loss"] < 1.5
    assert _evaluation(result) == {"test": result["test"], "test_rows": 750}  # every test row, scored once
    with pytest.raises(OptionError, match=r"sklearn-random fits its folds in memory, .* use a trial strategy"):
        search(strategy="sklearn-random", space="learning_rate=loguniform(1e-3,1e-2)", n_iter=2, model="mlp30",
               epochs=1, data=str(housing_csv), target="MedHouseVal", stream=True, artifacts=str(tmp_path / "b"))
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").rglob("*.parquet"))
