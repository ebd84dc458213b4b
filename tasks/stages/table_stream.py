"""A user's table read a batch of rows at a time, for tables larger than memory.

The streamed counterpart of ``load_table`` (tasks/stages/table.py): a CSV through Arrow's
streaming reader, a Parquet file a row group at a time, each batch put in the raw artifact's
layout (``row_id``, ``split`` when the table has one, the target, the features as float64)
and handed on, so the caller writes it as one row group of the artifact and only one batch is
ever held. The values are those ``load_table`` gives, and what it refuses is refused here too,
naming the rows by their place in the whole table. Categorical columns and text labels need
the whole table before the first row is written (their vocabulary, their sorted codes) and are
refused for now, naming the column.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.core.errors import DataError, OptionError, rows_text, values_text
from tasks.core.params import MISSING
from tasks.stages.streamed_stats import batches, rows_per_batch
from tasks.stages.table import TableOptions, refuse_one_based, refuse_undeclared, table_kind
from tasks.store.dataset import SPEC_KEY, SPLITS, DatasetSpec, SplitRule

CSV_BLOCK_BYTES = 16 * 2**20  # bytes per block of Arrow's CSV reader (about 100,000 housing rows)
WHOLE = r"^([-+]?\d+)\.0*$"  # a whole number written as a float
PANDAS_NULLS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
                "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]  # the cells pandas reads as missing
NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"  # a cell that reads as a number


def is_number_type(kind: pa.DataType) -> bool:
    """Whether a column of this Arrow type holds numbers (an all-empty one counts: it has none else)."""
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind) \
        or pa.types.is_decimal(kind)


def reads_as_number(values: pa.Array) -> pa.BooleanArray:
    """Which cells of a column, as text, read as a number (a missing one: null)."""
    return pc.match_substring_regex(values.cast(pa.string()), NUMBER)


def is_text_type(kind: pa.DataType) -> bool:
    """Whether a column of this Arrow type holds text (dictionary-encoded text too)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


