"""A user's own table (CSV or Parquet) as a Frame, refused early when it cannot be used.

The target column is named by the user; the other columns are features; a column named
``split`` (train/valid/test) is the table's own split. A column of text is a categorical
feature (one-hot encoded by the scale stage, on a vocabulary of the train rows), a column of
numbers (or of numbers written as text) a numeric one; ``--categorical`` and ``--numeric``
override that. A classifier's labels may be text: they are coded 0..K-1 in sorted order and
their names kept in the spec. Whatever training cannot use (a column that is text in some rows
and numbers in others, an empty table, numeric labels that are not 0..K-1) is refused here,
naming the file, the column, the rows and the values, before any artifact is written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.core.errors import DataError, OptionError, rows_text, values_text
from tasks.core.params import MISSING
from tasks.store.artifacts import sha256_file
from tasks.store.dataset import SPLITS, DatasetSpec, Frame, SplitRule


@dataclass(frozen=True)
class TableOptions:
    """How a user's table is read: columns declared categorical or numeric (the rest by their
    type), the missing-value policy and whether train-constant features are dropped."""

    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    missing: str = "refuse"
    drop_constant: bool = False


def load_table(path: str | os.PathLike, target: str, task: str, options: TableOptions | None = None
               ) -> tuple[Frame, list[str]]:
    """A CSV or Parquet table: ``target`` is the label/value column, the rest are features.

    A column named ``split`` (values train/valid/test) is kept as the table's own split.
    What cannot be used is refused here, naming the column, the rows and the values.
    """
    path, options = Path(path), options or TableOptions()
    df = read_table_file(path)
    if options.missing not in MISSING:
        raise OptionError(f"--missing {options.missing}: use one of {', '.join(MISSING)}")
    refuse_undeclared(options, list(df.columns), target, path)
    if target not in df.columns:
        raise DataError(f"{path.name}: no column {target!r} (the --target); its columns are "
                        f"{values_text(map(str, df.columns))}")
    split = None
    if "split" in df.columns:
        split = df.pop("split").astype(str).to_numpy(dtype=object)
        bad = ~np.isin(split, SPLITS)
        if bad.any():
            raise DataError(f"{path.name}: column 'split' holds {values_text(sorted(set(split[bad])))} at "
                            f"{rows_text(np.flatnonzero(bad))}; use only {', '.join(SPLITS)}")
    columns = [c for c in df.columns if c != target]
    if not columns:
        raise DataError(f"{path.name}: no feature columns besides the target {target!r}")
    text = [c for c in columns if c in options.categorical or
            (c not in options.numeric and _is_text(df, c, path))]
    features = [c for c in columns if c not in text]
    for column in features:
        _numeric(df, column, path, "feature")
    y, names = _target(df, target, task, path)
    spec = DatasetSpec(name=path.stem, task=task, target=target, features=tuple(map(str, features)),
                       categorical=tuple(map(str, text)), class_names=names, missing=options.missing,
                       drop_constant=options.drop_constant,
                       split=SplitRule("given" if split is not None else "random"))
    X = df[features].to_numpy(dtype=np.float64) if features else np.empty((len(df), 0))
    words = np.column_stack([category_text(df[c]) for c in text]) if text else None
    return (Frame(spec, X, y, np.arange(len(df), dtype=np.int64), split, words),
            [f"{path.name}:{sha256_file(path)}"])


def refuse_undeclared(options: TableOptions, columns: list, target: str, path: Path) -> None:
    """--categorical and --numeric must name feature columns of the table, each by one of them."""
    for flag, names in (("--categorical", options.categorical), ("--numeric", options.numeric)):
        unknown = [c for c in names if c not in columns or c in (target, "split")]
        if unknown:
            raise OptionError(f"{flag} {','.join(unknown)}: not a feature column of {path.name} "
                              f"(its columns: {values_text(map(str, columns))})")
    both = sorted(set(options.categorical) & set(options.numeric))
    if both:
        raise OptionError(f"{', '.join(both)}: named by both --categorical and --numeric")


def category_text(values) -> np.ndarray:
    """A column's values as category names: text as it is, a whole number without its ".0"
    (a code read as float where the column has gaps), None where the value is missing."""
    import pandas as pd

    out = np.empty(len(values), dtype=object)
    present = values.notna().to_numpy()
    kept = values[present]
    if pd.api.types.is_float_dtype(kept) and (kept % 1 == 0).all() and (kept.abs() < 2**53).all():  # (exact)
        kept = kept.astype(np.int64)
    out[present] = kept.astype(str).to_numpy(dtype=object)
    return out


def _is_text(df, column: str, path: Path) -> bool:
    """Whether an undeclared column is categorical: text in every row that has a value. A
    column of numbers (or numbers written as text) is not; one that mixes them is refused."""
    import pandas as pd

    values = df[column]
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    present = values.notna().to_numpy()
    number = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    words, numbers = np.flatnonzero(present & ~number), np.flatnonzero(number)
    if len(words) and len(numbers):
        raise DataError(f"{path.name}: column {column!r} holds numbers in {len(numbers)} rows "
                        f"({values_text(values.iloc[numbers[:3]])} at {rows_text(numbers, len(numbers))}) and text "
                        f"in {len(words)} ({values_text(values.iloc[words[:3]])} at {rows_text(words, len(words))}); "
                        f"declare it --categorical {column} (every value a category) or --numeric {column} "
                        "(then fix the text cells)")
    return len(words) > 0


READERS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".csv.gz": "csv", ".txt": "csv"}


def table_kind(path: Path) -> str | None:
    """"csv" or "parquet" from a user table's name; None for anything else."""
    return next((kind for suffix, kind in READERS.items() if path.name.lower().endswith(suffix)), None)


