"""Skew and drift checks of new data against training, on real housing rows altered on purpose."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.core.params import TrainParams
from tasks.serving.drift import (
    DRIFT,
    MIN_DRIFT_ROWS,
    DriftError,
    SkewError,
    check_new_data,
    training_profile,
)
from tasks.serving.resolve import trained
from tasks.store.artifacts import sha256_file
from tasks.store.dataset import read_frame, read_index

HOUSING_TARGET = "MedHouseVal"


@pytest.fixture(scope="module")
def found(build_store, housing_table, tmp_path_factory):
    """The champion of a store trained once (one epoch of the course's MLP) on 3,000 real housing rows."""
    built = build_store(tmp_path_factory.mktemp("drift") / "artifacts", housing_table, HOUSING_TARGET,
                        "regression", [TrainParams("mlp30", epochs=1)])
    return trained(built.store)


@pytest.fixture(scope="module")
def train_rows(found) -> pd.DataFrame:
    """The rows training saw (the split stage's train rows), as the drift profile reads them."""
    raw, index = read_frame(found.raw.path), read_index(found.split.path)
    train = np.isin(raw.row_id, index.row_id[index.split == "train"])
    return pd.DataFrame(raw.X[train], columns=list(found.spec.features))


class Said:
    """What a check told the person running it, besides raising: warnings and notes, in order."""

    def __init__(self):
        self.warnings: list[str] = []
        self.notes: list[str] = []


def check(found, table: pd.DataFrame, folder: Path, strict: bool = False, name: str = "new.csv"):
    """Write ``table`` as a user would hand it in and run the checks; (features, identity, what was said)."""
    path = folder / name
    if name.endswith(".parquet"):
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False)
    said = Said()
    new = check_new_data(path, found, strict, said.warnings.append, said.notes.append)
    return new.X, new.identity, said


def features_named(message: str) -> set[str]:
    return {line.split("feature ")[1].split(":")[0] for line in message.splitlines() if "  - feature " in line}


# ---- what passes -----------------------------------------------------------------------------
def test_held_out_rows_pass_both_checks_and_come_back_in_training_s_column_order(found, housing_held_out,
                                                                                  tmp_path):
    """The baseline every drift test departs from: real rows of the same data, shuffled columns, the
    target and a split column along, are neither skew nor drift."""
    shuffled = housing_held_out.assign(split="test")[["Longitude", "split", HOUSING_TARGET,
                                                      *reversed(found.spec.features[:-1])]]
    X, identity, said = check(found, shuffled, tmp_path, strict=True)
    assert said.warnings == [] and said.notes == []
    assert X.shape == (1_000, 8)
    np.testing.assert_array_equal(X, housing_held_out[list(found.spec.features)].to_numpy(np.float64))
    assert identity == f"new.csv:{sha256_file(tmp_path / 'new.csv')}"