class StreamedTable:
    """A table to stream: its spec, the raw artifact's schema, and ``batches()``."""

    def __init__(self, path: str | os.PathLike, target: str, task: str, options: TableOptions | None = None,
                 batch_rows: int | None = None, csv_block_bytes: int = CSV_BLOCK_BYTES):
        self.path, self.options, self.batch_rows = Path(path), options or TableOptions(), rows_per_batch(batch_rows)
        self.block_bytes = csv_block_bytes
        self.kind = _kind(self.path)
        if self.options.missing not in MISSING:
            raise OptionError(f"--missing {self.options.missing}: use one of {', '.join(MISSING)}")
        header = self._header()
        columns, name = list(header), self.path.name
        refuse_undeclared(self.options, columns, target, self.path)
        if target not in columns:
            raise DataError(f"{name}: no column {target!r} (the --target); its columns are "
                            f"{values_text(map(str, columns))}")
        others = [c for c in columns if c not in (target, "split")]
        if not others:
            raise DataError(f"{name}: no feature columns besides the target {target!r}")
        self.inferred = [c for c in others if c not in self.options.categorical and c not in self.options.numeric
                         and is_text_type(header[c])]
        if self.inferred:  # a column whose first batch holds a number is numbers (its text cells refused)
            self.inferred = [c for c in self.inferred if c not in self._holding_numbers(self.inferred)]
        self.categorical = [c for c in others if c in self.options.categorical or c in self.inferred]
        features = [c for c in others if c not in self.categorical]
        self.target, self.features, self.has_split = target, features, "split" in columns
        self.spec = DatasetSpec(name=self.path.stem, task=task, target=target, features=tuple(features),
                                categorical=tuple(self.categorical),
                                missing=self.options.missing, drop_constant=self.options.drop_constant,
                                split=SplitRule("given" if self.has_split else "random"), streamed=True)
        y_type = pa.int64() if task == "classification" else pa.float64()
        fields = [pa.field("row_id", pa.int64()), *([pa.field("split", pa.string())] if self.has_split else []),
                  pa.field(target, y_type), *(pa.field(c, pa.float64()) for c in features),
                  *(pa.field(c, pa.string()) for c in self.categorical)]
        self.schema = pa.schema(fields, metadata={SPEC_KEY: self.spec.to_json().encode()})

    def _header(self) -> dict[str, pa.DataType]:
        """Each column's type: a Parquet file's, a CSV's as Arrow reads its first block."""
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            schema = _readable(self.path, lambda: pq.ParquetFile(self.path).schema_arrow)
        else:
            import pyarrow.csv as csv

            schema = _readable(self.path, lambda: csv.open_csv(
                self.path, read_options=csv.ReadOptions(block_size=self.block_bytes)).schema)
            # a CSV's cells are text: what Arrow reads as dates or times is text to pandas, as it is here
            return {f.name: f.type if is_number_type(f.type) or pa.types.is_boolean(f.type) or is_text_type(f.type)
                    else pa.string() for f in schema}
        return {f.name: f.type for f in schema}

    def _holding_numbers(self, columns: list[str]) -> list[str]:
        """Those of ``columns`` whose first batch with a value holds a number (read on only as far
        as a column stays empty)."""
        if self.kind == "parquet":
            read = batches(str(self.path), columns, self.batch_rows)
        else:
            read = csv_blocks(self.path, dict.fromkeys(columns, pa.string()), self.block_bytes,
                              lambda _: DataError(f"{self.path.name}: cannot be read as csv"))
        undecided, numbers = set(columns), []
        for batch in read:
            for column in [c for c in columns if c in undecided and batch.column(c).null_count < batch.num_rows]:
                undecided.discard(column)
                if pc.any(reads_as_number(batch.column(column))).as_py():
                    numbers.append(column)
            if not undecided:
                break
        return numbers

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The table in the raw artifact's layout, ``batch_rows`` rows at a time."""
        first, self._labels = 0, set()
        for batch in self._read():
            if batch.num_rows == 0:
                continue
            yield self._checked(batch, first)
            first += batch.num_rows
        if first == 0:
            raise DataError(f"{self.path.name}: the table has a header but no rows")
        if self.spec.task == "classification":  # (before the artifact is published: nothing is written)
            refuse_one_based(self._labels, self.target, self.path)

    def _read(self) -> Iterator[pa.RecordBatch]:
        wanted = [*(["split"] if self.has_split else []), self.target, *self.features, *self.categorical]
        if self.kind == "parquet":
            yield from batches(str(self.path), wanted, self.batch_rows)
            return
        types = {c: pa.float64() for c in (self.target, *self.features)}
        types.update(dict.fromkeys([*(["split"] if self.has_split else []), *self.categorical], pa.string()))
        for batch in csv_blocks(self.path, types, self.block_bytes, self._text_cells):
            yield from (batch.slice(i, self.batch_rows) for i in range(0, batch.num_rows, self.batch_rows))

    def _text_cells(self, after: int) -> DataError:
        """The error that names the first column holding text where numbers are expected."""
        found = text_cells(self.path, [self.target, *self.features], after, self.block_bytes)
        if found is None:
            return DataError(f"{self.path.name}: cannot be read as csv after row {after}")
        column, values, rows = found
        return self._holds_text("target" if column == self.target else "feature", column, values, rows)

    def _holds_text(self, role: str, column: str, values, rows: np.ndarray) -> DataError:
        """The error for text cells (``values``, at global ``rows``) in a column of numbers."""
        return DataError(f"{self.path.name}: {role} column {column!r} holds text where numbers are expected: "
                         f"{values_text(values)} at {rows_text(rows)}; fix those cells"
                         + (f", or declare it --categorical {column}" if role == "feature" else ""))

    def _checked(self, batch: pa.RecordBatch, first: int) -> pa.RecordBatch:
        """One batch in the raw artifact's layout; what cannot be used is refused naming global rows."""
        name, arrays = self.path.name, [pa.array(np.arange(first, first + batch.num_rows, dtype=np.int64))]
        if self.has_split:
            split = batch.column("split").cast(pa.string())
            bad = np.flatnonzero(~pc.fill_null(pc.is_in(split, pa.array(SPLITS)), False).to_numpy(zero_copy_only=False))
            if len(bad):
                found = sorted(set(map(str, split.take(bad).to_pylist())))  # an empty cell reads 'None', as in memory
                raise DataError(f"{name}: column 'split' holds {values_text(found)}"
                                f" at {rows_text(bad + first)}; use only {', '.join(SPLITS)}")
            arrays.append(split)
        arrays.append(self._target(batch, first))
        arrays.extend(self._number(batch, c, first, "feature") for c in self.features)
        arrays.extend(self._category(batch, c, first) for c in self.categorical)
        return pa.record_batch(arrays, schema=self.schema)

    def _number(self, batch: pa.RecordBatch, column: str, first: int, role: str) -> pa.Array:
        """A column as float64, missing cells NaN; text that is not a number is refused."""
        values = batch.column(column)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            import pandas as pd

            text = values.to_pandas()
            numbers = pd.to_numeric(text, errors="coerce")
            bad = np.flatnonzero(numbers.isna().to_numpy() & text.notna().to_numpy())
            if len(bad):
                raise self._holds_text(role, column, text.iloc[bad[:5]], bad + first)
            return pa.array(numbers.to_numpy(np.float64))
        return as_numbers(values)

    def _category(self, batch: pa.RecordBatch, column: str, first: int) -> pa.Array:
        """A categorical column as text (``category_cells``), an undeclared one checked."""
        values = category_cells(batch.column(column), csv_text=self.kind == "csv")
        if column in self.inferred:  # undeclared: text in every row, or refused as in memory
            numbers = np.flatnonzero(pc.fill_null(reads_as_number(values), False).to_numpy(zero_copy_only=False))
            if len(numbers):
                raise DataError(f"{self.path.name}: column {column!r} of text holds numbers "
                                f"({values_text(values.take(numbers[:3]).to_pylist())} at "
                                f"{rows_text(numbers + first, len(numbers))}); declare it --categorical {column} "
                                f"(every value a category) or --numeric {column} (then fix the text cells)")
        return values

    def _target(self, batch: pa.RecordBatch, first: int) -> pa.Array:
        y = self._number(batch, self.target, first, "target")
        if self.spec.task != "classification":
            return y
        values = y.to_numpy(zero_copy_only=False)
        fractional = np.flatnonzero(~np.isfinite(values) | (values % 1 != 0))
        if len(fractional):
            raise DataError(f"{self.path.name}: the label column {self.target!r} holds "
                            f"{values_text(values[fractional])} at {rows_text(fractional + first)}; "
                            "classification needs whole labels 0..K-1")
        self._labels |= set(np.unique(values).astype(np.int64).tolist())
        return pa.array(values.astype(np.int64))


