"""A flow streamed a row group at a time (tables larger than memory), through Prefect: on the
course's housing, forced with stream=True, the same split and scaler as in memory, a trained
and scored model with its lineage; bad input in a user's table stopped at load naming its row."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.regression import regression
from tasks.core.errors import DataError
from tasks.stages import streamed
from tasks.store.dataset import spec_of

pytestmark = pytest.mark.slow  # whole flows: the full suite, not the fast lane


def test_the_streamed_regression_flow_keeps_the_course_s_split_and_scaler(tmp_path, monkeypatch):
    from tasks.stages import streamed_stats

    monkeypatch.setattr(streamed_stats, "BATCH_ROWS", 4_000)  # 6 row groups: the scans in 2 parts each (workers)
    runs = {name: regression(model="mlp30", epochs=2, stream=name == "streamed", artifacts=str(tmp_path / name),
                             workers=2) for name in ("streamed", "in-memory")}
    paths = {name: run["artifacts"] for name, run in runs.items()}
    assert spec_of(pq.read_schema(paths["streamed"]["raw"])).streamed
    assert not spec_of(pq.read_schema(paths["in-memory"]["raw"])).streamed
    assert pq.ParquetFile(paths["streamed"]["scaled"]).metadata.num_row_groups >= 3  # a group per split at least
    split = {name: pd.read_parquet(p["split"]).set_index("row_id")["split"] for name, p in paths.items()}
    assert split["streamed"].sort_index().equals(split["in-memory"].sort_index())
    scalers = {name: pd.read_parquet(p["scaler"]) for name, p in paths.items()}
    for column in ("mean", "scale"):
        assert np.allclose(scalers["streamed"][column], scalers["in-memory"][column], rtol=1e-9, atol=0)
    losses = {name: run["test"]["loss"] for name, run in runs.items()}
    assert 0 < losses["streamed"] < 1.0 and abs(losses["streamed"] - losses["in-memory"]) < 0.15
    metrics = json.loads(Path(paths["streamed"]["metrics"]).with_suffix(".json").read_text())
    assert metrics["evaluation"]["test_rows"] == 5_160  # every test row scored
    for stage, path in paths["streamed"].items():
        assert Path(path).with_suffix(".json").is_file(), stage
    parts = [run.name for run in task_runs(runs["streamed"]["run_id"]) if " rows " in run.name]
    assert sorted(parts) == sorted(f"{scan} rows {span}" for scan in ("raw_part", "split_part", "train_part",
                                                                        "scaled_part")
                                   for span in ("0-12,000", "12,000-20,640"))  # each scan in two parts, merged
    assert not [run for run in task_runs(runs["in-memory"]["run_id"]) if " rows " in run.name]


def task_runs(run_id: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))


@pytest.mark.parametrize("fault, stage, said", [
    ("text", "load", r"'HouseAge' holds text where numbers are expected: 'old' at row 2999"),
    ("missing", "validate-raw", r"AveBedrms has 1 missing value at row 2991")])
def test_bad_input_in_the_last_row_group_stops_the_flow_at_its_step_naming_the_row(housing_csv, tmp_path,
                                                                                 monkeypatch, fault, stage, said):
    from tasks.stages import streamed_stats
    from tasks.stages.validate import ValidationFailed

    monkeypatch.setattr(streamed_stats, "BATCH_ROWS", 400)  # the 3,000 rows as 8 row groups
    df = pd.read_csv(housing_csv)
    if fault == "text":
        df["HouseAge"] = df["HouseAge"].astype(str)
        df.loc[2_998, "HouseAge"] = "old"
    else:
        df.loc[2_990, "AveBedrms"] = np.nan
    df.to_csv(housing_csv, index=False)
    with pytest.raises(DataError if fault == "text" else ValidationFailed, match=said):
        regression(data=str(housing_csv), target="MedHouseVal", epochs=1, stream=True,
                   artifacts=str(tmp_path / "a"))
    written = {p.parent.name for p in (tmp_path / "a").rglob("*.parquet")}
    assert written == (set() if stage == "load" else {"raw", "validation-raw"})  # nothing past the step
    if stage != "load":
        assert pq.ParquetFile(next((tmp_path / "a" / "raw").glob("*.parquet"))).metadata.num_row_groups == 8


def test_a_table_is_streamed_by_default_when_its_values_would_fill_the_threshold(housing_csv, monkeypatch):
    from tasks.stages.load import Source
    from tasks.stages.table import TableOptions

    table = Source(path=str(housing_csv), target="MedHouseVal", task="regression")
    assert not streamed.streams(table, None)
    monkeypatch.setattr(streamed, "STREAM_BYTES", housing_csv.stat().st_size - 1)
    assert streamed.streams(table, None) and not streamed.streams(table, False)
    # declared categories and --missing impute are streamed
    assert streamed.streams(dataclasses.replace(table, table=TableOptions(categorical=("HouseAge",))), None)
    assert streamed.streams(dataclasses.replace(table, table=TableOptions(missing="impute")), None)
    course = Source(dataset="california-housing", task="regression")
    assert streamed.streams(course, True) and not streamed.streams(course, None)  # the course's: only when asked


def test_predict_scores_new_rows_with_a_model_trained_from_a_stream(housing_csv, tmp_path, monkeypatch):
    from flows.predict import predict
    from tasks.serving.drift import training_profile
    from tasks.serving.resolve import trained
    from tasks.store.artifacts import ArtifactStore

    table = pd.read_csv(housing_csv)
    table.iloc[:2_500].to_csv(housing_csv, index=False)
    artifacts = str(tmp_path / "a")
    regression(data=str(housing_csv), target="MedHouseVal", epochs=2, stream=True, artifacts=artifacts)
    new = tmp_path / "new.csv"
    table.iloc[2_500:].drop(columns="MedHouseVal").to_csv(new, index=False)
    scored = pd.read_parquet(predict(data=str(new), artifacts=artifacts)["artifacts"]["predictions"])
    assert len(scored) == 500 and np.isfinite(scored["prediction"]).all()
    found = trained(ArtifactStore(artifacts), "champion")
    train = pd.read_parquet(found.split.path).query("split == 'train'")["row_id"]
    aside = Path(found.raw.path).rename(tmp_path / "raw-aside")  # kept beside the scaler: raw is not read again
    seen = training_profile(found)  # merged over row groups: the train rows' own moments
    aside.rename(found.raw.path)
    rows = table.iloc[:2_500].drop(columns="MedHouseVal").iloc[train.to_numpy()]
    assert np.allclose(seen.mean, rows.mean().to_numpy(), rtol=1e-9) and np.allclose(seen.low, rows.min().to_numpy())
    assert np.allclose(seen.std, rows.std(ddof=0).to_numpy(), rtol=1e-9)
    assert np.allclose(seen.high, rows.max().to_numpy())
    predict_streamed_as_in_memory(predict, new, scored, artifacts, tmp_path, monkeypatch)


def predict_streamed_as_in_memory(predict, new, in_memory, artifacts, tmp_path, monkeypatch):
    """Predict a batch of rows at a time: the same predictions, and the same refusals naming the
    same rows, as in memory (a table of 500 rows in batches of 64, a CSV read in blocks of 4 KiB)."""
    from tasks.serving import predict_stream
    from tasks.serving.drift import DriftError, SkewError
    from tasks.stages import streamed_stats

    monkeypatch.setattr(streamed_stats, "BATCH_ROWS", 64)
    monkeypatch.setattr(predict_stream, "CSV_BLOCK_BYTES", 4_096)
    for table in (tmp_path / "streamed.csv", tmp_path / "streamed.parquet"):  # (new names: not the cached run)
        pd.read_csv(new).to_csv(table, index=False) if table.suffix == ".csv" else pd.read_csv(new).to_parquet(table)
        run = predict(data=str(table), stream=True, artifacts=artifacts, out=str(tmp_path / "out.csv"))
        scored = pd.read_parquet(run["artifacts"]["predictions"])
        assert pq.ParquetFile(run["artifacts"]["predictions"]).metadata.num_row_groups >= 8  # written as scored
        assert scored["row"].tolist() == list(range(500))
        assert np.allclose(scored["prediction"], in_memory["prediction"], rtol=1e-6)
        assert np.allclose(pd.read_csv(tmp_path / "out.csv")["prediction"], in_memory["prediction"], rtol=1e-6)
        assert (tmp_path / "out.csv").read_text().splitlines()[0] == "row,prediction"  # as pandas writes it
    rows = pd.read_csv(new)
    said = {}
    for name, error in [("missing", SkewError), ("drift", DriftError)]:
        broken = rows.copy()
        if name == "missing":  # in the sixth and eighth batches
            broken.loc[[470, 490], "AveBedrms"] = np.nan
        else:
            broken["MedInc"] *= 3
        broken.to_csv(tmp_path / f"{name}.csv", index=False)
        for stream in (True, False):
            with pytest.raises(error) as found:
                predict(data=str(tmp_path / f"{name}.csv"), stream=stream, strict=True, artifacts=artifacts)
            said[(name, stream)] = str(found.value)
        assert said[(name, True)] == said[(name, False)], name
    assert "2 missing or infinite value(s), e.g. column 'AveBedrms' at row 471" in said[("missing", True)]
    assert "feature MedInc: mean" in said[("drift", True)]
    text = rows.astype({"HouseAge": str})
    text.loc[480, "HouseAge"] = "old"
    text.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(SkewError, match=r"column 'HouseAge' holds text where numbers are expected: 'old' at row 481"):
        predict(data=str(tmp_path / "text.csv"), stream=True, artifacts=artifacts)


def test_a_table_with_a_categorical_column_streams_and_is_scored_streamed_as_in_memory(housing_csv, tmp_path,
                                                                                     monkeypatch):
    """A text column (found as text, missing cells imputed) through the streamed flow: the same split,
    vocabulary and scaler as in memory; predict of a batch at a time: the same predictions and the
    same unseen categories as in memory, and (a model that does not impute) the same refusal of a
    missing category."""
    from flows.predict import predict
    from tasks.serving import predict_stream
    from tasks.serving.drift import SkewError
    from tasks.stages import streamed_stats

    table = pd.read_csv(housing_csv)
    table["region"] = np.where(table["Latitude"] > 37.5, "north", np.where(table["Longitude"] > -118.5, "east",
                                                                           "south"))
    table.loc[table.index % 17 == 3, "region"] = None
    table.iloc[:2_500].to_csv(housing_csv, index=False)
    runs = {stream: regression(data=str(housing_csv), target="MedHouseVal", missing="impute", epochs=2,
                               stream=stream, artifacts=str(tmp_path / str(stream))) for stream in (True, False)}
    paths = {stream: run["artifacts"] for stream, run in runs.items()}
    assert spec_of(pq.read_schema(paths[True]["raw"])).categorical == ("region",)
    for stage in ("split", "vocabulary"):
        assert pd.read_parquet(paths[True][stage]).equals(pd.read_parquet(paths[False][stage])), stage
    scalers = {stream: pd.read_parquet(p["scaler"]) for stream, p in paths.items()}
    assert np.allclose(scalers[True]["mean"], scalers[False]["mean"], rtol=1e-9)
    new = table.iloc[2_500:].drop(columns="MedHouseVal")
    new.loc[new.index[[100, 400]], "region"] = "island"  # a category training never saw
    new.to_parquet(tmp_path / "new.parquet")
    monkeypatch.setattr(streamed_stats, "BATCH_ROWS", 64)  # 8 batches
    artifacts = str(tmp_path / "True")
    scored = {stream: predict(data=str(tmp_path / "new.parquet"), stream=stream, artifacts=artifacts)
              for stream in (True, False)}
    got = {stream: pd.read_parquet(run["artifacts"]["predictions"]) for stream, run in scored.items()}
    assert pq.ParquetFile(scored[True]["artifacts"]["predictions"]).metadata.num_row_groups >= 8
    assert np.allclose(got[True]["prediction"], got[False]["prediction"], rtol=1e-6)
    lineage = {stream: json.loads(Path(run["artifacts"]["predictions"]).with_suffix(".json").read_text())
               for stream, run in scored.items()}
    known = set(pd.read_parquet(paths[True]["vocabulary"])["category"])
    unseen = int((~new["region"].isin(known) & new["region"].notna()).sum())  # "island" and any the train rows lack
    assert unseen >= 2 and [lineage[s]["unseen"] for s in (True, False)] == [{"region": unseen}] * 2
    assert scored[True]["artifacts"]["predictions"] == scored[False]["artifacts"]["predictions"]  # the same bytes
    monkeypatch.setattr(predict_stream, "CSV_BLOCK_BYTES", 4_096)
    new.loc[new.index[450], "region"] = None  # the model imputes: a missing category is its most frequent one
    new.to_csv(tmp_path / "new.csv", index=False)
    again = predict(data=str(tmp_path / "new.csv"), stream=True, artifacts=artifacts)
    assert len(pd.read_parquet(again["artifacts"]["predictions"])) == 500
    # a model that does not impute: a missing category is refused at its row, in the words memory uses
    table.iloc[:2_500].fillna({"region": "north"}).to_csv(tmp_path / "complete.csv", index=False)
    refusing = str(tmp_path / "refusing")
    regression(data=str(tmp_path / "complete.csv"), target="MedHouseVal", epochs=1, stream=True, artifacts=refusing)
    said = {}
    for stream in (True, False):
        with pytest.raises(SkewError) as found:
            predict(data=str(tmp_path / "new.csv"), stream=stream, artifacts=refusing)
        said[stream] = str(found.value)
    assert said[True] == said[False] and "column 'region' at row " in said[True]


def test_a_streamed_classifier_on_a_user_table_of_pixels_and_images_refused(fashion_table, tmp_path):
    from flows.classification import classification
    from tasks.core.errors import OptionError

    result = classification(data=str(fashion_table), target="label", epochs=2, stream=True,
                            artifacts=str(tmp_path / "a"))
    assert result["test"]["accuracy"] > 0.5  # ten classes from 2,400 rows in 2 epochs
    metrics = json.loads(Path(result["artifacts"]["metrics"]).with_suffix(".json").read_text())
    assert metrics["evaluation"]["test_rows"] == 600
    with pytest.raises(OptionError, match="--stream: fashion-mnist is images, which are not streamed"):
        classification(epochs=1, stream=True, artifacts=str(tmp_path / "b"))
    assert not list((tmp_path / "b").rglob("*.parquet"))


def test_past_the_in_memory_split_s_rows_the_flow_splits_by_the_seeded_hash(housing_csv, tmp_path, monkeypatch):
    monkeypatch.setattr(streamed, "SPLIT_IN_MEMORY_ROWS", 1_000)  # the 3,000-row table counts as large
    runs = [regression(data=str(housing_csv), target="MedHouseVal", epochs=1, stream=True,
                       artifacts=str(tmp_path / name)) for name in ("a", "b")]
    index = pq.read_table(runs[0]["artifacts"]["split"])
    assert spec_of(index).split.method == "hash"
    assert pq.read_table(runs[1]["artifacts"]["split"])["split"].equals(index["split"])  # same seed, same split
    shares = pd.Series(index["split"].to_pylist()).value_counts(normalize=True)
    assert abs(shares["test"] - 0.25) < 0.04 and np.isfinite(runs[0]["test"]["loss"])


def test_the_scans_parts_run_on_a_dask_cluster_with_the_same_result(tmp_path, monkeypatch):
    """--runner dask --address: a streamed table's scans in parts on a cluster's workers (the
    only work the regression flow submits to its runner), reporting to the flow's server."""
    from distributed import Client, LocalCluster, get_task_stream

    from flows.launch.embedded import shared
    from flows.launch.runners import with_runner
    from tasks.stages import streamed_stats

    monkeypatch.setattr(streamed_stats, "BATCH_ROWS", 4_000)  # 6 row groups: each scan in two parts
    server = shared()
    server.wait()
    monkeypatch.setenv("PREFECT_API_URL", server.url)  # what the cluster's workers report to
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        with server.api(), get_task_stream(client) as stream:
            spread = with_runner(regression, 2, "dask", cluster.scheduler_address)(
                model="mlp30", epochs=1, stream=True, workers=2, artifacts=str(tmp_path / "dask"))
    assert len(stream.data) == 8  # 4 scans x 2 parts, each on a worker of the cluster
    here = regression(model="mlp30", epochs=1, stream=True, artifacts=str(tmp_path / "here"))
    assert pd.read_parquet(spread["artifacts"]["split"]).equals(pd.read_parquet(here["artifacts"]["split"]))
    scalers = [pd.read_parquet(run["artifacts"]["scaler"]).set_index("feature") for run in (spread, here)]
    assert np.allclose(scalers[0], scalers[1], rtol=1e-12, atol=1e-12)  # moments merged in another order


