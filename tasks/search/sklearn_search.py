"""The course's scikit-learn path: ``RandomizedSearchCV(cv=3)`` over a registry estimator,
and its siblings ``GridSearchCV`` and ``HalvingRandomSearchCV`` (epochs as the resource).

As in the course, the search cross-validates on the train split only (3 folds; each fit
watches the valid split for EarlyStopping and its checkpoint), and chooses by the mean
fold score: minus the MSE for regression, accuracy for classification. The test split is
not read here. The chosen configuration is then trained by the ordinary training stage
and scored once on test by the flow. The whole search is one cached stage: its artifact
is scikit-learn's ``cv_results_`` table, and its rows feed the search's trial table.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.environment import environment
from tasks.core.params import TrainParams
from tasks.search.plan import SKLEARN_STRATEGIES, thread_limits
from tasks.search.space import Dimension, Space
from tasks.search.trials import Status, TrialRow
from tasks.store.artifacts import ArtifactRef, ArtifactStore
from tasks.store.dataset import Frame, read_frame
from tasks.store.stage import StageRun, reported

FOLDS = 3  # the course's cv (RandomizedSearchCV's default)


def distribution(dim: Dimension):
    """A space dimension as the scipy distribution (or list) scikit-learn samples from."""
    from scipy import stats

    if dim.kind == "choice":
        return list(dim.choices)
    if dim.kind == "int":
        return stats.randint(int(dim.low), int(dim.high) + 1)
    if dim.kind == "loguniform":  # the course's scipy.stats.reciprocal
        return stats.loguniform(dim.low, dim.high)
    return stats.uniform(dim.low, dim.high - dim.low)


def estimator_for(fixed: TrainParams, task: str, scale_target: bool = False):
    """The registry estimator with the search's fixed training settings (``scale_target``: a
    regressor learns each fold's target standardised on that fold's train rows)."""
    from tasks.search.estimator import RegistryClassifier, RegistryRegressor

    kind = RegistryRegressor if task == "regression" else RegistryClassifier
    return kind(model=fixed.model, epochs=fixed.epochs, batch_size=fixed.batch_size, seed=fixed.seed,
                scale_target=scale_target,
                patience=fixed.patience, min_delta=fixed.min_delta, steps_per_execution=fixed.steps_per_execution, **{
                    name: getattr(fixed, name) for name in
                    ("learning_rate", "optimizer", "depth", "width", "activation", "initializer", "schedule")})


def _epochs(estimator, X, y) -> float:
    """A scorer that reads how many epochs a fold's fit ran (it scores nothing)."""
    return float(len(estimator.history_)) if estimator.history_ is not None else 0.0


def make_search(strategy: str, space: Space, estimator, *, n_iter: int, seed: int, grid_points: int,
                min_epochs: int, reduction_factor: int, workers: int = 1):
    """The scikit-learn search object of ``strategy`` (refit is the flow's training stage)."""
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    common = {"cv": FOLDS, "refit": False, "error_score": "raise", "n_jobs": workers if workers > 1 else None,
              "verbose": 2}  # a line per fit as it ends: the search's progress
    scoring = {"score": lambda est, X, y: est.score(X, y), "epochs": _epochs}
    if strategy == "sklearn-random":
        return RandomizedSearchCV(estimator, {d.name: distribution(d) for d in space}, n_iter=n_iter,
                                  random_state=seed, scoring=scoring, **common)
    if strategy == "sklearn-grid":
        return GridSearchCV(estimator, {d.name: d.points(grid_points) for d in space}, scoring=scoring, **common)
    if strategy == "sklearn-halving":
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingRandomSearchCV

        return HalvingRandomSearchCV(estimator, {d.name: distribution(d) for d in space}, n_candidates=n_iter,
                                     resource="epochs", min_resources=min_epochs, max_resources=estimator.epochs,
                                     factor=reduction_factor, random_state=seed, **common)
    raise ValueError(f"unknown scikit-learn strategy {strategy!r}; choose from {', '.join(SKLEARN_STRATEGIES)}")


def _worker_threads(workers: int):
    """Fits in ``workers`` processes (joblib's loky) get their share of the cores: the
    variables are read by TensorFlow in each worker as it starts, not by this process."""
    return environment(thread_limits(workers) if workers > 1 else {})


