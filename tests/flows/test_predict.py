"""Using a trained model: the champion gate over real trainings, and predict on held-out housing
rows with its skew and drift checks (a slice of the real data, real flows, real Parquet)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.predict import predict
from flows.regression import regression
from tasks.serving.champion import current, gate_name, history
from tasks.serving.drift import DriftError, SkewError
from tasks.store.artifacts import ArtifactStore
from tasks.store.verify import lineage_lines

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane

ROOT = Path(__file__).resolve().parents[2]
TARGET = "MedHouseVal"
GATE = gate_name("housing-train", "regression", TARGET)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, housing):
    """Three trainings on one housing table (2,000 train, 500 valid, 500 test rows): a first model,
    a worse one (1 epoch at a tiny learning rate), a better one (more epochs); and held-out rows."""
    folder = tmp_path_factory.mktemp("predict")
    rows = np.random.default_rng(0).permutation(len(housing))[:4_000]
    df = pd.DataFrame(housing.X[rows], columns=list(housing.spec.features))
    df[TARGET] = housing.y[rows]
    table = df.iloc[:3_000].assign(split=["train"] * 2_000 + ["valid"] * 500 + ["test"] * 500)
    table.to_parquet(folder / "housing-train.parquet", index=False)
    held_out = df.iloc[3_000:].reset_index(drop=True)
    artifacts = str(folder / "artifacts")
    runs = [regression(model="mlp30", epochs=epochs, learning_rate=rate,
                       data=str(folder / "housing-train.parquet"), target=TARGET, artifacts=artifacts)
            for epochs, rate in ((4, None), (1, 1e-5), (30, None))]
    return {"folder": folder, "artifacts": artifacts, "runs": runs, "table": table, "held_out": held_out}


def test_the_champion_is_replaced_only_by_a_better_model(trained):
    first, worse, better = trained["runs"]
    store = ArtifactStore(trained["artifacts"])
    decisions = history(store, GATE)
    assert [d.promoted for d in decisions] == [True, False, True]
    assert [first["champion"], worse["champion"], better["champion"]] == [True, False, True]
    assert worse["test"]["loss"] > first["test"]["loss"] > better["test"]["loss"] + 0.001
    assert decisions[1].champion_before == decisions[0].model.sha256 == decisions[2].champion_before
    assert current(store, GATE).model.path == better["artifacts"]["model"]


def test_a_reused_model_is_not_decided_again(trained):
    again = regression(model="mlp30", epochs=1, learning_rate=1e-5,
                       data=str(trained["folder"] / "housing-train.parquet"), target=TARGET,
                       artifacts=trained["artifacts"])
    assert again["champion"] is False
    assert len(history(ArtifactStore(trained["artifacts"]), GATE)) == 3


def test_predict_on_the_test_rows_reproduces_the_flows_evaluation(trained, tmp_path):
    test_rows = trained["table"].query("split == 'test'")
    new = tmp_path / "test-rows.csv"
    test_rows.drop(columns=["split"]).to_csv(new, index=False)  # the target column is ignored
    result = predict(data=str(new), artifacts=trained["artifacts"], out=str(tmp_path / "out.csv"))
    scored = pd.read_parquet(result["artifacts"]["predictions"])
    mse = float(np.mean((scored["prediction"].to_numpy() - test_rows[TARGET].to_numpy()) ** 2))
    assert mse == pytest.approx(trained["runs"][2]["test"]["loss"], rel=1e-5)
    assert list(scored["row"]) == list(range(len(test_rows)))
    assert pd.read_csv(tmp_path / "out.csv")["prediction"].to_numpy() == pytest.approx(scored["prediction"].to_numpy())
    chain = "\n".join(lineage_lines(trained["artifacts"], Path(result["artifacts"]["predictions"]).stem[:16]))
    assert "raw file test-rows.csv" in chain and "raw file housing-train.parquet" in chain and "\n  model " in chain


def test_a_renamed_column_is_skew_and_nothing_is_written(trained, tmp_path):
    new = tmp_path / "renamed.csv"
    trained["held_out"].rename(columns={"MedInc": "median_income"}).to_csv(new, index=False)
    before = sorted((Path(trained["artifacts"]) / "predictions").glob("*"))
    with pytest.raises(SkewError, match=r"missing column 'MedInc'.*\n.*'median_income' not in the training data"):
        predict(data=str(new), artifacts=trained["artifacts"])
    assert sorted((Path(trained["artifacts"]) / "predictions").glob("*")) == before


def test_a_feature_shifted_by_two_training_stds_is_drift(trained, tmp_path, caplog):
    train = trained["table"].query("split == 'train'")
    shifted = trained["held_out"].assign(HouseAge=lambda d: d["HouseAge"] + 2 * train["HouseAge"].std(ddof=0))
    new = tmp_path / "shifted.parquet"
    shifted.to_parquet(new, index=False)
    with pytest.raises(DriftError, match=r"feature HouseAge: mean .* is [12]\.\d\d training standard deviations"):
        predict(data=str(new), artifacts=trained["artifacts"], strict=True)
    command = [sys.executable, "-m", "flows", "predict", "--data", str(new), "--artifacts", trained["artifacts"],
               "--json"]
    warned = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert warned.returncode == 0, warned.stderr
    assert "drifted from the training data" in warned.stderr and "feature HouseAge" in warned.stderr
    assert "MedInc" not in warned.stderr.split("drifted")[1]  # only the shifted feature is named
    assert json.loads(warned.stdout.splitlines()[-1])["rows"] == len(shifted)


def test_held_out_rows_pass_both_checks_without_a_warning(trained, tmp_path):
    new = tmp_path / "held-out.csv"
    trained["held_out"].drop(columns=[TARGET]).to_csv(new, index=False)
    command = [sys.executable, "-m", "flows", "predict", "--data", str(new), "--artifacts", trained["artifacts"],
               "--strict", "--json"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "warning" not in run.stderr.lower(), run.stderr
    champion = subprocess.run([sys.executable, "-m", "flows", "champion", "--artifacts", trained["artifacts"]],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert champion.returncode == 0 and champion.stdout.count("promoted") == 2 and "kept" in champion.stdout


def test_predict_on_the_fashion_mnist_test_images_reproduces_the_evaluation(tmp_path):
    """The idx test file itself, scored by the champion, gives the evaluation's accuracy and loss."""
    import gzip
    import os

    from flows.classification import classification
    from tasks.stages.load import parse_idx

    artifacts = str(tmp_path / "artifacts")
    trained = classification(model="mlp", epochs=1, artifacts=artifacts)
    assert trained["champion"] is True
    mirror = Path(os.environ["DATA_MIRROR"]) / "fashion-mnist"
    result = predict(data=str(mirror / "t10k-images-idx3-ubyte.gz"), artifacts=artifacts, strict=True)
    scored = pd.read_parquet(result["artifacts"]["predictions"])
    labels = parse_idx(gzip.decompress((mirror / "t10k-labels-idx1-ubyte.gz").read_bytes()), "labels", ndim=1)
    probabilities = scored[[f"probability_{k}" for k in range(10)]].to_numpy(np.float64)
    assert (scored["prediction"].to_numpy() == labels).mean() == pytest.approx(trained["test"]["accuracy"], abs=1e-6)
    loss = -np.mean(np.log(probabilities[np.arange(len(labels)), labels]))
    assert loss == pytest.approx(trained["test"]["loss"], rel=1e-4)
    # the evaluation's report says the same per class
    per_class = pd.read_parquet(trained["artifacts"]["per_class"]).set_index("class")
    assert list(per_class.index[:2]) == ["T-shirt/top", "Trouser"] and per_class["support"].sum() == 10_000
    for k, name in enumerate(per_class.index):
        assert per_class.loc[name, "recall"] == pytest.approx((scored["prediction"][labels == k] == k).mean())
    for picture in ("confusion", "samples"):
        assert Path(trained["artifacts"][picture]).read_bytes()[:4] == b"\x89PNG"


