"""A user's table's columns: text is categorical (its vocabulary learnt on the train rows only),
text labels are named, missing values are refused or imputed from the train rows, and constant
columns are kept or, when asked, dropped. On real housing rows with a region column."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import DataError, OptionError
from tasks.stages.categories import MAX_CATEGORIES, UNSEEN, Vocabulary
from tasks.stages.scale import scale
from tasks.stages.split import split
from tasks.stages.table import TableOptions, load_table
from tasks.stages.validate import ValidationFailed, validate_raw, validate_scaled
from tasks.store.dataset import from_arrow, to_arrow

TARGET = "MedHouseVal"


@pytest.fixture
def houses(housing) -> pd.DataFrame:
    """600 real housing rows with a region derived from the coordinates, and a split of their own
    (train, valid, test in turn) so that a test can put a value in one split only."""
    rows = np.random.default_rng(0).permutation(len(housing))[:600]  # the file is ordered by region
    df = pd.DataFrame(housing.X[rows], columns=list(housing.spec.features))
    df[TARGET] = housing.y[rows]
    df["region"] = np.where(df["Latitude"] > 37.5, "north", np.where(df["Longitude"] > -122.2, "inland", "bay"))
    df["split"] = np.array(["train", "train", "valid", "test"])[np.arange(600) % 4]
    return df


def loaded(df: pd.DataFrame, tmp_path, options: TableOptions | None = None, target: str = TARGET,
           task: str = "regression"):
    path = tmp_path / "houses.csv"
    df.to_csv(path, index=False)
    frame, _ = load_table(path, target, task, options)
    return frame


def test_a_text_column_is_categorical_and_numbers_written_as_text_are_numbers(houses, tmp_path):
    houses["code"] = houses["HouseAge"].map("{:.0f}".format).astype(object)  # "41", "21", ... as text
    frame = loaded(houses, tmp_path)
    assert frame.spec.categorical == ("region",)
    assert "code" in frame.spec.features and "region" not in frame.spec.features
    assert list(frame.text[:3, 0]) == list(houses["region"][:3])
    back = from_arrow(to_arrow(frame))  # the raw artifact keeps the text as it was
    assert back.spec == frame.spec and (back.text == frame.text).all()


def test_a_column_of_numbers_and_text_is_refused_naming_both_and_the_two_ways_out(houses, tmp_path):
    houses["AveRooms"] = houses["AveRooms"].astype(object)
    houses.loc[[3, 8], "AveRooms"] = ["seven", "x"]
    with pytest.raises(DataError, match=r"column 'AveRooms' holds numbers in 598 rows .* and text in 2 \('seven', "
                                        r"'x' at rows 4, 9\); declare it --categorical AveRooms .* or --numeric"):
        loaded(houses, tmp_path)
    frame = loaded(houses, tmp_path, TableOptions(categorical=("AveRooms",)))
    assert "AveRooms" in frame.spec.categorical and {"seven", "x"} <= set(frame.text[:, 0])


def test_declared_columns_override_their_type_and_an_unknown_one_is_named(houses, tmp_path):
    frame = loaded(houses, tmp_path, TableOptions(categorical=("HouseAge",)))
    assert frame.spec.categorical == ("HouseAge", "region")
    assert frame.text[0, 0] == str(int(houses["HouseAge"][0]))  # a whole number, not "41.0"
    with pytest.raises(OptionError, match=r"--numeric Colour: not a feature column of houses.csv"):
        loaded(houses, tmp_path, TableOptions(numeric=("Colour",)))
    with pytest.raises(DataError, match=r"feature column 'region' holds text where numbers are expected"):
        loaded(houses, tmp_path, TableOptions(numeric=("region",)))


def test_text_labels_are_coded_in_sorted_order_and_keep_their_names(houses, tmp_path):
    houses["price"] = np.where(houses[TARGET] > 2.0, "high", "low")
    frame = loaded(houses.drop(columns=[TARGET]), tmp_path, target="price", task="classification")
    assert frame.spec.class_names == ("high", "low")
    np.testing.assert_array_equal(frame.y, (houses["price"] == "low").astype(int))
    validate_raw(frame)  # codes 0..1: the label check passes


def test_the_vocabulary_is_learnt_on_the_train_rows_only_and_unseen_ones_are_counted(houses, tmp_path):
    test_rows = np.flatnonzero(houses["split"] == "test")[:7]
    houses.loc[test_rows, "region"] = "island"  # a category only the test rows hold
    frame = loaded(houses, tmp_path)
    scaled, _, vocabulary, unseen = scale(frame, split(frame))
    assert "island" not in vocabulary.words[0] and set(vocabulary.words[0]) == {"north", "inland", "bay"}
    assert unseen == {"region": 7}
    train = houses[houses["split"] == "train"]["region"].value_counts()
    assert dict(zip(vocabulary.words[0], vocabulary.train_rows[0][1:])) == train.to_dict()
    one_hot = scaled.X[:, len(frame.spec.features):]
    assert scaled.spec.encoded == ("region=" + UNSEEN, *(f"region={w}" for w in vocabulary.words[0]))
    assert one_hot.sum(axis=1).tolist() == [1.0] * len(scaled)  # one category a row
    assert one_hot[:, 0].sum() == 7  # the unseen column holds exactly the test rows' new category
    validate_scaled(scaled)  # one-hot columns are 0/1, not standardised, and pass the scaled check
    back = Vocabulary.from_arrow(vocabulary.to_arrow())  # the artifact holds all of it
    assert (back.columns, back.words, back.fills) == (vocabulary.columns, vocabulary.words, vocabulary.fills)
    assert all((a == b).all() for a, b in zip(back.train_rows, vocabulary.train_rows))


def test_missing_values_are_refused_by_default_and_imputed_from_the_train_rows_when_declared(houses, tmp_path):
    holes = [0, 4, 2, 3]  # a train row, a train row, a valid row, a test row
    houses.loc[holes, "AveBedrms"] = np.nan
    houses.loc[[2, 3], "region"] = None
    houses.loc[np.flatnonzero(houses["split"] != "train"), "AveBedrms"] *= 100  # no median but train's would do
    with pytest.raises(ValidationFailed, match=r"AveBedrms has 4 missing values at rows 1, 3, 4, 5; fill or drop "
                                               r"them, or pass --missing impute"):
        validate_raw(loaded(houses, tmp_path))
    frame = loaded(houses, tmp_path, TableOptions(missing="impute"))
    validate_raw(frame)
    scaled, scaler, vocabulary, _ = scale(frame, split(frame))
    column = list(frame.spec.features).index("AveBedrms")
    train = houses[houses["split"] == "train"]
    assert scaler.fill_[column] == pytest.approx(train["AveBedrms"].median())  # pandas skips the NaN
    assert vocabulary.fills == (train["region"].value_counts().index[0],)
    filled = scaled.X[np.isin(scaled.row_id, holes), column]
    assert np.allclose(filled, (scaler.fill_[column] - scaler.mean_[column]) / scaler.scale_[column])
    assert np.isfinite(scaled.X).all()


def test_a_constant_column_is_kept_or_dropped_on_the_train_rows_when_asked(houses, tmp_path):
    houses["flag"] = np.where(houses["split"] == "train", 1.0, 0.0)  # constant on train rows only
    kept = loaded(houses, tmp_path)
    assert "flag" in scale(kept, split(kept)).frame.spec.features
    frame = loaded(houses, tmp_path, TableOptions(drop_constant=True))
    scaled, scaler, *_ = scale(frame, split(frame))
    assert "flag" not in scaled.spec.features and len(scaler.mean_) == len(frame.spec.features) - 1
    assert scaled.X.shape[1] == len(scaled.spec.features)


def test_a_category_column_of_identifiers_is_refused_at_validation(houses, tmp_path):
    many = pd.concat([houses] * 2, ignore_index=True)
    many["id"] = [f"house-{i}" for i in range(len(many))]
    assert len(many) > MAX_CATEGORIES
    with pytest.raises(ValidationFailed, match=rf"category column 'id' holds 1,200 distinct values \(a category "
                                               rf"column may hold {MAX_CATEGORIES:,}\): an identifier"):
        validate_raw(loaded(many, tmp_path))


def test_the_vocabulary_s_order_is_string_lookup_s_ties_included():
    import keras

    words = np.array(["b", "a", "c", "é", "a", "b", "z", "é", "y", None, "c", "Ä"], dtype=object)
    layer = keras.layers.StringLookup()
    layer.adapt(words[words != None].astype(str))  # noqa: E711
    fitted = Vocabulary.fit(words[:, None], ("w",), impute=True)
    assert list(fitted.words[0]) == layer.get_vocabulary()[1:]  # ties (2 rows, 1 row) in Keras's order
    assert fitted.fills == (fitted.words[0][0],) and fitted.train_rows[0].sum() == 11
    from collections import Counter

    halves = Counter(w for w in words[:6] if w) + Counter(w for w in words[6:] if w)  # two parts' counts, merged
    assert Vocabulary.from_counts(("w",), [dict(halves)], True).words == fitted.words
