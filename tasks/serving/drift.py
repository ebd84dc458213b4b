"""Checks of new data against the training data, before a model scores it.

Both are Great Expectations suites on small profile frames (as the raw validation):
- **skew**, a hard failure: the new table must have the training data's feature columns, as
  numbers (its categorical columns as they come), with no infinite values, and no missing ones
  unless training imputed them. It names the missing, extra and text columns.
- **drift**, a warning (a failure with ``strict``): per feature, the new mean in training
  standard deviations from the training mean, the spread against training's, and the share of
  values outside the training range, each against ``DRIFT``; per categorical column, the rows
  of a category training never saw (scored as unseen) and how far the categories' shares moved.
Training's profile comes from the train rows of the raw artifact (the scaler holds their mean
and std; the vocabulary, each category's train rows); a streamed table's, from its scaler artifact.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.checks.gx import Check, expect, run_suites
from tasks.core.errors import DataError, OptionError, values_text
from tasks.serving.resolve import Trained
from tasks.stages.categories import Vocabulary
from tasks.stages.scale import StandardScaler, column_moments, feature_names
from tasks.stages.scale_stream import StreamedScale
from tasks.stages.table import read_table_file, table_kind
from tasks.store.artifacts import sha256_file
from tasks.store.dataset import DatasetSpec, is_streamed, read_frame, read_index, read_parquet

IGNORED = ("split", "row_id")  # columns a held-out table may carry that are not features


@dataclass(frozen=True)
class DriftTolerance:
    mean_shift: float = 0.5  # |new mean - training mean| / training std
    spread: tuple[float, float] = (0.5, 2.0)  # new std / training std
    outside: float = 0.02  # share of values outside the training range
    least_std: float = 0.05  # of a feature's training range: spreads below it count as this (rare pixels)
    category_shift: float = 0.2  # total variation distance between new and training category shares


DRIFT = DriftTolerance()
MIN_DRIFT_ROWS = 30


class SkewError(DataError):
    """The new data is not shaped like the training data: nothing was scored."""


class DriftError(DataError):
    """The new data drifted from training (a failure only with --strict)."""


# ---- the new data ------------------------------------------------------------------------
def read_new(path: Path, spec: DatasetSpec) -> tuple[pd.DataFrame | np.ndarray, list[str]]:
    """The new rows: a table (CSV, Parquet) as a DataFrame, or idx images as an array."""
    if not path.is_file():
        raise OptionError(f"--data {path}: no such file")
    name = path.name.lower()
    kind = table_kind(path)
    if kind is None and not (name.endswith(".gz") or "ubyte" in name):
        raise OptionError(f"--data {path}: expected .csv, .parquet or idx images (.gz)")
    if kind is None and not spec.is_image:
        raise SkewError(f"{path.name}: idx images, but the model was trained on the table {spec.name!r}")
    if kind is not None:
        df = read_table_file(path)
        return df, list(map(str, df.columns))
    from tasks.stages.load import parse_idx

    try:
        blob = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path.name}: cannot be read as idx images ({type(error).__name__}: {error})") from None
    images = parse_idx(blob, path.name, ndim=1 + len(spec.image_shape))
    return images.reshape(len(images), -1), []


def expected_columns(spec: DatasetSpec) -> list[str]:
    """The columns a new table must have: the numeric features, then the categorical ones."""
    return [*spec.features, *spec.categorical] if not spec.is_image else \
        [f"{spec.features[0]}[{i}]" for i in range(int(np.prod(spec.image_shape)))]


def skew_checks(data, given: list[str], spec: DatasetSpec) -> list[Check]:
    """Columns present and numeric (a table); an array of images has its width checked."""
    if isinstance(data, np.ndarray):
        width = pd.DataFrame({"values": [data.shape[1]]}, index=pd.Index(["image"], name="column"))
        return [Check("image size", width, [expect("ExpectColumnValuesToBeInSet", column="values",
                                                    value_set=[int(np.prod(spec.image_shape))])], "column")]
    wanted = expected_columns(spec)
    ignored = {spec.target, *IGNORED}
    names = sorted(set(wanted) | {c for c in given if c not in ignored}, key=lambda c: (c not in wanted, c))
    numeric = [c not in given or c in spec.categorical or pd.api.types.is_numeric_dtype(data[c]) for c in names]
    frame = pd.DataFrame({"trained": [c in wanted for c in names], "given": [c in given for c in names],
                          "numeric": numeric}, index=pd.Index(names, name="column"))
    return [Check("columns", frame, [
        expect("ExpectColumnPairValuesToBeEqual", column_A="trained", column_B="given"),
        expect("ExpectColumnValuesToBeInSet", column="numeric", value_set=[True])], "column")]


def features_of(data, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """The numeric features (float64) and the categorical columns' values (None where missing)."""
    if isinstance(data, np.ndarray):
        return data, None
    from tasks.stages.table import category_text

    text = np.column_stack([category_text(data[c]) for c in spec.categorical]) if spec.categorical else None
    X = data[list(spec.features)].to_numpy(dtype=np.float64) if spec.features else np.empty((len(data), 0))
    return X, text


