"""Findings: the sentences a person reads for real validation failures on altered real rows."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.checks.findings import finding
from tasks.checks.gx import Check, Failure, expect, run_suites_here
from tasks.stages.profiles import feature_profile
from tasks.stages.validate import raw_checks
from tasks.store.dataset import Frame

FIRST_ROW = 1_000  # the housing slice starts here: a finding names raw rows (1-based), not positions


@pytest.fixture(scope="module")
def housing_rows(housing) -> Frame:
    """200 real housing districts, raw rows 1,000 to 1,199, as a table of any length may be."""
    rows = housing.take(np.r_[FIRST_ROW:FIRST_ROW + 200])
    rows.spec = rows.spec.replace(rows=None)
    return rows


@pytest.fixture(scope="module")
def fashion_rows(fashion) -> Frame:
    """300 real Fashion-MNIST images, raw rows 0 to 299, their pixels widened to int16."""
    rows = fashion.take(np.r_[0:300])
    rows.X = rows.X.astype(np.int16)
    rows.spec = rows.spec.replace(rows=None)
    return rows


def _copy(frame: Frame) -> Frame:
    return Frame(frame.spec, frame.X.copy(), frame.y.copy(), frame.row_id.copy())


def _column(frame: Frame, name: str) -> int:
    return list(frame.spec.features).index(name)


def _failures(frame: Frame, check: str) -> list[Failure]:
    """Great Expectations' failures of one of the raw checks, run on its profile frame."""
    checks = {c.name: c for c in raw_checks(frame)}
    return run_suites_here("raw", [checks[check]]).failures


def _warnings(frame: Frame, check: str) -> list[Failure]:
    """The failed expectations of one raw check that only warn (and the critical ones: none)."""
    checks = {c.name: c for c in raw_checks(frame)}
    outcome = run_suites_here("raw", [checks[check]])
    assert outcome.failures == []
    return outcome.warnings


def test_missing_values_name_the_column_rows_and_what_to_do(housing_rows):
    data = _copy(housing_rows)
    data.X[[5, 40], _column(data, "Population")] = np.nan

    failure, = _failures(data, "features")

    assert (failure.column, failure.index) == ("nulls", ["Population"])
    assert finding(failure, data) == ["Population has 2 missing values at rows 1006, 1041; fill or drop them"]


def test_missing_values_in_many_columns_name_five_and_count_the_rest(housing_rows):
    data = _copy(housing_rows)
    data.X[9, :7] = np.nan  # every feature but the last

    failure, = _failures(data, "features")

    assert finding(failure, data) == [f"{name} has 1 missing value at row 1010; fill or drop them"
                                      for name in data.spec.features[:5]] + ["... and 2 more columns"]


@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")  # inf + -inf in the profile
def test_an_infinity_names_the_column_rows_and_values(housing_rows):
    data = _copy(housing_rows)
    data.X[3, _column(data, "MedInc")] = np.inf
    data.X[7, _column(data, "MedInc")] = -np.inf

    failure, = _failures(data, "features")

    assert (failure.column, failure.index) == ("nonfinite", ["MedInc"])
    assert finding(failure, data) == ["MedInc holds infinity at rows 1004, 1008: inf, -inf"]


def test_a_constant_column_says_its_value_and_that_it_is_kept(housing_rows):
    data = _copy(housing_rows)
    data.X[:, _column(data, "HouseAge")] = 21.0

    failure, = _warnings(data, "features")

    assert (failure.column, failure.index) == ("constant", ["HouseAge"])
    assert finding(failure, data) == ["HouseAge is 21.0 in every row: kept, scaled by 1 (as scikit-learn's "
                                      "StandardScaler does), though a column with one value gives a model nothing "
                                      "to learn from"]


def test_a_table_where_no_feature_varies_is_refused(housing_rows):
    data = _copy(housing_rows)
    data.X[:] = data.X[:1]

    failure, = _failures(data, "features")

    assert finding(failure, data) == ["no feature varies: every feature column holds one value in every row (MedInc "
                                      f"is {data.X[0, 0]:g}, ...); a model has nothing to learn from"]


def test_values_below_the_known_range_name_the_range_rows_and_values(housing_rows):
    data = _copy(housing_rows)
    data.X[[10, 11], _column(data, "AveOccup")] = [0.25, 0.1]

    failure, = _failures(data, "features")

    assert (failure.column, failure.index) == ("min", ["AveOccup"])
    assert finding(failure, data) == ["AveOccup is below its known range [0.5, 1300] at rows 1011, 1012: 0.25, 0.1"]


def test_many_values_above_the_known_range_show_five_and_count_the_rest(housing_rows):
    data = _copy(housing_rows)
    data.X[0:7, _column(data, "Latitude")] = 43.0 + np.arange(7)

    failure, = _failures(data, "features")

    assert (failure.column, failure.index) == ("upper", ["Latitude"])
    assert finding(failure, data) == ["Latitude is above its known range [32.5, 42] at rows 1001, 1002, 1003, 1004, "
                                      "1005 and 2 more: 43.0, 44.0, 45.0, 46.0, 47.0 and 2 more"]


def test_an_image_pixel_out_of_range_is_named_as_a_pixel_of_the_image(fashion_rows):
    data = _copy(fashion_rows)
    data.X[4, 0] = -3
    data.X[[20, 250], 783] = [256, 300]

    below, above = _failures(data, "features")

    assert (below.column, below.index, above.column, above.index) == ("min", ["image[0]"], "upper", ["image[783]"])
    assert finding(below, data) == ["pixel 0 of image is below its known range [0, 255] at row 5: -3"]
    assert finding(above, data) == ["pixel 783 of image is above its known range [0, 255] at rows 21, 251: 256, 300"]


def test_a_missing_pixel_is_named_as_a_pixel_of_the_image(fashion_rows):
    data = _copy(fashion_rows)
    data.X = data.X.astype(np.float32)
    data.X[99, 412] = np.nan

    failure, = _failures(data, "features")

    assert finding(failure, data) == ["pixel 412 of image has 1 missing value at row 100; fill or drop them"]


def test_a_target_outside_its_range_and_a_partial_table_are_said_in_words(housing, housing_rows):
    data = _copy(housing_rows)
    data.y[2] = 7.5
    data.spec = housing.spec  # the whole dataset's row count: 200 rows are not it

    row_count, target_range = _failures(data, "target")

    assert finding(row_count, data) == ["california-housing has 200 rows where the original has 20640: "
                                        "it is not the whole dataset"]
    assert finding(target_range, data) == ["the target 'MedHouseVal' is outside its known range [0.14999, 5.00001] "
                                           "at row 1003: 7.5"]


def test_a_failure_without_a_sentence_of_its_own_falls_back_to_great_expectations_line(housing_rows):
    check = Check("features", feature_profile(housing_rows),
                  [expect("ExpectColumnMeanToBeBetween", column="max", max_value=1.0)], "feature")

    failure, = run_suites_here("raw", [check]).failures

    assert failure.expectation == "expect_column_mean_to_be_between"
    assert finding(failure, housing_rows) == [failure.line]
    assert failure.line.startswith("expect_column_mean_to_be_between {'max_value': 1.0} on column 'max' of the "
                                   "features frame: observed ")