def test_scan_parts_on_another_machine_read_a_bucket_s_artifacts_through_their_own_working_copy(tmp_path,
                                                                                                 monkeypatch):
    """A store in a bucket and a Dask cluster whose workers keep their working copies elsewhere (as
    on another machine): the parts are sent the artifacts' URLs, and read them from the bucket."""
    from distributed import Client, LocalCluster, get_task_stream

    from flows.launch.embedded import shared
    from flows.launch.runners import with_runner
    from tasks.stages import streamed_stats
    from tasks.store.artifacts import ArtifactStore
    from tasks.store.remote import CACHE_ENV
    from tests.services import s3_server

    monkeypatch.setattr(streamed_stats, "BATCH_ROWS", 4_000)  # 6 row groups: each scan in two parts
    server = shared()
    server.wait()
    monkeypatch.setenv("PREFECT_API_URL", server.url)
    with s3_server() as s3:
        aws = {name: value for name, value in s3.items() if name.startswith("AWS_")}
        for name, value in aws.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / "flow-host"))
        store = f"s3://{s3['bucket']}/spread"
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                          host="127.0.0.1", env={**aws, CACHE_ENV: str(tmp_path / "worker-host")}) as cluster, \
                Client(cluster) as client:
            with server.api(), get_task_stream(client) as stream:
                spread = with_runner(regression, 2, "dask", cluster.scheduler_address)(
                    model="mlp30", epochs=1, stream=True, workers=2, artifacts=store)
        scaler = pd.read_parquet(ArtifactStore(store).root / "scaler" / Path(spread["artifacts"]["scaler"]).name)
    assert len(stream.data) == 8  # 4 scans x 2 parts, on the cluster
    fetched = {p.parent.name for p in (tmp_path / "worker-host").rglob("*.parquet")}
    assert fetched == {"raw", "split", "scaled"}, fetched  # each scanned artifact, fetched by the workers' host
    here = regression(model="mlp30", epochs=1, stream=True, artifacts=str(tmp_path / "here"))
    expected = pd.read_parquet(here["artifacts"]["scaler"])
    assert np.allclose(scaler.set_index("feature"), expected.set_index("feature"), rtol=1e-12, atol=1e-12)


