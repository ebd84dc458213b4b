"""scikit-learn's searches over the registry estimator: distributions, search objects, trial rows, the stored table."""
from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import GridSearchCV, HalvingRandomSearchCV, ParameterSampler, RandomizedSearchCV

from tasks.core.params import TrainParams
from tasks.search.estimator import RegistryClassifier, RegistryRegressor
from tasks.search.sklearn_search import (
    FOLDS,
    _results,
    _table,
    cross_validate,
    distribution,
    estimator_for,
    make_search,
    trial_rows,
)
from tasks.search.space import Dimension, parse_space
from tasks.search.trials import Status, best_row

SPACE = parse_space("depth=int(1,4) learning_rate=loguniform(1e-4,1e-2) optimizer=choice(sgd,adam)")
OPTIONS = {"n_iter": 5, "seed": 3, "grid_points": 2, "min_epochs": 2, "reduction_factor": 3}


def test_a_choice_is_the_list_of_its_values():
    assert distribution(Dimension("optimizer", "choice", choices=("sgd", "adam"))) == ["sgd", "adam"]


def test_an_int_range_includes_both_ends():
    depth = distribution(Dimension("depth", "int", 1, 4))
    assert depth.support() == (1, 4)
    assert set(depth.rvs(500, random_state=0)) == {1, 2, 3, 4}


def test_a_loguniform_range_spreads_evenly_over_the_decades_and_a_uniform_one_over_the_values():
    rate = distribution(Dimension("learning_rate", "loguniform", 1e-4, 1e-2))
    assert rate.support() == pytest.approx((1e-4, 1e-2))
    assert rate.ppf(0.5) == pytest.approx(1e-3)  # the course's reciprocal: as many draws per decade
    linear = distribution(Dimension("learning_rate", "uniform", 1e-3, 1e-2))
    assert linear.support() == pytest.approx((1e-3, 1e-2)) and linear.ppf(0.5) == pytest.approx(5.5e-3)


def test_scikit_learn_draws_every_dimension_inside_the_space():
    draws = list(ParameterSampler({d.name: distribution(d) for d in SPACE}, n_iter=40, random_state=0))
    assert {type(p["depth"]) for p in draws} <= {int, np.int64} and {p["depth"] for p in draws} <= {1, 2, 3, 4}
    assert all(1e-4 <= p["learning_rate"] <= 1e-2 for p in draws)
    assert {p["optimizer"] for p in draws} == {"sgd", "adam"}


def test_the_estimator_carries_the_searchs_fixed_settings():
    fixed = TrainParams("mlp30", epochs=7, batch_size=64, seed=5, patience=2, min_delta=0.01, width=20)
    regressor = estimator_for(fixed, "regression")
    assert isinstance(regressor, RegistryRegressor)
    assert (regressor.model, regressor.epochs, regressor.batch_size, regressor.seed, regressor.patience,
            regressor.min_delta, regressor.width, regressor.depth) == ("mlp30", 7, 64, 5, 2, 0.01, 20, None)
    assert isinstance(estimator_for(TrainParams("mlp", epochs=3), "classification"), RegistryClassifier)


def test_random_search_samples_the_space_with_the_courses_three_folds_and_no_refit():
    estimator = RegistryRegressor(epochs=9)
    search = make_search("sklearn-random", SPACE, estimator, **OPTIONS)
    assert isinstance(search, RandomizedSearchCV) and search.estimator is estimator
    assert (search.cv, FOLDS, search.refit, search.error_score) == (3, 3, False, "raise")
    assert (search.n_iter, search.random_state, search.n_jobs) == (5, 3, None)
    assert list(search.param_distributions) == ["depth", "learning_rate", "optimizer"]
    assert set(search.scoring) == {"score", "epochs"}  # the fold score, and how many epochs the fold ran
    assert make_search("sklearn-random", SPACE, estimator, workers=2, **OPTIONS).n_jobs == 2


