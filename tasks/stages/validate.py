"""Validation with Great Expectations at three points: raw, after the split, after scaling.

Wide data is never checked one column at a time. Each check runs on a small frame
that numpy computes in one vectorised pass: a *feature profile* (one row per feature:
dtype kind, nulls, non-finite count, min, max, allowed range; 784 rows for the
images), a *target* frame, a *split index* and its *sizes* and *class balance*.
Great Expectations then runs a handful of expectations per frame, and a failure names
the expectation, the column and example values (the frame's index names the feature,
row, split or class). The suites run in ``tasks.checks.gx`` (in a helper process under the CLI).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tasks.checks.findings import finding
from tasks.checks.gx import Check, Failure, expect, run_suites
from tasks.core.errors import InputError
from tasks.stages.categories import MAX_CATEGORIES
from tasks.stages.profiles import category_profile, class_balance, class_set, feature_profile
from tasks.stages.scale import checked_moments, feature_names
from tasks.store.dataset import SPLITS, DatasetSpec, Frame, SplitIndex

MIN_ROWS = 20
MEAN_TOLERANCE = 1e-3
STD_TOLERANCE = 1e-2


class CheckFailed(RuntimeError):
    """A validation point's expectations failed. The message says each finding in plain words
    (column, rows, values); ``failures`` keep Great Expectations' terms, as the report does."""

    def __init__(self, point: str, dataset: str, failures: list[Failure], findings: list[str],
                 report: Report):
        self.point, self.dataset, self.failures, self.report = point, dataset, failures, report
        lines = "\n".join(f"  - {f}" for f in findings)
        super().__init__(f"{dataset}: the data failed {point} validation ({len(failures)} check"
                         f"{'s' if len(failures) != 1 else ''}):\n{lines}")


class ValidationFailed(CheckFailed, InputError):
    """The data broke an expectation (raw, after the split): the input's fault, exit 2."""


class ScalingFault(CheckFailed):
    """The scaled data broke an expectation: the scaling stage's fault, exit 1 with its traceback."""


@dataclass
class Report:
    point: str
    dataset: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    pages: list[str] = field(default_factory=list)  # Great Expectations' Data Docs page of each check
    warnings: list[str] = field(default_factory=list)  # findings that did not stop the run, in words

    def table(self):
        import pyarrow as pa
        return pa.Table.from_pylist(self.checks or [{"frame": "", "expectation": "", "column": "",
                                                     "severity": "critical", "success": True, "unexpected": 0}])


def run_checks(point: str, data: Frame | SplitIndex, checks: list[Check],
               failed: type[CheckFailed] = ValidationFailed, site: str | None = None) -> Report:
    """Run every check; raise ``failed`` naming every finding, else return a report.
    ``site``: the run's Data Docs folder, which gets Great Expectations' pages of these results."""
    outcome, seconds = run_suites(point, checks, site)
    warnings = [line for warning in outcome.warnings for line in finding(warning, data)]
    report = Report(point, data.spec.name, outcome.rows, seconds, list(outcome.pages), warnings)
    if outcome.failures:
        findings = [line for failure in outcome.failures for line in finding(failure, data)]
        raise failed(point, data.spec.name, outcome.failures, findings, report)
    return report


def raw_checks(frame: Frame) -> list[Check]:
    spec = frame.spec
    target = pd.DataFrame({spec.target: frame.y}, index=pd.Index(frame.row_id, name="row"))
    rows = expect("ExpectTableRowCountToEqual", value=spec.rows) if spec.rows \
        else expect("ExpectTableRowCountToBeBetween", min_value=MIN_ROWS)
    most_missing = len(frame) - 1 if spec.missing == "impute" else 0
    checks = [Check("target", target, [rows, *target_expectations(spec, class_set(spec, frame.y))], "row"),
              Check("features", feature_profile(frame), feature_expectations(spec, most_missing), "feature")]
    if spec.categorical:
        checks.append(category_check(category_profile(frame), most_missing))
    return checks


def category_check(profile: pd.DataFrame, most_missing: int) -> Check:
    """What each categorical column must show (``profile``: its missing cells and distinct values)."""
    return Check("categories", profile, [
        expect("ExpectColumnValuesToBeBetween", column="nulls", max_value=most_missing),
        expect("ExpectColumnValuesToBeBetween", column="distinct", max_value=MAX_CATEGORIES),
        expect("ExpectColumnValuesToBeBetween", column="distinct", min_value=2, severity="warning")], "feature")