def test_a_streamed_table_with_missing_values_is_imputed_as_in_memory(housing_csv, tmp_path):
    table = pd.read_csv(housing_csv)
    table.loc[table.index % 9 == 4, "AveBedrms"] = np.nan
    table.to_csv(housing_csv, index=False)
    runs = {stream: regression(data=str(housing_csv), target="MedHouseVal", missing="impute", epochs=1, stream=stream,
                               artifacts=str(tmp_path / str(stream))) for stream in (True, False)}
    assert spec_of(pq.read_schema(runs[True]["artifacts"]["raw"])).streamed
    scalers = {stream: pd.read_parquet(run["artifacts"]["scaler"]) for stream, run in runs.items()}
    assert np.array_equal(scalers[True]["fill"], scalers[False]["fill"])  # the train rows' medians
    assert np.allclose(scalers[True]["mean"], scalers[False]["mean"], rtol=1e-9)


def test_another_host_scores_with_a_streamed_model_in_a_bucket_reading_no_table_whole(housing_csv, tmp_path,
                                                                                       monkeypatch):
    """A model trained from a stream into a bucket, scored on a second host: the tables it came from are
    read there by range (their footers, for the specs) and never downloaded; the predictions are the first
    host's."""
    from flows.predict import predict
    from tasks.store import blocks
    from tasks.store.remote import CACHE_ENV
    from tests.services import s3_server

    table = pd.read_csv(housing_csv)
    table.iloc[:2_500].to_csv(housing_csv, index=False)
    new = tmp_path / "new.csv"
    table.iloc[2_500:].drop(columns="MedHouseVal").to_csv(new, index=False)
    with s3_server() as s3:
        for name, value in s3.items():
            if name.startswith("AWS_"):
                monkeypatch.setenv(name, value)
        store = f"s3://{s3['bucket']}/streamed"
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / "host-a"))
        regression(data=str(housing_csv), target="MedHouseVal", epochs=1, stream=True, artifacts=store)
        first = predict(data=str(new), artifacts=store)["artifacts"]["predictions"]
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / "host-b"))
        monkeypatch.setattr(blocks, "FETCHED", {"blocks": 0, "bytes": 0})
        run = predict(data=str(new), artifacts=store, out=str(tmp_path / "b.csv"))
        assert run["artifacts"]["predictions"] == first and first.startswith(f"{store}/predictions/")  # the same bytes
        assert len(pd.read_csv(tmp_path / "b.csv")) == 500
    fetched = sorted(p.parent.name for p in (tmp_path / "host-b").rglob("*.parquet"))
    assert not {"raw", "split", "scaled"} & set(fetched), fetched  # their specs read from their footers, by range
    assert blocks.FETCHED["blocks"] > 0