@dataclass(frozen=True)
class TrainingProfile:
    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray


def training_profile(found: Trained, scaler: StandardScaler | None = None) -> TrainingProfile:
    """What training saw, per numeric feature it kept: the train rows' mean, std and range (the
    scaler saw the same rows; its scale is 1 where a column was constant, which is not that
    column's spread), with missing values imputed as the model saw them."""
    table = read_parquet(found.scaler.path)
    scaler = scaler or StandardScaler.from_arrow(table)
    if "train_low" in table.column_names:  # a streamed table's: kept beside its scaler (scale_stream.py)
        return TrainingProfile(table["mean"].to_numpy(), table["train_std"].to_numpy(), table["train_low"].to_numpy(),
                               table["train_high"].to_numpy())
    if is_streamed(found.raw):  # a table larger than memory: the train rows' moments merged over row groups
        seen = StreamedScale(found.raw.path, found.split.path)
        kept = np.isin(seen.names, scaler_features(found))
        return TrainingProfile(seen.train_moments.mean[kept], seen.train_moments.std[kept], seen.low[kept],
                               seen.high[kept])
    raw, index = read_frame(found.raw.path), read_index(found.split.path)
    train = np.isin(raw.row_id, index.row_id[index.split == "train"])
    kept = np.isin(feature_names(raw), scaler_features(found))
    X = scaler.filled(raw.X[train][:, kept])
    mean, std = column_moments(X)
    return TrainingProfile(mean, std, X.min(axis=0).astype(float), X.max(axis=0).astype(float))


def category_checks(tallies: list, vocabulary: Vocabulary, judge_shift: bool) -> tuple[list[Check], pd.DataFrame]:
    """Per categorical column (``tallies``: ``Vocabulary.tally`` of the new rows): new rows of
    categories training never saw, and (``judge_shift``) the total variation distance between
    the new and the train rows' category shares."""
    rows = []
    for (counts, unseen), seen in zip(tallies, vocabulary.train_rows):
        new = counts / max(counts.sum(), 1)
        rows.append({"unseen": int(counts[0]), "examples": ", ".join(map(repr, sorted(unseen))),
                     "shift": 0.5 * float(np.abs(new - seen / max(seen.sum(), 1)).sum())})
    profile = pd.DataFrame(rows, index=pd.Index(vocabulary.columns, name="feature"))
    expectations = [expect("ExpectColumnValuesToBeBetween", column="unseen", max_value=0)]
    if judge_shift:
        expectations.append(expect("ExpectColumnValuesToBeBetween", column="shift", max_value=DRIFT.category_shift))
    return [Check("categories", profile, expectations, "feature")], profile


def drift_profile(X: np.ndarray, seen: TrainingProfile, names: list[str]) -> pd.DataFrame:
    return drift_frame(X.mean(axis=0), X.std(axis=0), ((X < seen.low) | (X > seen.high)).mean(axis=0), seen, names)