def test_grid_search_runs_the_spaces_grid_points():
    search = make_search("sklearn-grid", SPACE, RegistryRegressor(epochs=9), **OPTIONS)
    assert isinstance(search, GridSearchCV) and (search.cv, search.refit) == (3, False)
    assert search.param_grid == {"depth": [1, 4], "learning_rate": [1e-4, 1e-2], "optimizer": ["sgd", "adam"]}


def test_halving_search_spends_epochs_from_the_first_rung_to_the_estimators_epochs():
    search = make_search("sklearn-halving", SPACE, RegistryRegressor(epochs=18), **OPTIONS)
    assert isinstance(search, HalvingRandomSearchCV) and (search.cv, search.refit) == (3, False)
    assert (search.resource, search.min_resources, search.max_resources, search.factor, search.n_candidates) == (
        "epochs", 2, 18, 3, 5)


def test_an_unknown_scikit_learn_strategy_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown scikit-learn strategy 'sklearn-bayes'; choose from sklearn-random, "
                                         "sklearn-grid, sklearn-halving"):
        make_search("sklearn-bayes", SPACE, RegistryRegressor(), **OPTIONS)


def _results_of(scores: list[float], **columns) -> dict:
    """A ``cv_results_``-shaped dict (as scikit-learn gives it: numpy values) for ``SPACE``."""
    params = [{"depth": np.int64(1 + n % 4), "learning_rate": float(10 ** -(2 + n % 3)),
               "optimizer": ("sgd", "adam")[n % 2]} for n in range(len(scores))]
    return {"params": params, "mean_test_score": np.array(scores), "mean_fit_time": np.full(len(scores), 1.5),
            **{k: np.asarray(v) for k, v in columns.items()}}


def test_a_regression_trial_minimises_minus_the_fold_score_and_counts_all_folds_epochs():
    results = _results_of([-0.41, np.nan, -0.35], mean_test_epochs=[10.0, 2.0, 7 + 2 / 3])
    rows = trial_rows(results, SPACE, halving=False, task="regression")
    assert [r.trial for r in rows] == [1, 2, 3]
    assert [r.status for r in rows] == [Status.OK, Status.DIVERGED, Status.OK]
    assert rows[0].val_loss == pytest.approx(0.41) and rows[0].cv_score == -0.41
    assert [r.epochs_run for r in rows] == [30, 6, 23] and rows[0].seconds == 4.5  # 3 folds each
    assert rows[1].reason == "a fold's training diverged (NaN score)" and math.isnan(rows[1].val_loss)
    assert rows[0].rung is None and rows[0].budget is None and "rung" not in rows[0].record()
    assert rows[0].params == {"depth": 1, "learning_rate": 0.01, "optimizer": "sgd"}
    assert type(rows[0].params["depth"]) is int  # plain Python, not numpy: the table and Prefect take it
    assert best_row(rows).trial == 3


def test_a_classification_trial_minimises_the_error_rate():
    rows = trial_rows(_results_of([0.82, 0.9], mean_test_epochs=[4.0, 4.0]), SPACE, halving=False,
                      task="classification")
    assert [r.val_loss for r in rows] == pytest.approx([0.18, 0.1]) and [r.cv_score for r in rows] == [0.82, 0.9]
    assert best_row(rows).trial == 2


def test_halving_rows_name_their_rung_and_budget_and_only_the_last_rung_can_be_best():
    a, b, c, d = ({"depth": depth, "learning_rate": 1e-3, "optimizer": "adam"} for depth in (1, 2, 3, 4))
    results = {"params": [a, b, c, d, a, c, c], "iter": np.array([0, 0, 0, 0, 1, 1, 2]),
               "n_resources": np.array([2, 2, 2, 2, 6, 6, 18]),
               "mean_test_score": np.array([-0.6, -0.9, -0.5, np.nan, -0.45, -0.40, -0.38]),
               "mean_fit_time": np.ones(7)}
    rows = trial_rows(results, SPACE, halving=True, task="regression")
    assert [(r.rung, r.budget) for r in rows] == [(1, 2), (1, 2), (1, 2), (1, 2), (2, 6), (2, 6), (3, 18)]
    assert [r.status for r in rows] == [Status.PROMOTED, Status.PRUNED, Status.PROMOTED, Status.DIVERGED,
                                        Status.PRUNED, Status.PROMOTED, Status.OK]
    assert [r.epochs_run for r in rows] == [6, 6, 6, 6, 18, 18, 54]  # the rung's epochs, for each of 3 folds
    assert rows[3].reason == "a fold's training diverged (NaN score)"
    assert best_row(rows) is rows[6]  # a lower loss on an earlier rung does not count: fewer epochs
    assert list(rows[0].record())[-3:] == ["rung", "budget", "cv_score"]