def read_table_file(path: Path):
    """A user's table (CSV or Parquet) as a DataFrame; a clear ``DataError`` when it cannot be."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"--data {path}: no such file")
    kind = table_kind(path)
    if kind is None:
        raise DataError(f"--data {path}: expected a .csv or .parquet file")
    try:
        df = pd.read_parquet(path) if kind == "parquet" else pd.read_csv(path)
    except Exception as error:  # a parser's own words name what it could not read
        raise DataError(f"{path.name}: cannot be read as {kind} ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''})") from None
    if len(df) == 0:
        raise DataError(f"{path.name}: the table has a header but no rows")
    return df


def _numeric(df, column: str, path: Path, role: str) -> None:
    """Fail on a column that holds text, naming the rows and values that are not numbers."""
    import pandas as pd

    values = df[column]
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return
    numbers = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() & values.notna().to_numpy())
    if len(bad) == 0:  # numbers written as text: use them
        df[column] = numbers
        return
    raise DataError(f"{path.name}: {role} column {column!r} holds text where numbers are expected: "
                    f"{values_text(values.iloc[bad[:5]])} at {rows_text(bad, len(bad))}; "
                    f"fix those cells or encode the column as numbers")


def _target(df, target: str, task: str, path: Path) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """The target column, checked for what training needs: numbers; whole labels for a classifier,
    or text labels, coded 0..K-1 in sorted order (their names are returned with the codes)."""
    if task == "classification" and _is_text(df, target, path):
        labels = category_text(df[target])
        empty = np.flatnonzero(labels == None)  # noqa: E711 (elementwise)
        if len(empty):
            raise DataError(f"{path.name}: the label column {target!r} is empty at {rows_text(empty, len(empty))}; "
                            "fill or drop those rows")
        names, codes = np.unique(labels.astype(str), return_inverse=True)
        return codes.astype(np.int64), tuple(map(str, names))
    _numeric(df, target, path, "target")
    y = df[target].to_numpy()
    if task == "classification":
        finite = y[~np.isnan(y)] if y.dtype.kind == "f" else y
        fractional = np.flatnonzero(np.isfinite(y.astype(float)) & (y.astype(float) % 1 != 0))
        if len(fractional):
            raise DataError(f"{path.name}: the label column {target!r} holds non-whole values "
                            f"{values_text(y[fractional])} at {rows_text(fractional)}; classification needs "
                            "labels 0..K-1 (for a numeric target use the regression flow)")
        refuse_one_based(set(np.unique(finite).tolist()), target, path)
    return y, None


def refuse_one_based(labels: set, target: str, path: Path) -> None:
    """Refuse labels 1..K (every one of them present, none 0): a classifier's are 0..K-1."""
    if labels and min(labels) >= 1 and labels == set(range(1, int(max(labels)) + 1)):
        raise DataError(f"{path.name}: the labels in {target!r} run 1..{int(max(labels))}; the models need "
                        f"0..{int(max(labels)) - 1}: subtract 1 from the column")
