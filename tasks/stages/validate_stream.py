"""Validation of a table larger than memory: the same expectations, on profiles reduced over
row groups.

One scan of an artifact reduces what each validation point asks: for the raw rows, each
feature's missing and infinite cells and its finite range, and the target's suspect rows (empty,
a negative label, outside a known range); for the split index, the rows of each split and class;
for the scaled rows, the train rows' moments. Great Expectations runs the in-memory points'
expectations on those profiles. A finding names the rows by their place in the whole table: the
scan keeps the first few rows of each kind of fault per column (with their values) and the
count of all of them, and the findings say both (``Suspects.totals``), in the in-memory words.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa

from tasks.checks.gx import Check, expect
from tasks.stages.fan_out import Span, rows_in, scanned, table_rows
from tasks.stages.profiles import class_balance_of, profile_frame
from tasks.stages.raw_profile import EXAMPLES, Examples, RawProfile, raw_part
from tasks.stages.streamed_stats import Moments, rows_of
from tasks.stages.validate import (
    MIN_ROWS,
    Report,
    ScalingFault,
    category_check,
    feature_expectations,
    run_checks,
    scaled_profile_checks,
    target_expectations,
)
from tasks.store.dataset import SPLITS, Frame, SplitIndex, spec_of
from tasks.store.sources import read_schema


@dataclasses.dataclass
class Suspects(Frame):
    """A few rows of a big table that broke something, and how many rows broke it in all
    (``totals``: (column, kind) -> rows); findings read both (tasks/checks/findings.py)."""

    totals: dict = dataclasses.field(default_factory=dict)


def validate_raw_streamed(path: str, site: str | None = None, batch_rows: int | None = None,
                          parts: int = 1) -> Report:
    """The raw validation point over the raw artifact at ``path``, a row group at a time, scanned
    in ``parts`` (fan_out.py)."""
    spec = spec_of(read_schema(path))
    names, bounds = list(spec.features), [spec.feature_range(c) for c in spec.features]
    raw = RawProfile.empty(len(names), len(spec.categorical))
    for part in scanned(raw_part, table_rows(path), parts, path, spec, batch_rows, batch_rows=batch_rows):
        raw = raw.merged(part)
    n = raw.rows
    labels = list(spec.classes) if spec.classes is not None else list(range(max(raw.top, 0) + 1))
    profile = profile_frame(spec, names, "f", raw.nan, raw.inf, raw.lo, raw.hi, n)
    neutral = np.clip(np.where(np.isfinite(raw.lo), raw.lo, 0.0), [b[0] for b in bounds], [b[1] for b in bounds])
    suspects = _suspects(spec, names, raw.examples, raw.good, neutral, raw.words)
    target = pd.DataFrame({spec.target: suspects.y}, index=pd.Index(suspects.row_id, name="row"))
    most_missing = n - 1 if spec.missing == "impute" else 0
    size = expect("ExpectColumnValuesToBeBetween", column="rows", min_value=spec.rows, max_value=spec.rows) \
        if spec.rows else expect("ExpectColumnValuesToBeBetween", column="rows", min_value=MIN_ROWS)
    checks = [Check("size", pd.DataFrame({"rows": [n]}, index=pd.Index(["table"], name="table")), [size], "table"),
              Check("target", target, target_expectations(spec, labels), "row"),
              Check("features", profile, feature_expectations(spec, most_missing), "feature")]
    if spec.categorical:
        nulls = [raw.examples.counts.get((column, "nulls"), 0) for column in spec.categorical]
        checks.append(category_check(pd.DataFrame({"nulls": nulls, "distinct": [len(w) for w in raw.words]},
                                                  index=pd.Index(spec.categorical, name="feature")), most_missing))
    return run_checks("raw", suspects, checks, site=site)


def _suspects(spec, names: list[str], examples: Examples, good: tuple, neutral: np.ndarray,
              words: list[set]) -> Suspects:
    """The example rows as a frame: each row holds its fault in its own column and, elsewhere,
    values that break nothing (a target that passes, each column's smallest finite value within
    its range, each categorical column's first category), so a finding that looks at one column
    sees only that column's examples. A row that breaks nothing leads (the target check needs a
    row, and a constant column's finding shows its value). The totals hold each categorical
    column's distinct values, as counted."""
    rows = [(good[0], None, None)] + [(r, v, column) for (column, _), found in examples.rows.items() for r, v in found]
    X = np.tile(neutral, (len(rows), 1))
    y = np.full(len(rows), good[1], dtype=np.asarray(good[1]).dtype)
    text = np.empty((len(rows), len(words)), dtype=object)
    text[:] = [min(w, default=None) for w in words]
    for i, (_, value, column) in enumerate(rows):
        if column == spec.target:
            y[i] = value
        elif column in spec.categorical:
            text[i, spec.categorical.index(column)] = value
        elif column is not None:
            X[i, names.index(column)] = value
    row_id = np.array([r for r, *_ in rows], dtype=np.int64)
    totals = {**examples.counts, **{(c, "distinct"): len(w) for c, w in zip(spec.categorical, words)}}
    return Suspects(spec, X, y, row_id, text=text if spec.categorical else None, totals=totals)


def validate_split_streamed(index_path: str, raw_rows: int, site: str | None = None,
                            batch_rows: int | None = None, parts: int = 1) -> Report:
    """The split validation point over a split index, a row group at a time: as many rows as the
    raw table, each once (row numbers rising through the file), labelled train, valid or test;
    each split's size and, for a classifier, its class balance; scanned in ``parts`` (fan_out.py)."""
    spec = spec_of(read_schema(index_path))
    counts, n, last, repeated, unknown = defaultdict(int), 0, -1, [], []
    for part in scanned(_split_part, table_rows(index_path), parts, index_path, spec.target,
                        spec.task == "classification", batch_rows, batch_rows=batch_rows):
        if part.rows and n and part.first <= last:  # the part's first row repeats (or goes back past) the last part's
            repeated.append(part.first)
        repeated = (repeated + part.repeated)[:EXAMPLES]
        unknown = (unknown + part.unknown)[:EXAMPLES]
        for key, rows in part.counts.items():
            counts[key] += rows
        n, last = n + part.rows, part.last if part.rows else last
    # the rows that broke something, each repeated row twice (so "unique" sees it), after one good row
    suspects = pd.DataFrame({"row_id": [-1, *repeated, *repeated, *([-2 - i for i in range(len(unknown))])],
                             "split": ["train", *["train"] * 2 * len(repeated), *map(str, unknown)]})
    pairs = pd.Series(counts, dtype=np.int64)
    sizes = pairs.groupby(level=0).sum().reindex(list(SPLITS), fill_value=0).to_frame("rows").rename_axis("split")
    expected = spec.split.sizes or {}
    sizes["expected"] = [expected.get(s, r) for s, r in sizes["rows"].items()]
    checks = [Check("split index", suspects, [
                  expect("ExpectColumnValuesToBeUnique", column="row_id"),
                  expect("ExpectColumnValuesToBeInSet", column="split", value_set=list(SPLITS))], "row"),
              Check("split rows", pd.DataFrame({"rows": [n]}, index=pd.Index(["index"], name="table")), [
                  expect("ExpectColumnValuesToBeBetween", column="rows", min_value=raw_rows, max_value=raw_rows)],
                  "table"),
              Check("split sizes", sizes, [
                  expect("ExpectColumnValuesToBeBetween", column="rows", min_value=1),
                  expect("ExpectColumnPairValuesToBeEqual", column_A="rows", column_B="expected")], "split")]
    if spec.task == "classification":
        checks.append(Check("class balance", class_balance_of(pairs), [
            expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A="tolerance", column_B="gap", or_equal=True)],
            "split/class"))
    empty = SplitIndex(spec, np.zeros(0), np.zeros(0, np.int64), np.zeros(0, object))
    return run_checks("split", empty, checks, site=site)


