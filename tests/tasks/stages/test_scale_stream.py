"""The scale stage streamed a row group at a time gives the in-memory stage's scaler (to 1e-9)
and its scaled artifact, value for value, on real housing rows as a user's table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tasks.core.errors import DataError
from tasks.stages.scale import scale
from tasks.stages.scale_stream import StreamedScale, aligned
from tasks.stages.split import split
from tasks.stages.streamed_stats import batches
from tasks.stages.table import TableOptions, load_table
from tasks.store.artifacts import ArtifactStore
from tasks.store.dataset import spec_of, to_arrow

TARGET = "MedHouseVal"


def stored(housing, tmp_path, options: TableOptions | None = None, constant: bool = False, change=None):
    """3,000 real housing rows (``change`` applied) loaded and split in memory, both written as artifacts."""
    df = pd.DataFrame(housing.X[:3_000], columns=list(housing.spec.features))
    df[TARGET] = housing.y[:3_000]
    if constant:
        df["Flag"] = 1.0
    if change:
        change(df)
    df.to_csv(tmp_path / "houses.csv", index=False)
    raw, _ = load_table(tmp_path / "houses.csv", TARGET, "regression", options)
    index = split(raw)
    store = ArtifactStore(tmp_path / "store")
    return raw, index, store.put_table(to_arrow(raw), "raw").path, store.put_table(to_arrow(index), "split").path


@pytest.mark.parametrize("drop_constant, parts", [(False, 1), (True, 1), (True, 5)])  # 5: moments merged over spans
def test_the_streamed_scale_is_the_in_memory_one(housing, tmp_path, drop_constant, parts):
    raw, index, raw_path, index_path = stored(housing, tmp_path, TableOptions(drop_constant=drop_constant),
                                              constant=True)
    streamed = StreamedScale(raw_path, index_path, scale_target=True, batch_rows=250, parts=parts)
    whole = scale(raw, index, scale_target=True)
    assert np.allclose(streamed.scaler.mean_, whole.scaler.mean_, rtol=1e-9, atol=1e-12)
    assert np.allclose(streamed.scaler.scale_, whole.scaler.scale_, rtol=1e-9, atol=0)
    assert streamed.spec.target_scaling == pytest.approx(whole.frame.spec.target_scaling, rel=1e-9)
    assert streamed.spec.features == whole.frame.spec.features
    assert ("Flag" in streamed.spec.features) is not drop_constant
    ref = ArtifactStore(tmp_path / "store").put_batches(streamed.scaled_batches(), "scaled")
    got, expected = pq.read_table(ref.path).sort_by("row_id"), to_arrow(whole.frame).sort_by("row_id")
    assert got.column_names == expected.column_names  # the same spec, its target's moments to rounding:
    assert spec_of(got).replace(target_scaling=whole.frame.spec.target_scaling) == whole.frame.spec
    for name in got.column_names:  # the same rows and values (in another order: a group per split and raw group)
        assert got[name].to_pylist() == expected[name].to_pylist(), name
    groups = pq.ParquetFile(ref.path).metadata
    assert groups.num_row_groups > 3
    for g in range(groups.num_row_groups):  # each group holds one split
        stats = groups.row_group(g).column(1).statistics
        assert stats.min == stats.max


@pytest.mark.parametrize("held", [1_000_000, 40])  # 40: the medians narrowed over several passes
def test_impute_fills_with_the_in_memory_medians_and_scales_the_filled_rows(housing, tmp_path, monkeypatch, held):
    from tasks.stages import streamed_median

    monkeypatch.setattr(streamed_median, "HELD", held)
    monkeypatch.setattr(streamed_median, "BINS", 16)
    def holes(df):  # missing cells in every group, one column missing in most train rows
        df.loc[df.index % 7 == 3, "AveBedrms"] = np.nan
        df.loc[df.index % 11 == 5, "HouseAge"] = np.nan
        df.loc[df.index % 10 != 0, "Population"] = np.nan
    raw, index, raw_path, index_path = stored(housing, tmp_path, TableOptions(missing="impute"), change=holes)
    streamed = StreamedScale(raw_path, index_path, batch_rows=250, parts=3)
    whole = scale(raw, index)
    assert np.array_equal(streamed.scaler.fill_, whole.scaler.fill_)  # the medians exactly
    assert np.allclose(streamed.scaler.mean_, whole.scaler.mean_, rtol=1e-9, atol=1e-12)
    assert np.allclose(streamed.scaler.scale_, whole.scaler.scale_, rtol=1e-9, atol=0)
    ref = ArtifactStore(tmp_path / "store").put_batches(streamed.scaled_batches(), "scaled")
    got, expected = pq.read_table(ref.path).sort_by("row_id"), to_arrow(whole.frame).sort_by("row_id")
    for name in got.column_names:
        assert got[name].to_pylist() == expected[name].to_pylist(), name
    assert "fill" in streamed.scaler_table().column_names  # predict fills new rows with the same medians


@pytest.mark.parametrize("parts", [1, 3])
def test_categorical_columns_get_the_in_memory_vocabulary_and_one_hot_columns(housing, tmp_path, parts):
    def regions(df):  # categories by place; two the train rows may never hold; missing cells imputed
        df["region"] = np.where(df["Latitude"] > 37.5, "north", np.where(df["Longitude"] > -118.5, "east", "south"))
        df.loc[df.index % 13 == 6, "region"] = None
        df.loc[2_980:, "region"] = [f"isle {i}" for i in range(20)]  # one row each: those not in train are unseen
        df["code"] = (df.index % 4).astype(float)  # a code held as a number, declared categorical
    raw, index, raw_path, index_path = stored(
        housing, tmp_path, TableOptions(categorical=("code",), missing="impute", drop_constant=True), change=regions)
    streamed = StreamedScale(raw_path, index_path, batch_rows=250, parts=parts)
    whole = scale(raw, index)
    got_words, expected_words = streamed.vocabulary, whole.vocabulary
    assert (got_words.columns, got_words.words, got_words.fills) == (
        expected_words.columns, expected_words.words, expected_words.fills)
    assert set(got_words.words[1]) == {"0", "1", "2", "3"}
    assert all(np.array_equal(a, b) for a, b in zip(streamed.vocabulary.train_rows, whole.vocabulary.train_rows))
    assert streamed.spec == whole.frame.spec  # the one-hot columns' names after the kept numbers
    assert streamed.scaler_table()["feature"].to_pylist() == list(raw.spec.features)  # the numbers' scaler
    ref = ArtifactStore(tmp_path / "store").put_batches(streamed.scaled_batches(), "scaled")
    got, expected = pq.read_table(ref.path).sort_by("row_id"), to_arrow(whole.frame).sort_by("row_id")
    for name in got.column_names:
        assert got[name].to_pylist() == expected[name].to_pylist(), name
    assert streamed.unseen == whole.unseen and sum(streamed.unseen.values()) > 0  # counted while written


def test_a_column_with_no_train_value_has_no_median_to_impute_from(housing, tmp_path):
    def empty(df):
        df["AveBedrms"] = np.nan
    _, _, raw_path, index_path = stored(housing, tmp_path, TableOptions(missing="impute"), change=empty)
    with pytest.raises(DataError, match=r"'AveBedrms': no value in any train row, so there is no median"):
        StreamedScale(raw_path, index_path, batch_rows=250)


def test_aligned_cuts_two_streams_of_the_same_rows_into_equal_pairs(housing, tmp_path):
    _, _, raw_path, index_path = stored(housing, tmp_path)
    pairs = list(aligned(batches(raw_path, ["row_id"], 700), batches(index_path, ["row_id"], 450)))
    assert sum(a.num_rows for a, _ in pairs) == 3_000
    assert all(a.column(0).equals(b.column(0)) for a, b in pairs)
    with pytest.raises(ValueError, match="different numbers of rows"):
        list(aligned(batches(raw_path, ["row_id"], 700), iter([])))


def test_a_table_of_categorical_columns_only_scales_as_in_memory(housing, tmp_path):
    def text_only(df):
        df["region"] = np.where(df["Latitude"] > 37.5, "north", "south")
        df["band"] = pd.cut(df["MedInc"], [0, 3, 6, 99], labels=["low", "mid", "high"]).astype(str)
        df.drop(columns=[c for c in df.columns if c not in ("region", "band", TARGET)], inplace=True)
    raw, index, raw_path, index_path = stored(housing, tmp_path, change=text_only)
    assert raw.spec.features == () and raw.spec.categorical == ("region", "band")
    streamed = StreamedScale(raw_path, index_path, batch_rows=250, parts=2)
    whole = scale(raw, index)
    assert streamed.spec == whole.frame.spec and streamed.vocabulary.words == whole.vocabulary.words
    ref = ArtifactStore(tmp_path / "store").put_batches(streamed.scaled_batches(), "scaled")
    got, expected = pq.read_table(ref.path).sort_by("row_id"), to_arrow(whole.frame).sort_by("row_id")
    assert got.column_names == expected.column_names
    for name in got.column_names:
        assert got[name].to_pylist() == expected[name].to_pylist(), name
