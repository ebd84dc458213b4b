"""Each column's exact median over rows read a batch at a time, for ``--missing impute`` on a
table larger than memory.

A median is not merged from batches' medians, and holding a column's values is what a stream
must not do. So the values are counted into a histogram of ``BINS`` bins between the column's
least and greatest value, the bins holding the middle ranks are kept and the rest dropped, and
the next pass counts only within them, until the values left are few enough (``HELD``) to hold
and sort: the middle values themselves, so the median is numpy's ``nanmedian`` of the same
values, not an estimate. Missing values are skipped, as ``nanmedian`` skips them. A column of
well-spread values needs two passes; each pass reads the rows again.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

BINS = 4_096
HELD = 1_000_000  # values of one column a pass may hold to sort


def medians(rows: Callable[[], Iterator[np.ndarray]], width: int) -> np.ndarray:
    """The median of each of ``width`` columns of the rows ``rows()`` yields (batches of rows x
    ``width``, the same rows at each call), NaN ignored; NaN for a column with no value."""
    count, low, high = np.zeros(width, np.int64), np.full(width, np.inf), np.full(width, -np.inf)
    for X in rows():
        seen = ~np.isnan(X)
        count += seen.sum(axis=0)
        low = np.fmin(low, np.nanmin(X, axis=0, initial=np.inf))
        high = np.fmax(high, np.nanmax(X, axis=0, initial=-np.inf))
    columns = [_Column(int(n), lo, hi) for n, lo, hi in zip(count, low, high)]
    while searching := [(j, c) for j, c in enumerate(columns) if not c.done]:
        for _, c in searching:
            c.start_pass()
        for X in rows():
            for j, c in searching:
                c.see(X[:, j])
        for _, c in searching:
            c.end_pass()
    return np.array([c.median for c in columns])


class _Column:
    """One column's search: the interval [low, high] that holds its middle ranks, and how many
    of its values lie below the interval."""

    def __init__(self, count: int, low: float, high: float):
        self.ranks = ((count - 1) // 2, count // 2)  # the middle rank, or the two middle ranks
        self.low, self.high, self.below, self.inside, self.stuck = low, high, 0, count, False
        self.median = np.nan
        self.done = count == 0 or low == high
        if count and low == high:
            self.median = float(low)

    def start_pass(self) -> None:
        self.holding = self.inside <= HELD or self.stuck
        self.edges = None if self.holding else np.linspace(self.low, self.high, BINS + 1)
        self.counts, self.held, self.least, self.most = np.zeros(BINS, np.int64), [], np.inf, -np.inf

    def _within(self, values: np.ndarray) -> np.ndarray:
        return values[(values >= self.low) & (values <= self.high)]  # (NaN is neither)

    def see(self, values: np.ndarray) -> None:
        values = self._within(values)
        if len(values):
            self.least, self.most = min(self.least, values.min()), max(self.most, values.max())
        if self.holding:  # each value once, with how many times it came
            self.held.append(np.unique(values, return_counts=True))
        else:  # bin i holds edges[i] <= v < edges[i + 1]; the last bin its upper edge too
            bins = np.clip(np.searchsorted(self.edges, values, side="right") - 1, 0, BINS - 1)
            self.counts += np.bincount(bins, minlength=BINS)

    def end_pass(self) -> None:
        if self.holding:  # the values of the middle ranks, held: numpy's own median of them
            values, where = np.unique(np.concatenate([v for v, _ in self.held]), return_inverse=True)
            ends = np.cumsum(np.bincount(where, weights=np.concatenate([n for _, n in self.held]))) + self.below
            middle = values[[int(np.searchsorted(ends, r, side="right")) for r in self.ranks]]
            self.median, self.done = float(np.mean(middle)), True
            return
        if self.least == self.most:  # every value left is one value (a column of repeats): the median
            self.median, self.done = float(self.least), True
            return
        ends = np.cumsum(self.counts) + self.below  # values below each bin's upper edge, and in it
        first, last = (int(np.searchsorted(ends, r, side="right")) for r in self.ranks)
        self.below = int(ends[first] - self.counts[first])
        self.inside = int(ends[last] - self.below)
        was = (self.low, self.high)
        self.low = self.edges[first]
        if last + 1 < BINS:  # the upper edge belongs to the next bin: keep just below it
            self.high = np.nextafter(self.edges[last + 1], -np.inf)
        # an interval a few floats wide may not narrow: its few distinct values are held next pass
        self.stuck = (self.low, self.high) == was
