"""Categorical features: a vocabulary per text column, learnt on the train rows only, and the
one-hot columns the models see.

The vocabulary is Keras's own: a ``keras.layers.StringLookup`` adapted on the train rows' values
(most frequent first, index 0 for anything unseen), so the exported model encodes a raw row
with the same layer, the same vocabulary and the same out-of-vocabulary rule as training did.
One-hot rather than an embedding: a table's categorical columns hold a few to a few hundred
values, one-hot keeps the scaled data a matrix of numbers that every model of the zoo, the
search (its scikit-learn estimator too) and the checks take unchanged, and the linear path of
Wide & Deep learns a weight per category. A column with more distinct values than
``MAX_CATEGORIES`` is refused at validation: that many one-hot columns, each seen a few times,
is an identifier rather than a category.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_CATEGORIES = 1_000
UNSEEN = "[UNK]"  # StringLookup's out-of-vocabulary token, at index 0
Text = np.ndarray | list[pa.Array]  # rows x columns of text (None where missing), or a text array per column


def _columns(text) -> list[pa.Array]:
    """``Text`` as an Arrow string array per column."""
    if isinstance(text, np.ndarray):
        return [pa.array(text[:, j], pa.string()) for j in range(text.shape[1])]
    return [values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values for values in text]


def _lookup(words: list[str] | None = None, output_mode: str = "int"):
    import keras

    return keras.layers.StringLookup(vocabulary=words, num_oov_indices=1, output_mode=output_mode)


@dataclass(frozen=True)
class Vocabulary:
    """Per categorical column: its categories in index order (1..; 0 is unseen), how many train rows
    held each, and the value that fills a missing cell (the most frequent; only when imputing)."""

    columns: tuple[str, ...]
    words: tuple[tuple[str, ...], ...]
    train_rows: tuple[np.ndarray, ...]  # index 0 (unseen) first: 0 on the train rows by construction
    fills: tuple[str | None, ...]

    @classmethod
    def fit(cls, text: np.ndarray, columns: tuple[str, ...], impute: bool) -> Vocabulary:
        """Learn each column's categories from ``text`` (the train rows only)."""
        counted = []
        for j in range(len(columns)):
            values = text[:, j]
            words, counts = np.unique(values[values != None].astype(str), return_counts=True)  # noqa: E711
            counted.append(dict(zip(words.tolist(), counts.tolist())))
        return cls.from_counts(columns, counted, impute)

    @classmethod
    def from_counts(cls, columns: tuple[str, ...], counted: list[dict[str, int]], impute: bool) -> Vocabulary:
        """The vocabulary from each column's train rows per category, however they were counted
        (at once, or merged over a stream's row groups): in the order ``StringLookup.adapt`` gives
        (most rows first, a tie by the category, the greater first), so the vocabulary is Keras's."""
        words, counts, fills = [], [], []
        for column in counted:
            ordered = sorted(column.items(), key=lambda item: (item[1], item[0]), reverse=True)
            words.append(tuple(str(word) for word, _ in ordered))
            counts.append(np.array([0, *(n for _, n in ordered)], np.int64))
            fills.append(ordered[0][0] if impute and ordered else None)
        return cls(tuple(columns), tuple(words), tuple(counts), tuple(fills))

    def codes(self, text: Text) -> list[np.ndarray]:
        """Each column's index per row (0: a category the train rows never held); a missing cell
        is the column's fill value. The lookup ``StringLookup`` does (an exact match of the text),
        in Arrow, on the text as it comes (``Text``), without a Python string per row."""
        return self._codes(_columns(text))

    def _codes(self, columns: list[pa.Array]) -> list[np.ndarray]:
        out = []
        for j, values in enumerate(columns):
            if values.null_count:
                if self.fills[j] is None:
                    raise ValueError(f"column {self.columns[j]!r} has missing values and no fill (--missing refuse)")
                values = pc.fill_null(values, self.fills[j])
            found = pc.index_in(values, value_set=pa.array(self.words[j], pa.string()))
            out.append(pc.fill_null(pc.add(found, 1), 0).to_numpy(zero_copy_only=False).astype(np.int64))
        return out

    def tally(self, text: Text, kept: int = 3) -> list[tuple[np.ndarray, set]]:
        """Per column: its rows per index (0: unseen) and the first ``kept`` unseen categories
        (in sorted order), a sum that merges over batches (``merged_tallies``)."""
        out, columns = [], _columns(text)
        for words, values, code in zip(self.words, columns, self._codes(columns)):
            unseen = pc.unique(values.filter(pa.array(code == 0)).drop_null()).to_pylist()
            out.append((np.bincount(code, minlength=len(words) + 1), set(sorted(unseen)[:kept])))
        return out

    def encode(self, text: Text, out: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
        """The one-hot columns (float32, ``names()``'s order; written into ``out`` when given, a
        rows x ``len(names())`` block, so a wide vocabulary is never built twice) and each
        column's count of unseen values."""
        codes = self.codes(text)
        rows = len(codes[0]) if codes else 0
        if out is None:
            out = np.zeros((rows, sum(len(words) + 1 for words in self.words)), np.float32)
        else:
            out[...] = 0
        at, every = 0, np.arange(rows)
        for words, code in zip(self.words, codes):
            out[every, at + code] = 1
            at += len(words) + 1
        return out, [int(np.count_nonzero(c == 0)) for c in codes]

    def names(self) -> list[str]:
        """The one-hot columns' names: ``column=category``, the unseen one first."""
        return [f"{column}={word}" for column, words in zip(self.columns, self.words) for word in (UNSEEN, *words)]

    def layer(self, j: int):
        """Column ``j``'s one-hot encoder as a Keras layer, for the exported model."""
        return _lookup(list(self.words[j]), "one_hot")

    def to_arrow(self) -> pa.Table:
        rows = [(column, i, word, int(count), fill is not None and word == fill)
                for column, words, counts, fill in zip(self.columns, self.words, self.train_rows, self.fills)
                for i, (word, count) in enumerate(zip((UNSEEN, *words), counts))]
        names = ("column", "index", "category", "train_rows", "fill")
        return pa.table({name: [row[k] for row in rows] for k, name in enumerate(names)},
                        schema=pa.schema([("column", pa.string()), ("index", pa.int64()), ("category", pa.string()),
                                          ("train_rows", pa.int64()), ("fill", pa.bool_())]))

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Vocabulary:
        frame = table.to_pandas()
        columns = tuple(dict.fromkeys(frame["column"]))
        parts = [frame[frame["column"] == c].sort_values("index") for c in columns]
        return cls(columns, tuple(tuple(p["category"].iloc[1:]) for p in parts),
                   tuple(p["train_rows"].to_numpy() for p in parts),
                   tuple(next(iter(p.loc[p["fill"], "category"]), None) for p in parts))


def merged_tallies(first: list[tuple[np.ndarray, set]], later: list[tuple[np.ndarray, set]], kept: int = 3
                   ) -> list[tuple[np.ndarray, set]]:
    """Two batches' ``Vocabulary.tally``, as one tally of both."""
    return [(a + b, set(sorted(seen | more)[:kept])) for (a, seen), (b, more) in zip(first, later)]
