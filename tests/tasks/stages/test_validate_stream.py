"""Validation of a table streamed a row group at a time: the in-memory expectations on reduced
profiles, and findings in the in-memory words with the same global rows and counts, on real
housing rows (faults placed in late row groups)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.stages.scale_stream import StreamedScale
from tasks.stages.split_stream import split_batches
from tasks.stages.table import load_table
from tasks.stages.table_stream import StreamedTable
from tasks.stages.validate import ScalingFault, ValidationFailed, validate_raw
from tasks.stages.validate_stream import validate_raw_streamed, validate_scaled_streamed, validate_split_streamed
from tasks.store.artifacts import ArtifactStore

TARGET = "MedHouseVal"
GROUP = 400


def table(housing, tmp_path, task: str = "regression", change=None):
    df = pd.DataFrame(housing.X[:3_000], columns=list(housing.spec.features))
    df[TARGET] = housing.y[:3_000] if task == "regression" else (housing.y[:3_000] > 2).astype(np.int64)
    if change:
        change(df)
    path = tmp_path / "houses.parquet"
    df.to_parquet(path)
    return path


def streamed_raw(path, tmp_path, task: str = "regression"):
    store = ArtifactStore(tmp_path / "store")
    return store, store.put_batches(StreamedTable(path, TARGET, task, batch_rows=GROUP).batches(), "raw")


def findings(housing, tmp_path, faults, parts: int = 1) -> tuple[str, str]:
    """What the streamed raw validation (scanned in ``parts``) and the in-memory one say of the
    same faulty table."""
    path = table(housing, tmp_path, change=faults)
    _, raw = streamed_raw(path, tmp_path)
    with pytest.raises(ValidationFailed) as streamed:
        validate_raw_streamed(raw.path, batch_rows=GROUP, parts=parts)
    frame, _ = load_table(path, TARGET, "regression")
    with pytest.raises(ValidationFailed) as in_memory:
        validate_raw(frame)
    return str(streamed.value), str(in_memory.value)


def test_a_clean_table_passes_every_streamed_point(housing, tmp_path):
    store, raw = streamed_raw(table(housing, tmp_path), tmp_path)
    report = validate_raw_streamed(raw.path, batch_rows=GROUP)
    assert report.checks and all(check["success"] for check in report.checks)
    assert [c for c in report.warnings] == []
    index = store.put_batches(split_batches(raw.path, batch_rows=GROUP), "split")
    assert all(c["success"] for c in validate_split_streamed(index.path, raw.rows, batch_rows=GROUP).checks)
    scaled = store.put_batches(StreamedScale(raw.path, index.path, batch_rows=GROUP).scaled_batches(), "scaled")
    assert all(c["success"] for c in validate_scaled_streamed(scaled.path, batch_rows=GROUP).checks)


@pytest.mark.parametrize("parts", [1, 3])  # 3: spans of rows 0-1199, 1200-2399 and 2400-2999, merged
def test_faults_in_late_row_groups_are_named_as_the_in_memory_validation_names_them(housing, tmp_path, parts):
    def faults(df):
        df.loc[[1_500, 2_203, 2_650, 2_951, 2_990, 2_991, 2_992, 2_999], "AveBedrms"] = np.nan  # 8, across groups
        df.loc[2_998, "Population"] = np.inf
        df.loc[2_997, TARGET] = np.nan
    said, in_memory = findings(housing, tmp_path, faults, parts)
    assert "AveBedrms has 8 missing values at rows 1501, 2204, 2651, 2952, 2991 and 3 more" in said
    assert "Population holds infinity at row 2999: inf" in said
    assert f"the target {TARGET!r} is empty at row 2998" in said
    assert sorted(said.splitlines()) == sorted(in_memory.splitlines())


def test_a_negative_label_and_a_short_table_are_refused(housing, tmp_path):
    def negative(df):
        df.loc[2_777, TARGET] = -1
    _, raw = streamed_raw(table(housing, tmp_path, "classification", negative), tmp_path, "classification")
    with pytest.raises(ValidationFailed, match=r"'MedHouseVal' holds -1 at row 2778; labels must be"):
        validate_raw_streamed(raw.path, batch_rows=GROUP)
    short = tmp_path / "short.parquet"
    pd.read_parquet(table(housing, tmp_path)).head(12).to_parquet(short)
    store = ArtifactStore(tmp_path / "short-store")
    ref = store.put_batches(StreamedTable(short, TARGET, "regression", batch_rows=5).batches(), "raw")
    with pytest.raises(ValidationFailed, match="the table has 12 rows; at least 20 are needed"):
        validate_raw_streamed(ref.path, batch_rows=5)


@pytest.mark.parametrize("parts, repeated", [(1, 2_500), (3, 2_400)])  # 3: the repeat where a span begins
def test_a_split_index_with_a_repeated_row_or_a_stray_label_is_refused(housing, tmp_path, parts, repeated):
    store, raw = streamed_raw(table(housing, tmp_path), tmp_path)
    index = pq.read_table(store.put_batches(split_batches(raw.path, batch_rows=GROUP), "split").path)
    row_id, split = index["row_id"].to_numpy().copy(), index["split"].to_pylist()
    row_id[repeated], split[2_600] = row_id[repeated - 1], "holdout"
    broken = index.set_column(0, "row_id", pa.array(row_id)).set_column(1, "split", pa.array(split))
    path = store.put_table(broken, "split")
    with pytest.raises(ValidationFailed) as found:
        validate_split_streamed(path.path, raw.rows, batch_rows=GROUP, parts=parts)
    assert f"rows {row_id[repeated - 1]} are in more than one split" in str(found.value)
    assert "split labels 'holdout'" in str(found.value)
    with pytest.raises(ValidationFailed, match="the split index has 3000 rows for 3001 raw rows"):
        validate_split_streamed(store.put_batches(split_batches(raw.path, batch_rows=GROUP), "split").path, 3_001,
                                batch_rows=GROUP)


def test_a_scaled_column_off_its_train_moments_is_the_scaler_s_fault(housing, tmp_path):
    store, raw = streamed_raw(table(housing, tmp_path), tmp_path)
    index = store.put_batches(split_batches(raw.path, batch_rows=GROUP), "split")
    scaled = pq.read_table(store.put_batches(StreamedScale(raw.path, index.path).scaled_batches(), "scaled").path)
    doubled = scaled.set_column(scaled.column_names.index("MedInc"), "MedInc",
                                pa.array(scaled["MedInc"].to_numpy() * 2 + 1))
    with pytest.raises(ScalingFault, match="MedInc"):
        validate_scaled_streamed(store.put_table(doubled, "scaled").path, batch_rows=GROUP)


def test_a_fault_in_the_first_row_is_named_once_and_no_good_row_with_it(housing, tmp_path):
    def faults(df):
        df.loc[0, TARGET] = np.nan
        df.loc[150, "AveBedrms"] = np.nan
    said, in_memory = findings(housing, tmp_path, faults)
    assert f"the target {TARGET!r} is empty at row 1;" in said
    assert "AveBedrms has 1 missing value at row 151" in said
    assert sorted(said.splitlines()) == sorted(in_memory.splitlines())


@pytest.mark.parametrize("parts", [1, 3])
def test_a_categorical_column_s_missing_cells_and_identifiers_are_named_as_in_memory(housing, tmp_path, parts):
    def faults(df):
        df["region"] = np.where(df["Latitude"] > 37.5, "north", "south")
        df.loc[[2_203, 2_990], "region"] = None  # two missing cells, late row groups
        df["id"] = [f"house-{i}" for i in range(len(df))]  # more distinct values than categories may have
        df["coast"] = "yes"  # one value in every row: a warning
    said, in_memory = findings(housing, tmp_path, faults, parts)
    assert "region has 2 missing values at rows 2204, 2991" in said
    assert "category column 'id' holds over 1,000 distinct values" in said
    assert "holds 3,000 distinct values" in in_memory  # counted in memory; the stream stops counting past 1,000
    assert sorted(said.replace("over 1,000", "3,000").splitlines()) == sorted(in_memory.splitlines())


def test_a_categorical_column_of_one_value_passes_with_the_in_memory_warning(housing, tmp_path):
    def regions(df):
        df["region"] = np.where(df["Latitude"] > 37.5, "north", "south")
        df["coast"] = "yes"
    path = table(housing, tmp_path, change=regions)
    _, raw = streamed_raw(path, tmp_path)
    report = validate_raw_streamed(raw.path, batch_rows=GROUP, parts=2)
    frame, _ = load_table(path, TARGET, "regression")
    assert report.warnings == validate_raw(frame).warnings == [
        "coast is 'yes' in every row: kept (one one-hot column), though a column with one value gives a model "
        "nothing to learn from"]