def cross_validate(scaled: Frame, search) -> dict[str, Any]:
    """Run ``search`` on the train split, each fit watching the valid split; ``cv_results_``."""
    train, valid = scaled.part("train"), scaled.part("valid")
    with warnings.catch_warnings(), _worker_threads(search.n_jobs or 1):
        # a diverged fit scores NaN and is ranked last: the trial table says so, row by row
        warnings.filterwarnings("ignore", message="One or more of the test scores are non-finite")
        search.fit(train.inputs(), train.y, validation_data=(valid.inputs(), valid.y))
    return search.cv_results_


def trial_rows(results: dict[str, Any], space: Space, halving: bool, task: str) -> list[TrialRow]:
    """One row per candidate (per rung for halving), in the shape of the search's trial table.
    ``val_loss`` is what the choice minimises: the folds' mean MSE (minus the score), or for
    a classifier its error rate (1 - accuracy); ``epochs_run`` counts all folds' epochs."""
    rows = []
    for i, params in enumerate(results["params"]):
        mean = float(results["mean_test_score"][i])  # the scorer named "score" (or the only one)
        epochs = results["n_resources"][i] if halving else results["mean_test_epochs"][i]
        finite = bool(np.isfinite(mean))
        rows.append(TrialRow(
            i + 1, {d.name: _plain(params[d.name]) for d in space}, Status.OK if finite else Status.DIVERGED,
            val_loss=-mean if task == "regression" else 1 - mean, cv_score=mean,
            epochs_run=int(round(epochs * FOLDS)), seconds=round(float(results["mean_fit_time"][i]) * FOLDS, 2),
            reason="" if finite else "a fold's training diverged (NaN score)",
            rung=int(results["iter"][i]) + 1 if halving else None,
            budget=int(results["n_resources"][i]) if halving else None))
    if halving:  # a candidate is chosen from the last rung only, as scikit-learn does
        last = max(r.rung for r in rows)
        for n, row in enumerate(rows):
            if row.rung < last and row.status is Status.OK:
                again = any(r.rung == row.rung + 1 and r.params == row.params for r in rows)
                rows[n] = dataclasses.replace(row, status=Status.PROMOTED if again else Status.PRUNED)
    return rows


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _table(results: dict[str, Any], space: Space) -> pa.Table:
    """``cv_results_`` as a table: its numeric columns, and one typed column per parameter."""
    columns = {f"param_{d.name}": [_plain(p[d.name]) for p in results["params"]] for d in space}
    columns.update({name: np.asarray(values, dtype=float) for name, values in results.items()
                    if name != "params" and not name.startswith("param_")})
    return pa.table(columns)


def _results(table: pa.Table, space: Space) -> dict[str, Any]:
    results = table.to_pydict()
    results["params"] = [{d.name: value for d, value in zip(space, values)}
                         for values in zip(*(results[f"param_{d.name}"] for d in space))]
    return results


@task(name="sklearn-search", cache_policy=NO_CACHE)
def sklearn_search_task(scaled: ArtifactRef, strategy: str, space: Space, fixed: TrainParams, task: str,
                        options: dict[str, int], artifacts: str, force: bool = False, workers: int = 1
                        ) -> list[TrialRow]:
    """scikit-learn's search on the scaled train split; its ``cv_results_`` as an artifact."""
    from tasks.store.dataset import read_parquet

    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        frame = read_frame(scaled.path)
        estimator = estimator_for(fixed, task, scale_target=frame.spec.target_scaling is not None)
        search = make_search(strategy, space, estimator, workers=workers, **options)
        return {"cv_results": run.put_table(_table(cross_validate(frame, search), space))}

    params = {"strategy": strategy, "space": [dataclasses.asdict(d) for d in space],
              "train": dataclasses.asdict(fixed), **options}
    run = StageRun(ArtifactStore(artifacts), "cv-results", __name__, parents=[scaled], params=params,
                   seed=fixed.seed)
    ref = run.run(produce, force)["cv_results"]
    rows = trial_rows(_results(read_parquet(ref.path), space), space, strategy == "sklearn-halving", task)
    return reported(rows, run)
