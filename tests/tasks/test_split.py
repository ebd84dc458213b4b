import numpy as np
from sklearn.model_selection import train_test_split

from tasks.split import split


def test_fashion_course_split_first_5000_train_images_are_valid(fashion):
    index = split(fashion)
    assert (index.split[:5_000] == "valid").all()
    assert (index.split[5_000:60_000] == "train").all() and (index.split[60_000:] == "test").all()
    assert index.X.shape == (70_000, 0)  # an index: features stay in the raw artifact


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