def _records(rows) -> list[dict]:
    """The rows as the trial table holds them, NaN written as None so that equal rows compare equal."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.record().items()} for r in rows]


def test_the_results_table_round_trips_through_parquet_with_typed_parameters(tmp_path):
    results = _results_of([-0.4, -0.5, np.nan], mean_test_epochs=[3.0, 3.0, 1.0], rank_test_score=[1, 2, 3])
    pq.write_table(_table(results, SPACE), tmp_path / "cv_results.parquet")
    table = pq.read_table(tmp_path / "cv_results.parquet")
    assert {"param_depth", "param_learning_rate", "param_optimizer", "mean_test_score"} <= set(table.column_names)
    back = _results(table, SPACE)
    assert back["params"] == [{k: (int(v) if k == "depth" else v) for k, v in p.items()} for p in results["params"]]
    assert [type(v) for v in back["params"][0].values()] == [int, float, str]
    np.testing.assert_array_equal(back["mean_test_score"], results["mean_test_score"])
    assert back["rank_test_score"] == [1.0, 2.0, 3.0]
    assert _records(trial_rows(back, SPACE, False, "regression")) == _records(
        trial_rows(results, SPACE, False, "regression"))


@pytest.fixture(scope="module")
def searched(small_housing):
    """A real random search: 2 candidates x 3 folds of 1 epoch, on the train split of the housing
    slice whose test rows are NaN (the search must never read them: the estimator refuses NaN)."""
    poisoned = small_housing.take(np.arange(len(small_housing)))
    poisoned.X = poisoned.X.copy()
    poisoned.X[poisoned.split == "test"] = np.nan
    space = parse_space("width=int(4,16) learning_rate=loguniform(1e-3,1e-2)")
    estimator = estimator_for(TrainParams("mlp30", epochs=1, batch_size=64), "regression")
    search = make_search("sklearn-random", space, estimator, n_iter=2, seed=1, grid_points=2, min_epochs=1,
                         reduction_factor=3)
    return space, cross_validate(poisoned, search)


@pytest.mark.slow
def test_a_real_search_scores_each_candidate_on_three_folds_of_the_train_split(searched):
    space, results = searched
    assert len(results["params"]) == 2 and all(f"split{k}_test_score" in results for k in range(FOLDS))
    rows = trial_rows(results, space, halving=False, task="regression")
    assert [r.status for r in rows] == [Status.OK, Status.OK]
    for row, score in zip(rows, results["mean_test_score"]):
        assert 0 < row.val_loss == -score and row.epochs_run == 3 and row.seconds > 0  # 1 epoch on each fold
        assert 4 <= row.params["width"] <= 16 and 1e-3 <= row.params["learning_rate"] <= 1e-2


@pytest.mark.slow
def test_a_real_searchs_results_round_trip_through_parquet(searched, tmp_path):
    space, results = searched
    pq.write_table(_table(results, space), tmp_path / "cv_results.parquet")
    back = _results(pq.read_table(tmp_path / "cv_results.parquet"), space)
    assert back["params"] == [{k: v.item() if isinstance(v, np.generic) else v for k, v in p.items()}
                              for p in results["params"]]
    assert _records(trial_rows(back, space, False, "regression")) == _records(
        trial_rows(results, space, False, "regression"))