@dataclasses.dataclass
class _SplitProfile:
    """A span of a split index: rows per (split, class), the first and last row ids, and the first
    rows that repeat or go back (``repeated``) and unknown split names."""

    counts: dict
    rows: int
    first: int
    last: int
    repeated: list
    unknown: list


def _split_part(span: Span, path: str, target: str, classes: bool, batch_rows: int | None) -> _SplitProfile:
    counts, n, first, last, repeated, unknown = defaultdict(int), 0, -1, -1, [], []
    for rows in rows_in(path, ["row_id", "split", target], span, batch_rows):
        row_id = rows.column(0).to_numpy()
        steps = np.diff(np.concatenate([[last], row_id]))
        if n == 0 and len(row_id):
            first = int(row_id[0])
            steps[0] = steps[0] if span[0] == 0 else 1  # a later span's first row: the merge checks it
        n += len(row_id)
        repeated.extend(row_id[steps <= 0][:EXAMPLES - len(repeated)])
        last = int(row_id[-1]) if len(row_id) else last
        labels = rows.column(2) if classes else pa.nulls(len(row_id), pa.int64())
        keys = pa.table({"split": rows.column(1), "y": labels})
        grouped = keys.group_by(["split", "y"]).aggregate([([], "count_all")])
        for row in grouped.to_pylist():
            split, label = row["split"], row["y"]
            counts[(split, 0 if label is None else label)] += row["count_all"]
            if split not in SPLITS and len(unknown) < EXAMPLES:
                unknown.append(split)
    return _SplitProfile(dict(counts), n, first, last, repeated, unknown)


def validate_scaled_streamed(path: str, site: str | None = None, batch_rows: int | None = None,
                             parts: int = 1) -> Report:
    """The scaled validation point: the train rows' mean 0 and std 1 (moments merged over row
    groups), and no value that is not finite, in any split; scanned in ``parts`` (fan_out.py)."""
    spec = spec_of(read_schema(path))
    names, width = list(spec.features), len(spec.features)
    moments, nonfinite = Moments(0, np.zeros(width), np.zeros(width)), np.zeros(width, np.int64)
    for part_moments, part_nonfinite in scanned(_scaled_part, table_rows(path), parts, path, names, batch_rows,
                                                batch_rows=batch_rows):
        moments, nonfinite = moments.merged(part_moments), nonfinite + part_nonfinite
    checks = scaled_profile_checks(spec, names, moments.mean, moments.std, nonfinite)
    empty = Frame(spec, np.zeros((0, width), np.float32), np.zeros(0), np.zeros(0, np.int64))
    return run_checks("scaled", empty, checks, ScalingFault, site)


def _scaled_part(span: Span, path: str, names: list[str], batch_rows: int | None) -> tuple[Moments, np.ndarray]:
    """The train rows' moments and each column's non-finite values, over ``span``."""
    width = len(names)
    moments, nonfinite = Moments(0, np.zeros(width), np.zeros(width)), np.zeros(width, np.int64)
    for rows in rows_in(path, ["split", *names], span, batch_rows):
        X = np.column_stack([rows.column(j + 1).to_numpy(zero_copy_only=False) for j in range(width)])
        nonfinite += (~np.isfinite(X)).sum(axis=0)
        moments = moments.merged(Moments.of(X[rows_of(rows.column(0), "train")]))
    return moments, nonfinite