def drift_frame(mean: np.ndarray, std: np.ndarray, outside: np.ndarray, seen: TrainingProfile,
                names: list[str]) -> pd.DataFrame:
    """The drift profile from the new rows' means, stds and shares outside training's range."""
    least = DRIFT.least_std * np.maximum(seen.high - seen.low, 1e-12)
    train_std = np.maximum(seen.std, least)
    return pd.DataFrame({"mean": mean, "train_mean": seen.mean, "mean_shift": np.abs(mean - seen.mean) / train_std,
                         "spread": np.maximum(std, least) / train_std, "outside": outside},
                        index=pd.Index(names, name="feature"))


def drift_checks(profile: pd.DataFrame) -> list[Check]:
    return [Check("drift", profile, [
        expect("ExpectColumnValuesToBeBetween", column="mean_shift", max_value=DRIFT.mean_shift),
        expect("ExpectColumnValuesToBeBetween", column="spread", min_value=DRIFT.spread[0], max_value=DRIFT.spread[1]),
        expect("ExpectColumnValuesToBeBetween", column="outside", max_value=DRIFT.outside)], "feature")]


def skew_findings(outcome, file: str, given: list[str], spec: DatasetSpec) -> list[str]:
    lines = []
    for failure in outcome.failures:
        if failure.check == "image size":
            lines.append(f"images of {failure.values[0]} values; the model was trained on "
                         f"{failure.kwargs['value_set'][0]}")
        elif failure.column == "numeric":
            several = failure.count > 1
            lines.append(f"column{'s' if several else ''} {values_text(failure.index)} "
                         f"hold{'' if several else 's'} text where numbers are expected")
        else:
            wanted = set(expected_columns(spec))  # all of them: the failure lists only the first few
            missing = [c for c in expected_columns(spec) if c not in given]
            extra = [c for c in given if c not in wanted and c not in (spec.target, *IGNORED)]
            if missing:
                lines.append(f"missing column{'s' if len(missing) > 1 else ''} {values_text(missing)} "
                             "(the model was trained on them)")
            if extra:
                lines.append(f"column{'s' if len(extra) > 1 else ''} {values_text(extra)} "
                             "not in the training data (rename or drop them)")
    return [f"{file}: {line}" for line in lines]


def _drift_findings(failure, profile: pd.DataFrame, rows: int = 0) -> list[str]:
    """The lines for one failed drift expectation: a line per feature it names (five at most)."""
    said = {"unseen": f"{{unseen}} of {rows} rows hold categories training never saw ({{examples}}): scored as "
                      "unseen",
            "shift": f"its categories' shares moved by {{shift:.2f}} (total variation; tolerance "
                     f"{DRIFT.category_shift})",
            "mean_shift": "mean {mean:.4g} is {mean_shift:.2f} training standard deviations from training's "
                          f"{{train_mean:.4g}} (tolerance {DRIFT.mean_shift})",
            "spread": f"spread is {{spread:.2f}}x training's (tolerance {DRIFT.spread[0]}..{DRIFT.spread[1]})",
            "outside": f"{{outside:.1%}} of its values lie outside the training range (tolerance {DRIFT.outside:.0%})"}
    names = failure.index[:5]
    lines = [f"feature {name}: " + said[failure.column].format(**profile.loc[name].to_dict()) for name in names]
    if failure.count > len(names):
        lines.append(f"... and {failure.count - len(names)} more features ({failure.column})")
    return lines


@dataclass(frozen=True)
class NewRows:
    """New rows that passed the checks: numeric features, categorical values, the file's identity
    and, per categorical column, the rows of categories training never saw."""

    X: np.ndarray
    text: np.ndarray | list | None  # (a text array per column, when streamed)
    identity: str
    unseen: dict[str, int] | None = None