def category_cells(values: pa.Array, csv_text: bool = False) -> pa.Array:
    """A categorical column's cells as the category names memory gives them (``category_text``
    on what pandas reads): missing cells (NaN too) null, a whole number without its ".0", True and
    False capitalised. ``csv_text``: cells a CSV holds as text, where pandas would have read a
    column of numbers (or of true and false) as such: "3.0" is "3" and "true" "True" here too,
    decided cell by cell where pandas decides per column (so "3.0" beside "abc" reads "3" here,
    "3.0" in memory; and "02134" keeps its zero here, where a column of such codes loses it in
    memory)."""
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_boolean(values.type):
        return pc.if_else(values, "True", "False")
    if pa.types.is_floating(values.type):
        values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
    text = values.cast(pa.string())
    if not csv_text:
        return text
    for pattern, name in ((WHOLE, r"\1"), ("^(?:true|TRUE)$", "True"), ("^(?:false|FALSE)$", "False")):
        text = pc.replace_substring_regex(text, pattern, name)
    return text


def as_numbers(values: pa.Array) -> pa.Array:
    """A numeric column as float64, its missing cells NaN."""
    values = values.cast(pa.float64())
    return pc.fill_null(values, float("nan")) if values.null_count else values


def csv_blocks(path: Path, types: dict[str, pa.DataType], block_bytes: int,
               refused: Callable[[int], Exception]) -> Iterator[pa.RecordBatch]:
    """A CSV's columns named in ``types``, read as those types a block at a time; a cell that is
    not a number where one is expected raises ``refused(rows read before its block)``."""
    import pyarrow.csv as csv

    done = 0
    try:  # (opening reads the first block)
        reader = csv.open_csv(path, read_options=csv.ReadOptions(block_size=block_bytes),
                              convert_options=csv.ConvertOptions(column_types=types, include_columns=list(types),
                                                                 null_values=PANDAS_NULLS, strings_can_be_null=True))
        for batch in reader:
            yield batch
            done += batch.num_rows
    except pa.ArrowInvalid:  # a cell that is not a number, somewhere after the rows read
        raise refused(done) from None


def text_cells(path: Path, columns: list[str], after: int, block_bytes: int = CSV_BLOCK_BYTES
               ) -> tuple[str, list, np.ndarray] | None:
    """The first of a CSV's ``columns`` holding text where numbers are expected, found by reading
    the rest of it (from row ``after``) as text: the column, its first few such cells and their
    rows. The slow path, taken only on bad input."""
    import pandas as pd
    import pyarrow.csv as csv

    read = csv.ReadOptions(block_size=block_bytes, skip_rows_after_names=after)
    convert = csv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string()), include_columns=columns)
    first = after
    for batch in csv.open_csv(path, read_options=read, convert_options=convert):
        for column in columns:
            values = batch.column(column).to_pandas()
            text = values.notna().to_numpy() & (values.str.strip() != "").to_numpy()
            bad = np.flatnonzero(pd.to_numeric(values, errors="coerce").isna().to_numpy() & text)
            if len(bad):
                return column, list(values.iloc[bad[:5]]), bad + first
        first += batch.num_rows
    return None


def _kind(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"--data {path}: no such file")
    kind = table_kind(path)
    if kind is None:
        raise DataError(f"--data {path}: expected a .csv or .parquet file")
    return kind


def _readable(path: Path, open_it):
    try:
        return open_it()
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path.name}: cannot be read ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''})") from None
