"""Validation failures in words a person reads once: the column, the rows, the values, what to do.

Great Expectations runs on small profile frames (one row per feature, per split, per class),
so its result says *which feature* broke *which expectation*. A finding goes back to the data
itself for the rows and values, and says it without the expectation's name: "Population has
a missing value at row 4". The Great Expectations result stays in the validation report.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tasks.checks.gx import Failure
from tasks.core.errors import rows_text, values_text
from tasks.store.dataset import Frame, SplitIndex


def finding(failure: Failure, data: Frame | SplitIndex) -> list[str]:
    """The sentences for one failed expectation (one per feature where it names features)."""
    if (failure.check, failure.expectation) == ("features", "expect_column_distinct_values_to_contain_set"):
        return [_nothing_varies(data)]
    if failure.check in ("features", "categories") and \
            failure.column in ("nulls", "nonfinite", "min", "upper", "constant", "distinct"):
        names = failure.index[:5]
        said = _category_finding if failure.check == "categories" else _feature_finding
        return [said(failure, name, data) for name in names] + \
            ([f"... and {failure.count - len(names)} more columns"] if failure.count > len(names) else [])
    said = _SAID.get((failure.check, failure.expectation))
    return [said(failure, data) if said else failure.line]


def _column(data: Frame, name: str) -> tuple[np.ndarray, str]:
    names = list(data.spec.features)
    if name in names:
        return data.X[:, names.index(name)], name
    pixel = int(name.split("[")[1].rstrip("]"))  # an image's flat feature: image[123]
    return data.X[:, pixel], f"pixel {pixel} of {data.spec.features[0]}"


def _category_finding(failure: Failure, name: str, data: Frame) -> str:
    values = data.text[:, list(data.spec.categorical).index(name)]
    missing = values == None  # noqa: E711 (elementwise)
    if failure.column == "nulls":
        return _missing_finding(name, missing, data, _total(data, name, "nulls", missing.sum()))
    distinct = _total(data, name, "distinct", len(set(values[~missing])))
    if failure.kwargs.get("max_value") is not None:
        most = int(failure.kwargs["max_value"])  # a streamed table's count stops past it
        counted = f"over {most:,}" if hasattr(data, "totals") else f"{distinct:,}"
        return (f"category column {name!r} holds {counted} distinct values (a category column may hold "
                f"{most:,}): an identifier rather than a category; drop it, or use it as "
                f"numbers with --numeric {name}")
    return (f"{name} is {values_text(values[~missing][:1])} in every row: kept (one one-hot column), though a "
            "column with one value gives a model nothing to learn from")


def _missing_finding(label: str, bad: np.ndarray, data: Frame, total: int) -> str:
    if data.spec.missing == "impute":  # it fails only where nothing is left to learn a fill from
        return f"{label} is missing in every row: there is nothing to impute it from; drop the column"
    return (f"{label} has {_count(total, 'missing value')} at {_rows(data.row_id, bad, total)}; fill or drop them"
            + (", or pass --missing impute" if data.spec.split.sizes is None else ""))  # a user's table


def _feature_finding(failure: Failure, name: str, data: Frame) -> str:
    column = failure.column
    values, label = _column(data, name)
    rows = data.row_id
    if column == "nulls":
        return _missing_finding(label, np.isnan(values), data, _total(data, name, column, np.isnan(values).sum()))
    if column == "nonfinite":
        bad = np.isinf(values)
        where = _rows(rows, bad, _total(data, name, column, bad.sum()))
        return f"{label} holds infinity at {where}: {values_text(values[bad])}"
    if column == "constant":
        return (f"{label} is {values_text(values[:1])} in every row: kept, scaled by 1 (as scikit-learn's "
                "StandardScaler does), though a column with one value gives a model nothing to learn from")
    lower, upper = data.spec.feature_range(name)
    bad = (values < lower) if column == "min" else (values > upper)
    side = "below" if column == "min" else "above"
    where = _rows(rows, bad, _total(data, name, column, bad.sum()))
    return f"{label} is {side} its known range [{lower:g}, {upper:g}] at {where}: {values_text(values[bad])}"


def _nothing_varies(data: Frame) -> str:
    first, = data.spec.features[:1]
    values, label = _column(data, first)
    return (f"no feature varies: every feature column holds one value in every row ({label} is "
            f"{values_text(values[:1])}, ...); a model has nothing to learn from")


def _total(data, column: str, kind: str, counted: int) -> int:
    """How many rows break it: as ``counted`` in ``data``, or, for a table validated a row group at
    a time (``data`` then holds a few example rows), the count its profile reduced."""
    return int(getattr(data, "totals", {}).get((column, kind), counted))


def _rows(rows: np.ndarray, bad: np.ndarray, total: int) -> str:
    return rows_text(rows[bad][:5], total)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _labels(data) -> str:
    classes = data.spec.classes
    return f"{min(classes)}..{max(classes)}" if classes else "whole numbers 0..K-1"


def _row_count(f: Failure, d) -> str:
    if "value" in f.kwargs:
        return (f"{d.spec.name} has {f.observed} rows where the original has {f.kwargs['value']}: "
                "it is not the whole dataset")
    rows = f"{f.observed} row{'s' if f.observed != 1 else ''}"
    return (f"the table has {rows}; at least {int(f.kwargs['min_value'])} are needed to split it into train, "
            "valid and test")


def _target(kind: str):
    def say(f: Failure, d) -> str:
        target, rows = d.spec.target, rows_text(f.index[:5], _total(d, d.spec.target, kind, f.count))
        if kind == "null":
            return f"the target {target!r} is empty at {rows}; fill or drop those rows"
        if kind == "set":
            return (f"the label column {target!r} holds {values_text(sorted(set(f.values)))} at {rows}; "
                    f"labels must be {_labels(d)}")
        if kind == "type":
            return f"the target {target!r} is not numeric"
        low, high = f.kwargs.get("min_value"), f.kwargs.get("max_value")
        return (f"the target {target!r} is outside its known range [{low:g}, {high:g}] at {rows}: "
                f"{values_text(f.values)}")
    return say


def _features(f: Failure, d) -> str:
    if f.expectation == "expect_table_row_count_to_equal":
        return f"the data has {f.observed} feature values a row where {d.spec.name} has {f.kwargs['value']}"
    return f"feature column(s) {values_text(f.index)} are not numeric"


def _split(kind: str):
    def say(f: Failure, d) -> str:
        if kind == "rows":
            return f"the split index has {f.observed} rows for {f.kwargs['value']} raw rows"
        if kind == "unique":
            return f"rows {values_text(sorted(set(f.values)))} are in more than one split"
        if kind == "labels":
            return f"split labels {values_text(sorted(set(map(str, f.values))))}; use only train, valid and test"
        if kind == "empty":
            return (f"the {' and '.join(map(str, f.index))} split{'s are' if len(f.index) > 1 else ' is'} empty: "
                    "a model needs rows to train on, to choose on (valid) and to be scored on (test)")
        if kind == "sizes":
            return "; ".join(f"the {split} split has {rows} rows where {d.spec.name}'s split has {expected}"
                             for split, (rows, expected) in zip(f.index, f.values))
        return "; ".join(f"class {at.split('/')[1]} strays from its overall share in the {at.split('/')[0]} split "
                         f"by {gap:.1%} (allowed {tolerance:.1%})" for at, (tolerance, gap) in zip(f.index, f.values))
    return say


def _scaled(f: Failure, d) -> str:
    what = {"mean": "train mean is not 0", "std_gap": "train standard deviation is not 1",
            "nonfinite": "values are not finite"}.get(f.column, f.column)
    return f"after scaling, the {what} for {values_text(f.index)}: a fault of the scaling stage, not of the data"


_SAID: dict[tuple[str, str], Callable[[Failure, Any], str]] = {
    ("target", "expect_table_row_count_to_equal"): _row_count,
    ("target", "expect_table_row_count_to_be_between"): _row_count,
    ("target", "expect_column_values_to_not_be_null"): _target("null"),
    ("target", "expect_column_values_to_be_in_set"): _target("set"),
    ("target", "expect_column_values_to_be_in_type_list"): _target("type"),
    ("target", "expect_column_values_to_be_between"): _target("range"),
    ("features", "expect_table_row_count_to_equal"): _features,
    ("features", "expect_column_values_to_be_in_set"): _features,
    ("split index", "expect_table_row_count_to_equal"): _split("rows"),
    # a table validated a row group at a time (tasks/stages/validate_stream.py): its counts as one-row frames
    ("size", "expect_column_values_to_be_between"): lambda f, d: _row_count(f._replace(
        observed=f.values[0], kwargs={"value": int(f.kwargs["max_value"])} if f.kwargs.get("max_value") else f.kwargs),
        d),
    ("split rows", "expect_column_values_to_be_between"):
        lambda f, d: f"the split index has {f.values[0]} rows for {int(f.kwargs['min_value'])} raw rows",
    ("split index", "expect_column_values_to_be_unique"): _split("unique"),
    ("split index", "expect_column_values_to_be_in_set"): _split("labels"),
    ("split sizes", "expect_column_values_to_be_between"): _split("empty"),
    ("split sizes", "expect_column_pair_values_to_be_equal"): _split("sizes"),
    ("class balance", "expect_column_pair_values_a_to_be_greater_than_b"): _split("balance"),
    ("scaled features", "expect_column_values_to_be_between"): _scaled,
}
