"""What the streamed raw validation point reduces from a span of the raw artifact's rows, and how
spans merge (tasks/stages/fan_out.py): each feature's missing and infinite cells and finite
range, each categorical column's missing cells and distinct values (up to ``MAX_CATEGORIES``
and one more: past that the column is refused whatever their number), the rows counted, the
largest label, a row whose target breaks nothing, and the first rows of each kind of fault
with their values (``Examples``), merged in row order, so the parts' profile names the same
rows as one scan of the whole table."""
from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pyarrow.compute as pc

from tasks.stages.categories import MAX_CATEGORIES
from tasks.stages.fan_out import Span, rows_in
from tasks.store.dataset import DatasetSpec

EXAMPLES = 5  # rows kept per column and kind of fault, to name in a finding
DISTINCT_KEPT = MAX_CATEGORIES + 1  # a categorical column's distinct values kept: enough to refuse it


class Examples:
    """The first rows of each (column, kind) fault: their global row numbers and values."""

    def __init__(self):
        self.rows, self.counts = defaultdict(list), defaultdict(int)

    def add(self, column: str, kind: str, bad: np.ndarray, row_id: np.ndarray, values: np.ndarray) -> None:
        where = np.flatnonzero(bad)
        if len(where):
            self.counts[(column, kind)] += len(where)
            kept = self.rows[(column, kind)]
            kept.extend(zip(row_id[where[:EXAMPLES - len(kept)]], values[where[:EXAMPLES - len(kept)]]))

    def merged(self, later: Examples) -> Examples:
        """These examples, then ``later``'s (from rows after these) where fewer than ``EXAMPLES`` are kept."""
        for key, found in later.rows.items():
            self.counts[key] += later.counts[key]
            kept = self.rows[key]
            kept.extend(found[:EXAMPLES - len(kept)])
        return self


@dataclasses.dataclass
class RawProfile:
    """The raw rows' profile over a span of them (see the module's text)."""

    nan: np.ndarray
    inf: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    examples: Examples
    words: list[set] = dataclasses.field(default_factory=list)  # per categorical column (see the module's text)
    rows: int = 0
    top: int = -1
    good: tuple | None = None  # (row id, target) of a row whose target passes; the first row if none does

    @classmethod
    def empty(cls, width: int, categorical: int = 0) -> RawProfile:
        return cls(np.zeros(width, np.int64), np.zeros(width, np.int64), np.full(width, np.inf),
                   np.full(width, -np.inf), Examples(), [set() for _ in range(categorical)])

    def merged(self, later: RawProfile) -> RawProfile:
        """This span's profile followed by the next span's."""
        good = self.good if self.good is not None else later.good  # the first span's, unless it was empty
        return RawProfile(self.nan + later.nan, self.inf + later.inf, np.minimum(self.lo, later.lo),
                          np.maximum(self.hi, later.hi), self.examples.merged(later.examples),
                          [_kept(a | b) for a, b in zip(self.words, later.words)],
                          self.rows + later.rows, max(self.top, later.top), good)


def _kept(words: set) -> set:
    return words if len(words) <= DISTINCT_KEPT else set(sorted(words)[:DISTINCT_KEPT])


def target_passes(spec: DatasetSpec, y: np.ndarray) -> np.ndarray:
    """Which targets break none of the target's expectations (for the example rows' filler)."""
    fine = ~np.isnan(y)
    if spec.task == "classification":
        fine &= y >= 0
    elif spec.target_range:
        fine &= (y >= spec.target_range[0]) & (y <= spec.target_range[1])
    return fine


def raw_part(span: Span, path: str, spec: DatasetSpec, batch_rows: int | None) -> RawProfile:
    """The raw profile of ``span`` of the raw artifact at ``path``."""
    names, categorical = list(spec.features), list(spec.categorical)
    profile, bounds = RawProfile.empty(len(names), len(categorical)), [spec.feature_range(c) for c in names]
    examples = profile.examples
    for rows in rows_in(path, ["row_id", spec.target, *names, *categorical], span, batch_rows):
        row_id, y = rows.column(0).to_numpy(), rows.column(1).to_numpy(zero_copy_only=False)
        y_float = y.astype(np.float64)
        fine = target_passes(spec, y_float)
        if profile.good is None and (fine.any() or profile.rows == 0):  # a row whose target breaks nothing
            k = int(np.argmax(fine)) if fine.any() else 0
            profile.good = (row_id[k], y[k])
        profile.rows += len(y)
        for j, column in enumerate(names):
            values = rows.column(j + 2).to_numpy(zero_copy_only=False)
            low, high = values.min(initial=np.inf), values.max(initial=-np.inf)
            if not (np.isfinite(low) and np.isfinite(high)):  # NaN or inf somewhere: count and keep examples
                missing, infinite = np.isnan(values), np.isinf(values)
                profile.nan[j] += missing.sum()
                profile.inf[j] += infinite.sum()
                examples.add(column, "nulls", missing, row_id, values)
                examples.add(column, "nonfinite", infinite, row_id, values)
                finite = values[~(missing | infinite)]
                low, high = finite.min(initial=np.inf), finite.max(initial=-np.inf)
            profile.lo[j], profile.hi[j] = min(profile.lo[j], low), max(profile.hi[j], high)
            if low < bounds[j][0]:
                examples.add(column, "min", values < bounds[j][0], row_id, values)
            if high > bounds[j][1]:
                examples.add(column, "upper", values > bounds[j][1], row_id, values)
        for k, column in enumerate(categorical):
            text = rows.column(len(names) + 2 + k)
            if text.null_count:  # (the examples' values: each None, without a Python string per row)
                examples.add(column, "nulls", text.is_null().to_numpy(zero_copy_only=False), row_id,
                             np.full(len(text), None, dtype=object))
            if len(profile.words[k]) < DISTINCT_KEPT:  # (past it the column is refused: no need to count on)
                profile.words[k] = _kept(profile.words[k] | set(pc.unique(text.drop_null()).to_pylist()))
        examples.add(spec.target, "null", np.isnan(y_float), row_id, y)
        if spec.task == "classification":
            examples.add(spec.target, "set", y_float < 0, row_id, y)
            if len(y) and not np.isnan(y_float).all():
                profile.top = max(profile.top, int(np.nanmax(y_float)))
        elif spec.target_range:
            outside = (y_float < spec.target_range[0]) | (y_float > spec.target_range[1])
            examples.add(spec.target, "range", outside, row_id, y)
    return profile
