"""Scoring a table larger than memory: predict's checks and scoring a batch of rows at a time.

The same checks as in memory (``tasks/serving/drift.py``), on what one pass over the new rows
reduces: the columns and their types from the file's header (a CSV's first block), then per
feature the moments and the share of values outside training's range, merged over batches, and
the first cell the model cannot score (missing or infinite), named by its row in the whole
table. A second pass scales and scores each batch with the model loaded once, and the store
writes the predictions as row groups. A model's categorical columns are read as text and
tallied per category over the batches (unseen ones, the shares' shift), then one-hot encoded by
its vocabulary as each batch is scored. Chosen as the data stages choose (``--stream``, or by
default when the table's values would take over ``STREAM_BYTES``); a model of images is
scored in memory.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from tasks.checks.gx import run_suites
from tasks.core.errors import OptionError, rows_text, values_text
from tasks.serving.drift import (
    MIN_DRIFT_ROWS,
    NewRows,
    SkewError,
    drift_frame,
    judge_drift,
    scaler_features,
    skew_checks,
    skew_findings,
    training_profile,
)
from tasks.serving.resolve import Trained
from tasks.stages.categories import Vocabulary, merged_tallies
from tasks.stages.scale import StandardScaler
from tasks.stages.streamed import STREAM_BYTES, values_bytes
from tasks.stages.streamed_stats import Moments, batches
from tasks.stages.table import table_kind
from tasks.stages.table_stream import (
    CSV_BLOCK_BYTES,
    as_numbers,
    category_cells,
    csv_blocks,
    is_number_type,
    text_cells,
)
from tasks.store.artifacts import sha256_file
from tasks.store.dataset import read_parquet


def streams_new(path: Path, found: Trained, stream: bool | None) -> bool:
    """Whether predict streams the new table at ``path`` (see the module's text)."""
    if stream is False:
        return False
    scorable = table_kind(path) is not None and not found.spec.is_image
    if stream and not scorable:
        raise OptionError(f"--stream: {path.name} is scored in memory (a model of images, or a file that is "
                          "not a table): run predict without --stream")
    return bool(stream) or (scorable and path.is_file() and (values_bytes(path) or 0) > STREAM_BYTES)


def _header(path: Path) -> dict[str, bool]:
    """Each column of the new table and whether it holds numbers (a CSV's, as its first block reads)."""
    if table_kind(path) == "parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
    else:
        import pyarrow.csv as csv

        schema = csv.open_csv(path, read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES)).schema
    return {f.name: is_number_type(f.type) for f in schema}


def new_batches(path: Path, columns: list[str], categorical: tuple[str, ...] = (), batch_rows: int | None = None
                ) -> Iterator[tuple[np.ndarray, list[pa.Array] | None]]:
    """The new table's ``columns`` as float64 rows (missing cells NaN) and its ``categorical``
    ones as a text array each (None without them), a batch at a time."""
    csv_text = table_kind(path) == "csv"
    if not csv_text:
        read = batches(str(path), [*columns, *categorical], batch_rows)
    else:
        types = {**dict.fromkeys(columns, pa.float64()), **dict.fromkeys(categorical, pa.string())}
        read = csv_blocks(path, types, CSV_BLOCK_BYTES, lambda done: _text_refused(path, columns, done))
    for batch in read:
        X = np.column_stack([as_numbers(batch.column(c)).to_numpy(zero_copy_only=False) for c in columns]) \
            if columns else np.empty((batch.num_rows, 0))
        yield X, [category_cells(batch.column(c), csv_text) for c in categorical] if categorical else None


def _text_refused(path: Path, columns: list[str], done: int) -> SkewError:
    """The error for text in a number column past the first block, naming it and its rows."""
    found = text_cells(path, columns, done)
    what = f"column {found[0]!r} holds text where numbers are expected: {values_text(found[1])} at " \
           f"{rows_text(found[2])}" if found else f"cannot be read as csv after row {done}"
    return SkewError(f"{path.name}: {what}; nothing was scored")


def check_streamed(path: Path, found: Trained, strict: bool, warn, info) -> NewRows:
    """``check_new_data``'s checks on a table read a batch at a time; the rows themselves are read
    again when scored (``streamed_predictions``), so the result holds none."""
    kept = scaler_features(found)
    spec = found.spec.replace(features=tuple(kept))
    header = _header(path)
    given = [c for c in header if c in kept or c not in found.spec.features]
    empty = pd.DataFrame({c: pd.Series([], dtype=np.float64 if header[c] else object) for c in given})
    outcome, _ = run_suites("skew", skew_checks(empty, given, spec))
    if outcome.failures:
        raise SkewError("the new data does not match the training data; nothing was scored:\n"
                        + "\n".join(f"  - {line}" for line in skew_findings(outcome, path.name, given, spec)))
    scaler = StandardScaler.from_arrow(read_parquet(found.scaler.path))
    seen = training_profile(found, scaler)
    width, imputing, categorical = len(kept), spec.missing == "impute", spec.categorical
    vocabulary = Vocabulary.from_arrow(read_parquet(found.vocabulary.path)) if found.vocabulary else None
    moments, outside = Moments(0, np.zeros(width), np.zeros(width)), np.zeros(width)
    rows, unscorable, first, tallies = 0, 0, None, None
    for X, text in new_batches(path, kept, categorical):
        broken = np.isinf(X) | (np.isnan(X) & (not imputing))
        if text is not None and not imputing:
            broken = np.column_stack([broken, *(values.is_null().to_numpy(zero_copy_only=False) for values in text)])
        if broken.any():
            unscorable += int(broken.sum())
            if first is None:
                at, column = np.nonzero(broken)
                first = (rows + at[0], [*kept, *categorical][column[0]])
        elif vocabulary is not None:
            tally = vocabulary.tally(text)
            tallies = tally if tallies is None else merged_tallies(tallies, tally)
        filled = scaler.filled(X)
        moments = moments.merged(Moments.of(filled))
        outside += ((filled < seen.low) | (filled > seen.high)).sum(axis=0)
        rows += len(X)
    if unscorable:
        raise SkewError(f"{path.name}: {unscorable} missing or infinite value(s), e.g. column {first[1]!r} at row "
                        f"{first[0] + 1}; the model cannot score them: nothing was scored")
    drift = drift_frame(moments.mean, moments.std, outside / rows, seen, kept) if rows >= MIN_DRIFT_ROWS else None
    categories = (tallies, vocabulary) if vocabulary is not None and tallies is not None else None
    unseen = judge_drift(path.name, rows, drift, categories, strict, warn, info)
    return NewRows(np.empty((0, width)), None, f"{path.name}:{sha256_file(path)}", unseen)


def streamed_predictions(found: Trained, path: Path, score: Callable[..., pa.Table]) -> Iterator[pa.RecordBatch]:
    """The predictions of the new table at ``path``, a batch of rows at a time, in its row order:
    ``score(found, rows, model, first)`` (``predict.predictions``) with the model loaded once."""
    from tasks.model import files as model_files

    model, first = model_files.load(found.model.path), 0
    for X, text in new_batches(path, scaler_features(found), found.spec.categorical):
        yield from score(found, NewRows(X, text, ""), model, first).to_batches()
        first += len(X)