def target_expectations(spec: DatasetSpec, labels: list[int]) -> list:
    """What the target's values must be (a frame of one row per data row, or of its suspects)."""
    on_target = [expect("ExpectColumnValuesToNotBeNull", column=spec.target)]
    if spec.task == "classification":
        on_target.append(expect("ExpectColumnValuesToBeInSet", column=spec.target, value_set=labels))
    else:
        on_target.append(expect("ExpectColumnValuesToBeInTypeList", column=spec.target,
                                type_list=["float64", "float32", "int64", "int32"]))
        if spec.target_range:
            on_target.append(expect("ExpectColumnValuesToBeBetween", column=spec.target,
                                    min_value=spec.target_range[0], max_value=spec.target_range[1]))
    return on_target


def feature_expectations(spec: DatasetSpec, most_missing: int) -> list:
    """What the feature profile must show. Missing values: refused, or (--missing impute) allowed
    where the column has any value at all (``most_missing``: the rows less one)."""
    on_features = [
        expect("ExpectTableRowCountToEqual", value=int(np.prod(spec.feature_shape))),
        expect("ExpectColumnValuesToBeInSet", column="kind", value_set=["u", "i", "f"]),
        expect("ExpectColumnValuesToBeBetween", column="nulls", max_value=most_missing),
        expect("ExpectColumnValuesToBeBetween", column="nonfinite", max_value=0),
        expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A="min", column_B="lower", or_equal=True),
        expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A="upper", column_B="max", or_equal=True),
        # kept, as scikit-learn's StandardScaler keeps one (scale 1): said and recorded, not refused;
        # but a table where no feature varies at all is refused
        expect("ExpectColumnValuesToBeInSet", column="constant", value_set=[False], severity="warning"),
    ]
    if not spec.categorical:  # (a category column varies, or is refused below)
        on_features.append(expect("ExpectColumnDistinctValuesToContainSet", column="constant", value_set=[False]))
    return on_features


def split_checks(index: SplitIndex, raw_rows: int) -> list[Check]:
    spec = index.spec
    table = pd.DataFrame({"row_id": index.row_id, "split": index.split, "target": index.y})
    on_index = [expect("ExpectTableRowCountToEqual", value=raw_rows),
                expect("ExpectColumnValuesToBeUnique", column="row_id"),
                expect("ExpectColumnValuesToBeInSet", column="split", value_set=list(SPLITS))]
    sizes = table["split"].value_counts().reindex(list(SPLITS), fill_value=0).to_frame("rows")
    expected = spec.split.sizes or {}
    sizes["expected"] = [expected.get(s, n) for s, n in sizes["rows"].items()]
    on_sizes = [expect("ExpectColumnValuesToBeBetween", column="rows", min_value=1),
                expect("ExpectColumnPairValuesToBeEqual", column_A="rows", column_B="expected")]
    checks = [Check("split index", table, on_index, "row"), Check("split sizes", sizes, on_sizes, "split")]
    if spec.task == "classification":
        checks.append(Check("class balance", class_balance(table), [
            expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A="tolerance", column_B="gap", or_equal=True)],
            "split/class"))
    return checks


def scaled_checks(scaled: Frame) -> list[Check]:
    n_train = int(np.count_nonzero(scaled.split == "train"))
    mean, std, nonfinite = checked_moments(scaled.X, n_train)  # train rows come first
    return scaled_profile_checks(scaled.spec, feature_names(scaled), mean, std, nonfinite)


def scaled_profile_checks(spec: DatasetSpec, names: list[str], mean: np.ndarray, std: np.ndarray,
                          nonfinite: np.ndarray) -> list[Check]:
    """The scaled point's expectations on the train rows' moments and every split's non-finite count."""
    one_hot = np.isin(names, spec.encoded)  # 0 or 1, not standardised
    mean, std = np.where(one_hot, 0.0, mean), np.where(one_hot, 1.0, std)
    profile = pd.DataFrame({
        "mean": mean,
        # a constant train column scales to all zeros (std 0); any other must have std 1
        "std_gap": np.minimum(np.abs(std - 1.0), np.abs(std)),
        "nonfinite": nonfinite,
    }, index=pd.Index(names, name="feature"))
    return [Check("scaled features", profile, [
        expect("ExpectColumnValuesToBeBetween", column="mean", min_value=-MEAN_TOLERANCE, max_value=MEAN_TOLERANCE),
        expect("ExpectColumnValuesToBeBetween", column="std_gap", max_value=STD_TOLERANCE),
        expect("ExpectColumnValuesToBeBetween", column="nonfinite", max_value=0)], "feature")]


def validate_raw(frame: Frame, site: str | None = None) -> Report:
    return run_checks("raw", frame, raw_checks(frame), site=site)


def validate_split(index: SplitIndex, raw_rows: int, site: str | None = None) -> Report:
    return run_checks("split", index, split_checks(index, raw_rows), site=site)


def validate_scaled(scaled: Frame, site: str | None = None) -> Report:
    return run_checks("scaled", scaled, scaled_checks(scaled), ScalingFault, site)  # the scaler's fault
