"""The registry estimator under scikit-learn's own tools, on a slice of the real housing data."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_classifier_takes_any_labels_and_scores_accuracy(fashion):
    X, y = fashion.X[:1_200].reshape(-1, 28, 28) / 255.0, fashion.y[:1_200] + 1  # labels 1..10
    est = RegistryClassifier(epochs=2, seed=3)
    scores = cross_val_score(est, X, y, cv=2)
    assert ((scores > 0.3) & (scores <= 1)).all()  # ten classes: chance is 0.1
    est.fit(X, y)
    assert set(est.predict(X[:50])) <= set(range(1, 11)) and est.predict_proba(X[:5]).shape == (5, 10)


# scikit-learn's input contract (validate_data): refused with its own messages, before Keras sees the rows

def test_fitting_on_rows_without_features_is_refused_and_the_interpreter_survives():
    """Zero feature columns used to reach Keras, which killed the Python process: run in a child
    process, the refusal must be an ordinary ValueError after which the interpreter goes on."""
    code = "\n".join([
        "import numpy as np",
        "import pandas as pd",
        "from tasks.search.estimator import RegistryClassifier, RegistryRegressor",
        "for estimator, X in ((RegistryRegressor(epochs=1), np.empty((20, 0), dtype=np.float32)),",
        "                     (RegistryClassifier(epochs=1), np.empty((20, 0))),",
        "                     (RegistryRegressor(epochs=1), pd.DataFrame(index=range(20)))):",
        "    try:",
        "        estimator.fit(X, np.arange(20) % 2)",
        "    except ValueError as error:",
        "        print('refused:', type(X).__name__, error, flush=True)",
        "print('the interpreter survived')",
    ])
    child = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[3], capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3_000:]
    refusals = [line for line in child.stdout.splitlines() if line.startswith("refused:")]
    assert refusals[:2] == [
        "refused: ndarray Found array with 0 feature(s) (shape=(20, 0)) while a minimum of 1 is required by "
        "RegistryRegressor.",
        "refused: ndarray Found array with 0 feature(s) (shape=(20, 0)) while a minimum of 1 is required by "
        "RegistryClassifier."]
    assert len(refusals) == 3 and refusals[2].startswith("refused: DataFrame ")  # a table of no columns, too
    assert child.stdout.splitlines()[-1] == "the interpreter survived"


@pytest.fixture(scope="module")
def fitted(rows):
    X, y = rows
    return RegistryRegressor(epochs=1, seed=0).fit(X[:1_000], y[:1_000])


def test_fit_remembers_how_many_features_it_saw(fitted, rows):
    assert fitted.n_features_in_ == 8
    assert not hasattr(RegistryRegressor(), "n_features_in_")  # learned state, set by fit only
    assert fitted.predict(rows[0][:4]).shape == (4,)


@pytest.mark.parametrize("width", [7, 9])
def test_predicting_on_another_number_of_features_is_refused(fitted, rows, width):
    X = np.resize(rows[0][:5], (5, width))
    with pytest.raises(ValueError, match=f"X has {width} features, but RegistryRegressor is expecting 8 features"):
        fitted.predict(X)
    with pytest.raises(ValueError, match=f"X has {width} features"):
        fitted.score(X, rows[1][:5])


def test_validation_rows_of_another_width_are_refused(rows):
    X, y = rows
    with pytest.raises(ValueError, match=r"validation_data has rows of shape \(7,\), the training rows \(8,\)"):
        RegistryRegressor(epochs=1).fit(X[:100], y[:100], validation_data=(X[100:150, :7], y[100:150]))


def _with(array: np.ndarray, value: float) -> np.ndarray:
    changed = np.array(array, dtype=np.float64)
    changed.flat[3] = value
    return changed


@pytest.mark.parametrize("bad, message", [(np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")])
def test_missing_or_infinite_inputs_are_refused_in_fit_validation_and_predict(fitted, rows, bad, message):
    X, y = rows
    with pytest.raises(ValueError, match=message):
        RegistryRegressor(epochs=1).fit(_with(X[:100], bad), y[:100])
    with pytest.raises(ValueError, match=message):
        RegistryRegressor(epochs=1).fit(X[:100], y[:100], validation_data=(_with(X[100:150], bad), y[100:150]))
    with pytest.raises(ValueError, match=message):
        fitted.predict(_with(X[:5], bad))


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # scikit-learn's, on NaN labels
def test_a_missing_target_is_refused(rows):
    X, y = rows
    with pytest.raises(ValueError, match="Input y contains NaN"):
        RegistryRegressor(epochs=1).fit(X[:100], _with(y[:100], np.nan))
    with pytest.raises(ValueError, match="Input y contains NaN"):
        RegistryClassifier(epochs=1).fit(X[:100], _with(np.arange(100) % 3, np.nan))
