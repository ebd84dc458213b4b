"""The registry estimator under scikit-learn's own tools, on a slice of the real housing data."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import randint
from sklearn.base import clone
from sklearn.model_selection import RandomizedSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tasks.search.estimator import RegistryClassifier, RegistryRegressor


@pytest.fixture(scope="module")
def rows(housing):
    return housing.X[:1_500].astype(np.float32), housing.y[:1_500].astype(np.float32)


def test_clone_and_the_params_round_trip_keep_every_setting():
    est = RegistryRegressor(epochs=3, depth=2, width=17, learning_rate=3e-3, patience=10, min_delta=0.0, seed=7)
    params = est.get_params()
    assert params["epochs"] == 3 and params["width"] == 17 and params["model"] is None
    copy = clone(est)
    assert copy is not est and copy.get_params() == params
    copy.set_params(width=50, learning_rate=1e-2)
    assert (copy.width, copy.learning_rate, est.width) == (50, 1e-2, 17)
    assert RegistryRegressor(**params).get_params() == params


def test_in_a_pipeline_it_fits_scores_minus_the_mse_and_predicts_one_value_a_row(rows):
    X, y = rows
    pipe = Pipeline([("scale", StandardScaler()), ("net", RegistryRegressor(epochs=4, seed=1))])
    pipe.fit(X[:1_200], y[:1_200])
    predicted = pipe.predict(X[1_200:])
    assert predicted.shape == (300,) and np.isfinite(predicted).all()
    mse = float(np.mean((y[1_200:] - predicted) ** 2))
    assert pipe.score(X[1_200:], y[1_200:]) == pytest.approx(-mse, rel=1e-5)
    assert mse < 0.6 * float(np.var(y[1_200:]))  # it learned: better than predicting the mean
    net = pipe.named_steps["net"]
    assert net.n_features_in_ == 8 and 1 <= len(net.history_) <= 4


def test_a_diverged_fit_scores_nan_instead_of_raising(rows):
    X, y = rows
    est = RegistryRegressor(epochs=2, learning_rate=1e9).fit(X, y)
    assert est.diverged_ and np.isnan(est.score(X, y)) and np.isnan(est.predict(X[:3])).all()


def test_randomized_search_cv_samples_each_hyperparameter_and_ranks_a_diverged_one_last(rows):
    X, y = rows
    X = StandardScaler().fit_transform(X)
    search = RandomizedSearchCV(RegistryRegressor(epochs=2), {"learning_rate": [3e-3, 1e9], "width": randint(4, 30),
                                                                "depth": [1, 2]},
                                n_iter=4, cv=3, random_state=1, error_score=np.nan)
    with pytest.warns(UserWarning, match="non-finite"):  # scikit-learn's note on the NaN candidates
        search.fit(X, y)
    scores, params = search.cv_results_["mean_test_score"], search.cv_results_["params"]
    assert {p["learning_rate"] for p in params} == {3e-3, 1e9} and len({p["width"] for p in params}) > 1
    assert all(np.isnan(s) == (p["learning_rate"] == 1e9) for s, p in zip(scores, params))
    assert search.best_params_["learning_rate"] == 3e-3 and search.best_score_ == np.nanmax(scores) < 0


def test_the_classifier_takes_any_labels_and_scores_accuracy(fashion):
    X, y = fashion.X[:1_200].reshape(-1, 28, 28) / 255.0, fashion.y[:1_200] + 1  # labels 1..10
    est = RegistryClassifier(epochs=2, seed=3)
    scores = cross_val_score(est, X, y, cv=2)
    assert ((scores > 0.3) & (scores <= 1)).all()  # ten classes: chance is 0.1
    est.fit(X, y)
    assert set(est.predict(X[:50])) <= set(range(1, 11)) and est.predict_proba(X[:5]).shape == (5, 10)