def test_the_training_profile_is_the_train_rows_own(found, train_rows):
    profile = training_profile(found)
    np.testing.assert_allclose(profile.mean, train_rows.mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(profile.std, train_rows.std(ddof=0).to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(profile.low, train_rows.min().to_numpy())
    np.testing.assert_array_equal(profile.high, train_rows.max().to_numpy())
    assert len(train_rows) < 3_000 * 0.6  # the train rows alone: valid and test rows stay out


# ---- skew ------------------------------------------------------------------------------------
def test_a_missing_and_an_extra_column_are_skew_named_each(found, housing_held_out, tmp_path):
    renamed = housing_held_out.rename(columns={"MedInc": "median_income"})
    with pytest.raises(SkewError) as refused:
        check(found, renamed, tmp_path)
    message = str(refused.value)
    assert message.startswith("the new data does not match the training data; nothing was scored:")
    assert "  - new.csv: missing column 'MedInc' (the model was trained on them)" in message
    assert "  - new.csv: column 'median_income' not in the training data (rename or drop them)" in message


def test_several_missing_columns_are_all_named(found, housing_held_out, tmp_path):
    with pytest.raises(SkewError, match=r"missing columns 'Latitude', 'Longitude' \(the model"):
        check(found, housing_held_out.drop(columns=["Latitude", "Longitude"]), tmp_path)


def test_an_extra_column_alone_is_skew(found, housing_held_out, tmp_path):
    with pytest.raises(SkewError) as refused:
        check(found, housing_held_out.assign(ZipCode=94_000), tmp_path)
    assert "column 'ZipCode' not in the training data" in str(refused.value)
    assert "missing" not in str(refused.value)


def test_text_in_a_feature_is_skew(found, housing_held_out, tmp_path):
    with_text = housing_held_out.astype({"HouseAge": object})
    with_text.loc[7, "HouseAge"] = "about forty"
    with pytest.raises(SkewError, match=r"new.csv: column 'HouseAge' holds text where numbers are expected"):
        check(found, with_text, tmp_path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_missing_or_infinite_value_is_skew_naming_its_column_and_row(found, housing_held_out, tmp_path, bad):
    holed = housing_held_out.copy()
    holed.loc[41, "AveRooms"] = bad
    with pytest.raises(SkewError, match=r"^new.parquet: 1 missing or infinite value\(s\), e.g. column 'AveRooms' at "
                                        r"row 42; the model cannot score them: nothing was scored$"):
        check(found, holed, tmp_path, name="new.parquet")


def test_a_few_rows_are_still_checked_for_skew(found, housing_held_out, tmp_path):
    with pytest.raises(SkewError, match="missing column 'AveOccup'"):
        check(found, housing_held_out.head(3).drop(columns=["AveOccup"]), tmp_path)


# ---- drift -----------------------------------------------------------------------------------
def test_a_shifted_mean_is_drift(found, housing_held_out, train_rows, tmp_path):
    shifted = housing_held_out.assign(MedInc=housing_held_out["MedInc"] + 1.5 * train_rows["MedInc"].std(ddof=0))
    _, _, said = check(found, shifted, tmp_path)
    message, = said.warnings
    assert message.startswith("new.csv drifted from the training data:")
    assert features_named(message) == {"MedInc"}
    assert "feature MedInc: mean" in message
    assert "training standard deviations from training's" in message and f"(tolerance {DRIFT.mean_shift})" in message
    shift = float(message.split(" training standard deviations")[0].split(" is ")[-1])
    assert 1.3 < shift < 1.7


def test_a_narrower_spread_is_drift(found, housing_held_out, train_rows, tmp_path):
    """Latitude squeezed to a fifth of its spread around training's mean: same mean, inside the range."""
    centre = train_rows["Latitude"].mean()
    squeezed = housing_held_out.assign(Latitude=centre + 0.2 * (housing_held_out["Latitude"] - centre))
    _, _, said = check(found, squeezed, tmp_path)
    message, = said.warnings
    assert features_named(message) == {"Latitude"}
    line, = [line for line in message.splitlines() if "feature Latitude" in line]
    assert line.startswith("  - feature Latitude: spread is 0.2") and "x training's (tolerance 0.5..2.0)" in line


def test_values_outside_the_training_range_are_drift(found, housing_held_out, train_rows, tmp_path):
    """One row in ten just past either end of Longitude's training range: mean and spread stay inside."""
    low, high = train_rows["Longitude"].min(), train_rows["Longitude"].max()
    beyond = housing_held_out.copy()
    beyond.loc[0:99:2, "Longitude"] = low - 0.01
    beyond.loc[1:99:2, "Longitude"] = high + 0.01
    _, _, said = check(found, beyond, tmp_path)
    message, = said.warnings
    assert features_named(message) == {"Longitude"}
    outside = ((beyond["Longitude"] < low) | (beyond["Longitude"] > high)).mean()  # the 100, and any already out
    assert 0.10 <= outside < 0.11
    assert (f"  - feature Longitude: {outside:.1%} of its values lie outside the training range (tolerance 2%)"
            in message)


def test_strict_makes_drift_a_failure(found, housing_held_out, train_rows, tmp_path):
    shifted = housing_held_out.assign(MedInc=housing_held_out["MedInc"] + 1.5 * train_rows["MedInc"].std(ddof=0))
    with pytest.raises(DriftError) as refused:
        check(found, shifted, tmp_path, strict=True)
    assert "feature MedInc: mean" in str(refused.value)
    assert str(refused.value).endswith("(--strict: nothing was scored)")
    X, _, said = check(found, shifted, tmp_path, strict=False)  # the same rows, scored with a warning
    assert len(said.warnings) == 1 and len(X) == len(shifted)


def test_drift_is_not_judged_on_fewer_than_the_least_rows(found, housing_held_out, train_rows, tmp_path):
    """Below MIN_DRIFT_ROWS a note says so, even with strict; at MIN_DRIFT_ROWS the same drift fails."""
    shifted = housing_held_out.assign(MedInc=housing_held_out["MedInc"] + 3 * train_rows["MedInc"].std(ddof=0))
    X, _, said = check(found, shifted.head(MIN_DRIFT_ROWS - 1), tmp_path, strict=True)
    assert len(X) == MIN_DRIFT_ROWS - 1 and said.warnings == []
    assert said.notes == [f"new.csv: {MIN_DRIFT_ROWS - 1} rows, too few to judge drift (fewer than "
                          f"{MIN_DRIFT_ROWS}); skew checked"]
    with pytest.raises(DriftError, match="feature MedInc: mean"):
        check(found, shifted.head(MIN_DRIFT_ROWS), tmp_path, strict=True)
