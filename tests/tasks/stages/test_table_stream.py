"""A user's table streamed a batch at a time (tables larger than memory) gives the raw artifact
that the in-memory load gives, as row groups, and refuses bad input in a late batch naming the
row by its place in the whole table, with nothing left in the store. On real housing rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tasks.core.errors import DataError
from tasks.stages.table import load_table
from tasks.stages.table_stream import StreamedTable
from tasks.store.artifacts import ArtifactStore
from tasks.store.dataset import from_arrow, to_arrow

TARGET = "MedHouseVal"
SMALL = {"batch_rows": 400, "csv_block_bytes": 16 * 2**10}  # many batches and CSV blocks from 3,000 rows


@pytest.fixture
def houses(housing) -> pd.DataFrame:
    df = pd.DataFrame(housing.X[:3_000], columns=list(housing.spec.features))
    df[TARGET] = housing.y[:3_000]
    return df


def written(df: pd.DataFrame, tmp_path, suffix: str):
    path = tmp_path / f"houses{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path)
    return path


def streamed(path, tmp_path, task: str = "regression"):
    store = ArtifactStore(tmp_path / "store")
    table = StreamedTable(path, TARGET, task, **SMALL)
    return store, store.put_batches(table.batches(), "raw")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_streamed_table_is_the_in_memory_load_as_row_groups(houses, tmp_path, suffix):
    houses.loc[2_990, "AveBedrms"] = np.nan  # a missing cell in the last batch: kept for validation to name
    path = written(houses, tmp_path, suffix)
    _, ref = streamed(path, tmp_path)
    frame, _ = load_table(path, TARGET, "regression")
    got = pq.read_table(ref.path)
    assert pq.ParquetFile(ref.path).num_row_groups >= 3_000 // SMALL["batch_rows"]
    assert ref.rows == 3_000
    assert got.schema.equals(to_arrow(frame).schema, check_metadata=False)
    back = from_arrow(got)
    assert back.spec == frame.spec.replace(streamed=True)
    assert np.array_equal(back.row_id, frame.row_id) and np.array_equal(back.y, frame.y)
    assert np.array_equal(back.X, frame.X, equal_nan=True)
    assert np.isnan(back.X[2_990, list(frame.spec.features).index("AveBedrms")])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_text_in_the_last_batch_is_refused_naming_its_row_and_nothing_is_written(houses, tmp_path, suffix):
    houses["HouseAge"] = houses["HouseAge"].astype(str)  # numbers written as text, one of them not a number
    houses.loc[2_997, "HouseAge"] = "forty"
    path = written(houses, tmp_path, suffix)
    with pytest.raises(DataError) as found:
        streamed(path, tmp_path)
    assert "'HouseAge'" in str(found.value) and "'forty'" in str(found.value) and "row 2998" in str(found.value)
    assert not list((tmp_path / "store").rglob("*.parquet")) and not list((tmp_path / "store").rglob(".tmp-*"))


def test_a_label_that_is_not_whole_is_refused_at_its_global_row(houses, tmp_path):
    houses[TARGET] = (houses[TARGET] > 2).astype(float)
    houses.loc[2_500, TARGET] = 0.5
    with pytest.raises(DataError, match=r"'MedHouseVal' holds 0\.5 at row 2501"):
        streamed(written(houses, tmp_path, ".parquet"), tmp_path, "classification")


def test_a_bad_split_value_and_a_missing_target_are_named(houses, tmp_path):
    houses["split"] = np.where(np.arange(3_000) < 2_000, "train", "test")
    houses.loc[2_801, "split"] = "holdout"
    with pytest.raises(DataError, match=r"column 'split' holds 'holdout' at row 2802"):
        streamed(written(houses, tmp_path, ".csv"), tmp_path)
    with pytest.raises(DataError, match="no column 'price'"):
        StreamedTable(written(houses, tmp_path, ".csv"), "price", "regression")


def test_text_in_the_first_block_of_a_csv_is_refused_too(houses, tmp_path):
    houses["HouseAge"] = houses["HouseAge"].astype(str)
    houses.loc[4, "HouseAge"] = "new"
    with pytest.raises(DataError, match=r"'HouseAge' holds text where numbers are expected: 'new' at row 5"):
        list(StreamedTable(written(houses, tmp_path, ".csv"), TARGET, "regression").batches())


def regions(houses: pd.DataFrame) -> pd.DataFrame:
    """A text column of categories by latitude and longitude, one cell missing in the last batch."""
    houses["region"] = np.where(houses["Latitude"] > 37.5, "north", np.where(houses["Longitude"] > -118.5,
                                                                              "east", "south"))
    houses.loc[2_950, "region"] = None
    return houses


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_categorical_columns_stream_as_text_as_the_in_memory_load_reads_them(houses, tmp_path, suffix):
    from tasks.stages.table import TableOptions

    path = written(regions(houses), tmp_path, suffix)  # region: found as text; HouseAge: declared
    options = TableOptions(categorical=("HouseAge",), missing="impute")
    store = ArtifactStore(tmp_path / "store")
    ref = store.put_batches(StreamedTable(path, TARGET, "regression", options, **SMALL).batches(), "raw")
    frame, _ = load_table(path, TARGET, "regression", options)
    back = from_arrow(pq.read_table(ref.path))
    assert back.spec == frame.spec.replace(streamed=True) and back.spec.categorical == ("HouseAge", "region")
    assert np.array_equal(back.text, frame.text) and back.text[2_950, 1] is None  # "41", not "41.0", as in memory
    assert np.array_equal(back.X, frame.X)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_category_names_are_the_ones_memory_gives_missing_cells_floats_and_booleans(houses, tmp_path, suffix):
    from tasks.stages.table import TableOptions

    houses["code"] = (houses.index % 3).astype(float)  # 0.0, 1.0, 2.0, a few missing (NaN)
    houses.loc[[5, 2_990], "code"] = np.nan
    houses["flag"] = houses.index % 2 == 0  # booleans
    houses["place"] = np.where(houses.index % 5 == 0, "coast", "inland").astype(object)
    houses.loc[[7, 2_995], "place"] = None  # a CSV writes an empty cell
    path = written(houses, tmp_path, suffix)
    if suffix == ".csv":  # the cells pandas reads as missing, written as text: "None", "<NA>"
        lines = path.read_text().splitlines()
        lines[8 + 1] = lines[8 + 1].rsplit(",", 1)[0] + ",None"
        lines[2_996 + 1] = lines[2_996 + 1].rsplit(",", 1)[0] + ",<NA>"
        path.write_text("\n".join(lines) + "\n")
    options = TableOptions(categorical=("code", "flag"), missing="impute")
    store = ArtifactStore(tmp_path / "store")
    ref = store.put_batches(StreamedTable(path, TARGET, "regression", options, **SMALL).batches(), "raw")
    frame, _ = load_table(path, TARGET, "regression", options)
    back = from_arrow(pq.read_table(ref.path))
    assert back.spec.categorical == frame.spec.categorical == ("code", "flag", "place")
    assert np.array_equal(back.text, frame.text)
    assert {*frame.text[:, 0]} == {"0", "1", "2", None} and {*frame.text[:, 1]} == {"True", "False"}
    assert sum(v is None for v in frame.text[:, 2]) == (4 if suffix == ".csv" else 2)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_number_in_a_late_batch_of_a_text_column_is_refused_naming_both_ways_out(houses, tmp_path, suffix):
    houses = regions(houses)
    houses.loc[2_990, "region"] = "17"
    with pytest.raises(DataError, match=r"column 'region' of text holds numbers \('17' at row 2991\); declare it "
                                        r"--categorical region .* or --numeric region"):
        streamed(written(houses, tmp_path, suffix), tmp_path)
    assert not list((tmp_path / "store").rglob("*.parquet"))


def test_labels_one_to_k_and_an_empty_split_cell_are_refused_as_in_memory(houses, tmp_path):
    houses[TARGET] = (houses[TARGET] > 2).astype(np.int64) + 1  # 1..2
    with pytest.raises(DataError, match=r"the labels in 'MedHouseVal' run 1..2; the models need 0..1"):
        streamed(written(houses, tmp_path, ".parquet"), tmp_path, "classification")
    assert not list((tmp_path / "store").rglob("*.parquet"))
    houses[TARGET] -= 1
    houses["split"] = pd.Series(["train"] * 2_999 + [None], dtype=object)
    with pytest.raises(DataError, match=r"column 'split' holds 'None' at row 3000"):
        streamed(written(houses, tmp_path, ".parquet"), tmp_path, "classification")


def test_a_csv_column_of_dates_is_categorical_text_as_in_memory(houses, tmp_path):
    houses["sold"] = pd.Series(pd.date_range("2024-01-01", periods=30).strftime("%Y-%m-%d")).sample(
        len(houses), replace=True, random_state=0).to_numpy()  # Arrow would read dates: here they stay text
    path = written(houses, tmp_path, ".csv")
    frame, _ = load_table(path, TARGET, "regression")
    back = from_arrow(pq.read_table(streamed(path, tmp_path)[1].path))
    assert back.spec.categorical == frame.spec.categorical == ("sold",) and np.array_equal(back.text, frame.text)


def test_a_text_column_empty_in_its_first_batches_is_typed_by_its_first_values(houses, tmp_path):
    houses["zone"] = pd.Series([None] * 900 + [str(i % 7) for i in range(2_100)], dtype=object)  # numbers as text
    houses["code"] = pd.Series([None] * 900 + [f"z{i % 3}" for i in range(2_100)], dtype=object)
    houses["big"] = np.where(houses.index % 2 == 0, 1e20, 2e20)  # whole, past int64: kept as written
    path = written(houses, tmp_path, ".parquet")
    from tasks.stages.table import TableOptions

    options = TableOptions(categorical=("big",), missing="impute")
    table = StreamedTable(path, TARGET, "regression", options, **SMALL)  # 400-row batches: 3 empty first
    frame, _ = load_table(path, TARGET, "regression", options)
    assert table.spec.categorical == frame.spec.categorical == ("code", "big")
    assert "zone" in table.spec.features and "zone" in frame.spec.features
    back = from_arrow(pq.read_table(ArtifactStore(tmp_path / "s").put_batches(table.batches(), "raw").path))
    assert np.array_equal(back.text, frame.text) and set(frame.text[:, 1]) == {"1e+20", "2e+20"}
