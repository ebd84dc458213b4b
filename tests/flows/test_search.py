"""The search flow on a slice of the real housing data: strategies, faults, resume, no test peeking."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from flows.search import search
from tasks.params import TrainParams
from tasks.search import SearchPlan
from tasks.space import parse_space

FIXED = TrainParams("mlp30", epochs=2, patience=5)


def _search(csv, artifacts, plan, **kwargs):
    return search(plan=plan, train=FIXED, data=str(csv), target="MedHouseVal", artifacts=str(artifacts), **kwargs)


def test_a_sweep_records_every_trial_and_a_diverged_one_is_left_out(housing_csv, tmp_path):
    plan = SearchPlan("sweep", parse_space("learning_rate=choice(0.01,1e9)"))
    result = _search(housing_csv, tmp_path / "a", plan)
    assert result["trials"] == {"diverged": 1, "ok": 1}
    assert result["best_params"] == {"learning_rate": 0.01}
    table = pd.read_parquet(result["artifacts"]["trials"])
    assert sorted(table["status"]) == ["diverged", "ok"] and len(table) == 2
    diverged = table[table["status"] == "diverged"].iloc[0]
    assert math.isnan(diverged["val_loss"]) and "NaN or infinite" in diverged["reason"]
    assert result["test"]["loss"] > 0 and result["best_val_loss"] == table["val_loss"].min()


def test_a_search_run_again_reuses_every_finished_trial_and_picks_the_same(housing_csv, tmp_path):
    plan = SearchPlan("random", parse_space("learning_rate=loguniform(1e-3,1e-2) width=int(4,16)"), n_iter=3)
    first = _search(housing_csv, tmp_path / "a", plan)
    again = _search(housing_csv, tmp_path / "a", plan)
    assert again["best_params"] == first["best_params"] and again["artifacts"] == first["artifacts"]
    trials_first = pd.read_parquet(first["artifacts"]["trials"])
    assert len(trials_first) == 3 and (trials_first["status"] == "ok").all()
    fresh = _search(housing_csv, tmp_path / "b", plan)  # same seed, another store: the same trials
    assert fresh["best_params"] == first["best_params"]


def test_too_many_failures_in_a_row_stop_the_search_with_what_to_do(housing_csv, tmp_path):
    from tasks.search import SearchFailed

    plan = SearchPlan("sweep", parse_space("learning_rate=choice(1e9,1e10)"), max_failures=2)
    with pytest.raises(SearchFailed, match="2 trials in a row failed.*lower learning rate"):
        _search(housing_csv, tmp_path / "a", plan)


def test_the_test_split_takes_no_part_in_choosing(housing_csv, tmp_path):
    df = pd.read_csv(housing_csv)
    df["split"] = (["train"] * 6 + ["valid"] * 2 + ["test"] * 2) * (len(df) // 10) + ["train"] * (len(df) % 10)
    clean, poisoned = tmp_path / "clean.csv", tmp_path / "poisoned.csv"
    df.to_csv(clean, index=False)
    df.loc[df["split"] == "test", "MedHouseVal"] = 1e3  # any use of the test rows would change a val_loss
    df.to_csv(poisoned, index=False)
    plan = SearchPlan("sweep", parse_space("learning_rate=choice(0.003,0.01)"))
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
                          "--artifacts", str(tmp_path / "a")], cwd=root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "depth: the range's low end 4 must be below its high end 1" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "a").exists()