SERVE_WITH_TENSORFLOW_ALONE = """
import json, sys
import numpy as np, pandas as pd, tensorflow as tf

export, table = sys.argv[1:3]
signature = json.load(open(export + "/signature.json"))
served = tf.saved_model.load(export + "/saved_model")
features = pd.read_csv(table)[signature["inputs"]["features"]].to_numpy(np.float32)
print(json.dumps(np.asarray(served.serve(features)).ravel().tolist()))
"""


def test_the_export_reproduces_the_predictions_with_tensorflow_alone(trained, tmp_path):
    new = tmp_path / "held-out.csv"
    trained["held_out"].to_csv(new, index=False)
    scored = pd.read_parquet(predict(data=str(new), artifacts=trained["artifacts"])["artifacts"]["predictions"])
    exported = subprocess.run([sys.executable, "-m", "flows", "export", "--artifacts", trained["artifacts"]],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    folder = exported.stdout.strip().splitlines()[-1]
    assert Path(folder).name == Path(trained["runs"][2]["artifacts"]["model"]).stem  # the champion's
    served = subprocess.run([sys.executable, "-c", SERVE_WITH_TENSORFLOW_ALONE, folder, str(new)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)  # no project on the path
    assert served.returncode == 0, served.stderr
    assert np.array(json.loads(served.stdout.splitlines()[-1])) == pytest.approx(scored["prediction"].to_numpy(),
                                                                                   abs=1e-5)


def test_predict_can_be_served_on_a_schedule(tmp_path):
    from flows.launch.serve import deployments

    config = {"flow": "predict", "name": "nightly-scores", "cron": "0 3 * * *",
              "parameters": {"data": str(tmp_path / "new.csv"), "artifacts": str(tmp_path / "artifacts"),
                             "strict": True}}
    built, = deployments([config])
    assert built.name == "nightly-scores" and built.parameters["strict"] is True
    assert built.schedules[0].schedule.cron == "0 3 * * *"


def test_a_moved_store_scores_with_its_own_files_and_a_few_rows_skip_drift(trained, tmp_path, caplog):
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(trained["artifacts"], moved)
    new = tmp_path / "five-rows.csv"
    trained["held_out"].head(5).to_csv(new, index=False)
    result = predict(data=str(new), artifacts=str(moved), strict=True)  # 5 rows: drift is not judged
    assert result["artifacts"]["predictions"].startswith(str(moved)) and result["model"].startswith(str(moved))
    assert len(pd.read_parquet(result["artifacts"]["predictions"])) == 5


def test_an_unseen_category_under_strict_exits_2_naming_it_and_writes_nothing(trained, tmp_path):
    table = trained["table"].assign(region=lambda d: np.where(d["Latitude"] > 37.5, "north", "south"))
    table.to_parquet(tmp_path / "regions.parquet", index=False)
    artifacts = str(tmp_path / "artifacts")
    regression(epochs=1, data=str(tmp_path / "regions.parquet"), target=TARGET, artifacts=artifacts)
    new = trained["held_out"].drop(columns=[TARGET]).assign(region="north")
    new.loc[:2, "region"] = "atlantis"
    new.to_csv(tmp_path / "new.csv", index=False)
    command = [sys.executable, "-m", "flows", "predict", "--data", str(tmp_path / "new.csv"), "--artifacts", artifacts]
    refused = subprocess.run([*command, "--strict"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "feature region: 3 of 1000 rows hold categories training never saw ('atlantis'): scored as unseen" \
        in refused.stderr and "(--strict: nothing was scored)" in refused.stderr
    assert not (Path(artifacts) / "predictions").exists()
    scored = subprocess.run([*command, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0 and "never saw ('atlantis')" in scored.stderr  # a warning without --strict
    predictions = json.loads(scored.stdout.splitlines()[-1])["artifacts"]["predictions"]
    assert json.loads(Path(predictions).with_suffix(".json").read_text())["unseen"] == {"region": 3}
