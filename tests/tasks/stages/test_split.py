import tempfile

import numpy as np
from sklearn.model_selection import train_test_split

from tasks.stages.split import split
from tasks.store.dataset import from_arrow, to_arrow


def test_fashion_course_split_first_5000_train_images_are_valid(fashion):
    index = split(fashion)
    assert (index.split[:5_000] == "valid").all()
    assert (index.split[5_000:60_000] == "train").all() and (index.split[60_000:] == "test").all()
    table = to_arrow(index)  # an index: the features stay in the raw artifact
    assert table.column_names == ["row_id", "split", "label"]
    assert (read_index_of(table).split == index.split).all()


def read_index_of(table):
    """A split index read back as the scale stage reads it (and refused as a frame of features)."""
    import pyarrow.parquet as pq
    import pytest

    from tasks.store.dataset import read_index

    path = tempfile.mkdtemp() + "/index.parquet"
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


def test_every_row_lands_in_exactly_one_split(housing):
    labels = split(housing).split
    assert set(labels) == {"train", "valid", "test"} and len(labels) == len(housing)
