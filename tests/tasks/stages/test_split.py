import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.model_selection import train_test_split

from tasks.stages.split import split
from tasks.store.dataset import SplitRule, from_arrow, read_index, to_arrow


def test_fashion_course_split_first_5000_train_images_are_valid(fashion, tmp_path):
    index = split(fashion)
    assert (index.split[:5_000] == "valid").all()
    assert (index.split[5_000:60_000] == "train").all() and (index.split[60_000:] == "test").all()
    table = to_arrow(index)  # an index: the features stay in the raw artifact
    assert table.column_names == ["row_id", "split", "label"]
    assert (read_index_of(table, tmp_path).split == index.split).all()


def read_index_of(table, folder):
    """A split index read back as the scale stage reads it (and refused as a frame of features)."""
    path = folder / "index.parquet"
    pq.write_table(table, path)
    with pytest.raises(ValueError, match="no feature columns"):
        from_arrow(table)
    return read_index(path)


def test_housing_split_is_the_course_train_test_split(housing):
    index = split(housing)
    rest, test = train_test_split(np.arange(20_640), random_state=7)
    train, valid = train_test_split(rest, random_state=11)
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        assert set(np.flatnonzero(index.split == name)) == set(rows)
    assert sorted(np.unique(index.split, return_counts=True)[1]) == [3_870, 5_160, 11_610]


def test_a_table_s_own_test_rows_stay_and_its_valid_rows_come_from_its_train_rows(housing):
    """A table whose split column names train and test only: its test rows are kept as they are,
    and a quarter of its train rows, drawn with the course's second seed, become valid."""
    frame = housing.take(np.arange(400))
    frame.split = np.array(["train"] * 300 + ["test"] * 100, dtype=object)
    frame.spec = frame.spec.replace(split=SplitRule("given"), rows=None)
    labels = split(frame).split
    assert (labels[300:] == "test").all()
    train, valid = np.flatnonzero(labels[:300] == "train"), np.flatnonzero(labels[:300] == "valid")
    assert len(valid) == 75 and len(train) == 225
    expected_train, expected_valid = train_test_split(np.arange(300), random_state=11)
    assert set(valid) == set(expected_valid) and set(train) == set(expected_train)
