"""The small frames validation runs its expectations on: a feature profile (one row per
feature), a category profile, the class balance per split. Great Expectations checks these,
never the wide data itself (``tasks/stages/validate.py``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.stages.scale import feature_names
from tasks.store.dataset import DatasetSpec, Frame


def feature_profile(frame: Frame) -> pd.DataFrame:
    """One row per feature: dtype kind, nulls, non-finite values, min, max, allowed range."""
    X = frame.X
    with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf is NaN: what this asks about
        clean = X.dtype.kind == "f" and np.isfinite(X.sum(axis=0)).all()
    if clean:  # no NaN, no inf: no masked copies of X
        nan = nonfinite = np.zeros(X.shape[1], dtype=np.int64)
        lo, hi = X.min(axis=0), X.max(axis=0)
    elif X.dtype.kind == "f":
        nan = np.isnan(X).sum(axis=0)
        nonfinite = np.isinf(X).sum(axis=0)
        with np.errstate(all="ignore"):
            finite = np.where(np.isinf(X), np.nan, X)
            lo, hi = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
    else:
        nan = nonfinite = np.zeros(X.shape[1], dtype=np.int64)
        lo, hi = X.min(axis=0), X.max(axis=0)
    return profile_frame(frame.spec, feature_names(frame), X.dtype.kind, nan, nonfinite, lo, hi, len(X))


def profile_frame(spec: DatasetSpec, names: list[str], kind: str, nan: np.ndarray, nonfinite: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray, rows: int) -> pd.DataFrame:
    """The feature profile from its counts and extremes, however they were reduced (a whole
    frame, or row groups merged)."""
    lower = [spec.feature_range(n)[0] for n in spec.features]
    upper = [spec.feature_range(n)[1] for n in spec.features]
    if spec.is_image:  # one range for all pixels
        lower, upper = lower * len(names), upper * len(names)
    # a table's feature with one value in every row (not an image's pixel: a border pixel may be)
    constant = (lo == hi) & (rows > 1) & (not spec.is_image)
    return pd.DataFrame({"kind": kind, "nulls": nan, "nonfinite": nonfinite,
                         "min": lo.astype(float), "max": hi.astype(float),
                         "lower": np.asarray(lower, float), "upper": np.asarray(upper, float),
                         "constant": constant},
                        index=pd.Index(names, name="feature"))


def class_set(spec: DatasetSpec, y: np.ndarray) -> list[int]:
    """The allowed labels: the spec's, or every integer from 0 to the largest seen."""
    if spec.classes is not None:
        return list(spec.classes)
    numeric = pd.to_numeric(pd.Series(y), errors="coerce").dropna()
    return list(range(int(max(numeric.max(), 0)) + 1)) if len(numeric) else [0]


def category_profile(frame: Frame) -> pd.DataFrame:
    """One row per categorical column: its missing cells and its distinct values."""
    text = pd.DataFrame(frame.text, columns=list(frame.spec.categorical))
    return pd.DataFrame({"nulls": text.isna().sum().to_numpy(), "distinct": text.nunique().to_numpy()},
                        index=pd.Index(frame.spec.categorical, name="feature"))


def class_balance(table: pd.DataFrame) -> pd.DataFrame:
    """Per split and class: how far the class share strays from its overall share (``table``:
    a row per data row, its split and target)."""
    return class_balance_of(table.groupby(["split", "target"]).size(), list(table["target"].value_counts().index))


def class_balance_of(counts: pd.Series, order: list | None = None) -> pd.DataFrame:
    """``class_balance`` from rows counted per (split, class), however they were counted.

    The tolerance is 5 points plus four standard errors of a share in a split that size,
    so small random splits are not failed for sampling noise. ``order``: the classes' order in
    the frame (default: most rows first).
    """
    counts = counts[counts > 0]
    overall = counts.groupby(level=1).sum()
    overall = (overall.reindex(order) if order is not None else overall.sort_values(ascending=False, kind="stable"))
    overall = overall / overall.sum()
    rows = []
    for name, part in counts.groupby(level=0):
        part = part.droplevel(0)
        n = part.sum()
        share = (part / n).reindex(overall.index, fill_value=0.0)
        for label, p in overall.items():
            rows.append({"at": f"{name}/{label}", "gap": abs(share[label] - p),
                         "tolerance": 0.05 + 4 * np.sqrt(p * (1 - p) / n)})
    return pd.DataFrame(rows).set_index("at")
