"""A user's own table (CSV or Parquet) as a Frame, refused early when it cannot be used.

The target column is named by the user; the other columns are features; a column named
``split`` (train/valid/test) is the table's own split. Whatever training cannot use (text in
a number column, an empty table, labels that are not 0..K-1) is refused here, naming the
file, the column, the rows and the values, before any artifact is written.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tasks.core.errors import DataError, rows_text, values_text
from tasks.store.artifacts import sha256_file
from tasks.store.dataset import SPLITS, DatasetSpec, Frame, SplitRule


def load_table(path: str | os.PathLike, target: str, task: str) -> tuple[Frame, list[str]]:
    """A CSV or Parquet table: ``target`` is the label/value column, the rest are features.

    A column named ``split`` (values train/valid/test) is kept as the table's own split.
    What cannot be used is refused here, naming the column, the rows and the values.
    """
    path = Path(path)
    df = read_table_file(path)
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
    features = [c for c in df.columns if c != target]
    if not features:
        raise DataError(f"{path.name}: no feature columns besides the target {target!r}")
    for column in features:
        _numeric(df, column, path, "feature")
    y = _target(df, target, task, path)
    spec = DatasetSpec(name=path.stem, task=task, target=target, features=tuple(map(str, features)),
                       split=SplitRule("given" if split is not None else "random"))
    X = df[features].to_numpy(dtype=np.float64)
    return Frame(spec, X, y, np.arange(len(df), dtype=np.int64), split), [f"{path.name}:{sha256_file(path)}"]


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


def _target(df, target: str, task: str, path: Path) -> np.ndarray:
    """The target column, checked for what training needs: numbers; whole labels for a classifier."""
    _numeric(df, target, path, "target")
    y = df[target].to_numpy()
    if task == "classification":
        finite = y[~np.isnan(y)] if y.dtype.kind == "f" else y
        fractional = np.flatnonzero(np.isfinite(y.astype(float)) & (y.astype(float) % 1 != 0))
        if len(fractional):
            raise DataError(f"{path.name}: the label column {target!r} holds non-whole values "
                            f"{values_text(y[fractional])} at {rows_text(fractional)}; classification needs "
                            "labels 0..K-1 (for a numeric target use the regression flow)")
        if len(finite) and finite.min() >= 1 and set(np.unique(finite)) == set(range(1, int(finite.max()) + 1)):
            raise DataError(f"{path.name}: the labels in {target!r} run 1..{int(finite.max())}; the models need "
                            f"0..{int(finite.max()) - 1}: subtract 1 from the column")
    return y