def check_new_data(path: Path, found: Trained, strict: bool, warn, info) -> NewRows:
    """The new rows' features in training's order, after the skew and drift checks (drift is
    not judged on fewer than ``MIN_DRIFT_ROWS`` rows: their mean and spread say too little; a
    category training never saw is reported at any count)."""
    kept = scaler_features(found)  # a table's columns training dropped (--drop-constant) are not asked for
    spec = found.spec if found.spec.is_image else found.spec.replace(features=tuple(kept))
    data, given = read_new(path, spec)
    if isinstance(data, pd.DataFrame):
        given = [c for c in given if c in kept or c not in found.spec.features]
        data = data[given]
    outcome, _ = run_suites("skew", skew_checks(data, given, spec))
    if outcome.failures:
        raise SkewError("the new data does not match the training data; nothing was scored:\n"
                        + "\n".join(f"  - {line}" for line in skew_findings(outcome, path.name, given, spec)))
    X, text = features_of(data, spec)
    _refuse_unscorable(X, text, spec, path.name)
    scaler = StandardScaler.from_arrow(read_parquet(found.scaler.path))
    identity = f"{path.name}:{sha256_file(path)}"
    enough = len(X) >= MIN_DRIFT_ROWS
    drift = drift_profile(scaler.filled(X), training_profile(found, scaler), kept) if enough else None
    vocabulary = Vocabulary.from_arrow(read_parquet(found.vocabulary.path)) if found.vocabulary else None
    categories = (vocabulary.tally(text), vocabulary) if vocabulary else None
    return NewRows(X, text, identity, judge_drift(path.name, len(X), drift, categories, strict, warn, info))


def judge_drift(file: str, rows: int, drift: pd.DataFrame | None, categories: tuple[list, Vocabulary] | None,
                strict: bool, warn, info) -> dict[str, int] | None:
    """Judge the new rows' ``drift`` profile (None under ``MIN_DRIFT_ROWS`` rows: not judged, said) and
    ``categories`` (their ``Vocabulary.tally`` and training's vocabulary: an unseen category is said at any
    count); a failure warns, or (``strict``) is raised. Returns each categorical column's unseen rows."""
    checks, profiles, unseen = [], {}, None
    if drift is not None:
        profiles["drift"] = drift
        checks += drift_checks(drift)
    else:
        info(f"{file}: {rows} rows, too few to judge drift (fewer than {MIN_DRIFT_ROWS}); skew checked")
    if categories is not None:
        category, profiles["categories"] = category_checks(*categories, drift is not None)
        checks += category
        unseen = {str(k): int(v) for k, v in profiles["categories"]["unseen"].items()}
    outcome, _ = run_suites("drift", checks) if checks else (None, 0)
    if outcome is not None and outcome.failures:
        message = f"{file} drifted from the training data:\n" + "\n".join(
            f"  - {line}" for failure in outcome.failures for line in
            _drift_findings(failure, profiles[failure.check], rows))
        if strict:
            raise DriftError(message + "\n(--strict: nothing was scored)")
        warn(message)
    return unseen


def scaler_features(found: Trained) -> list[str]:
    """The numeric features the model takes, in order (the scaler's: without dropped constants)."""
    return [str(name) for name in read_parquet(found.scaler.path)["feature"].to_pylist()]


def _refuse_unscorable(X: np.ndarray, text: np.ndarray | None, spec: DatasetSpec, file: str) -> None:
    """Infinite numbers, and missing values where training did not impute them: nothing is scored."""
    imputing = spec.missing == "impute"
    bad = np.isinf(X.astype(float)) | (np.isnan(X.astype(float)) & (not imputing))
    names = list(spec.features)
    if text is not None and not imputing:
        bad, names = np.concatenate([bad, text == None], axis=1), [*names, *spec.categorical]  # noqa: E711
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise SkewError(f"{file}: {bad.sum()} missing or infinite value(s), e.g. column "
                        f"{names[cols[0]]!r} at row {rows[0] + 1}; the model cannot score them: nothing was scored")
