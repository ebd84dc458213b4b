from pathlib import Path

import pandas as pd
import pytest

from flows.zoo import zoo

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane



def test_zoo_compares_models_with_the_same_budget(housing_csv, tmp_path):
    result = zoo(task="regression", models=["mlp30", "wide_deep_multi_output"], epochs=2,
                 data=str(housing_csv), target="MedHouseVal", artifacts=str(tmp_path / "a"))
    assert set(result["test"]) == {"mlp30", "wide_deep_multi_output"}
    table = pd.read_parquet(result["artifacts"]["comparison"])
    assert sorted(table["model"]) == ["mlp30", "wide_deep_multi_output"]
    assert {"weights", "epochs_run", "best_val_loss", "test_loss", "train_seconds"} <= set(table.columns)
    assert dict(zip(table["model"], table["weights"]))["mlp30"] == 8 * 30 + 30 + 31
    assert (table["epochs_run"] == 2).all() and table["test_loss"].is_monotonic_increasing
    assert Path(result["artifacts"]["plot"]).stat().st_size > 5_000
    # each model was reported and met the gate in turn (True: champion once gated): the first
    # became champion; the second only with a test MSE (of its first head) 0.5 % lower
    first, main_head = result["test"]["mlp30"]["loss"], result["test"]["wide_deep_multi_output"]["main_loss"]
    assert result["champion"] == {"mlp30": True, "wide_deep_multi_output": main_head <= first * 0.995}
    assert len(list((tmp_path / "a" / "residuals").glob("*.png"))) == 2
