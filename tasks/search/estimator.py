"""A registry model as a scikit-learn estimator: the course's ``KerasRegressor``, kept up to date.

The course wraps its Keras model with ``keras.wrappers.scikit_learn.KerasRegressor`` (gone
from Keras 3) and runs ``RandomizedSearchCV`` over it. scikeras is no longer maintained, and
Keras 3's own ``SKLearnRegressor`` drops its fit settings when cloned and takes the model's
hyperparameters only as one dict, so a search cannot sample them one by one. This estimator
follows scikit-learn's contract (``__init__`` stores its arguments unchanged, learned state
ends in ``_``) and fits with the training stage's own ``train()``: the same callbacks, the
same seeding, the same best-checkpoint selection on a validation set.

A fit that diverges (NaN loss) is not an error: the estimator predicts NaN and scores NaN,
so a search ranks it last instead of stopping.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data

from tasks.core.params import INFERENCE_BATCH, TrainParams
from tasks.model.callbacks import Watch
from tasks.stages.scale import target_moments
from tasks.store.dataset import DatasetSpec, Frame

# what scikit-learn's checks accept: rows of features (or images, for the CNN) as float32, at least one
_INPUTS = {"allow_nd": True, "dtype": np.float32, "ensure_min_features": 1}


class _RegistryEstimator(BaseEstimator):
    """Shared by the regressor and the classifier; ``_task`` says which kind of model it takes."""

    _task = ""

    def __init__(self, model=None, epochs=100, batch_size=32, learning_rate=None, optimizer=None, depth=None,
                 width=None, activation=None, initializer=None, schedule=None, patience=5, min_delta=0.0,
                 validation_fraction=0.1, seed=42, steps_per_execution=TrainParams.steps_per_execution,
                 scale_target=False):
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.depth = depth
        self.width = width
        self.activation = activation
        self.initializer = initializer
        self.schedule = schedule
        self.patience = patience
        self.min_delta = min_delta
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.steps_per_execution = steps_per_execution
        self.scale_target = scale_target  # regression: learn y standardised on the rows fit() is given

    def _hparams(self) -> dict:
        return {name: getattr(self, name) for name in
                ("learning_rate", "optimizer", "depth", "width", "activation", "initializer", "schedule")}

    def _encode(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)

    def fit(self, X, y, validation_data=None):
        """Train on ``X, y``; EarlyStopping and the kept checkpoint watch ``validation_data``
        (the course passes its valid split), else the last ``validation_fraction`` of the rows."""
        from tasks.model import files as model_files
        from tasks.stages.train import train

        # scikit-learn's own checks: rows and at least one feature, numbers, no NaN; the count is
        # kept, so that predict refuses a table of another width (Keras would abort the process)
        X, y = validate_data(self, X, y, **_INPUTS)
        y = self._encode(y)
        if validation_data is None:
            cut = len(X) - max(1, int(round(len(X) * self.validation_fraction)))
            X, X_valid, y, y_valid = X[:cut], X[cut:], y[:cut], y[cut:]
        else:
            X_valid, y_valid = check_X_y(*validation_data, **_INPUTS)
            if X_valid.shape[1:] != X.shape[1:]:
                raise ValueError(f"validation_data has rows of shape {X_valid.shape[1:]}, the training rows "
                                 f"{X.shape[1:]}")
            y_valid = self._encode(y_valid)
        frame = self._frame(X, X_valid, y, y_valid)
        self.diverged_, self.model_ = False, None
        with tempfile.TemporaryDirectory(prefix="keras-flows-estimator-") as workdir:
            try:
                result = train(frame, self.model or self._default_model, Path(workdir), epochs=self.epochs,
                               batch_size=self.batch_size, seed=self.seed, hparams=self._hparams(),
                               watch=Watch(patience=self.patience, min_delta=self.min_delta),
                               steps_per_execution=self.steps_per_execution)
            except FloatingPointError:
                self.diverged_, self.history_ = True, None
                return self
            self.model_ = model_files.load(result.model_path)
        self.history_ = result.history
        return self

    def _frame(self, X, X_valid, y, y_valid) -> Frame:
        shape = X.shape[1:] if X.ndim > 2 else None
        features = tuple(f"x{i}" for i in range(int(np.prod(X.shape[1:]))))
        scaling = target_moments(y) if self.scale_target and self._task == "regression" else None
        spec = DatasetSpec(name="estimator", task=self._task, target="y", features=features, image_shape=shape,
                           classes=getattr(self, "_labels", None), target_scaling=scaling)
        flat = lambda a: a.reshape(len(a), -1).astype(np.float32)  # noqa: E731
        return Frame(spec, np.concatenate([flat(X), flat(X_valid)]), np.concatenate([y, y_valid]),
                     np.arange(len(X) + len(X_valid)), np.array(["train"] * len(X) + ["valid"] * len(X_valid)))

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self, "diverged_")
        X = validate_data(self, X, reset=False, **_INPUTS)
        if self.diverged_:
            return np.full((len(X), self._width()), np.nan)
        return np.asarray(self.model_.predict(X, batch_size=INFERENCE_BATCH, verbose=0))

    def _width(self) -> int:
        return 1


class RegistryRegressor(RegressorMixin, _RegistryEstimator):
    """A registry regression model (default ``mlp30``, the course's) as a scikit-learn regressor.

    ``score`` is minus the mean squared error, as the course's ``KerasRegressor.score`` (so
    ``best_score_`` reads as the course's -0.3459), not scikit-learn's usual R^2.
    """

    _task, _default_model = "regression", "mlp30"

    def predict(self, X) -> np.ndarray:
        return self._outputs(X).reshape(-1)

    def score(self, X, y, sample_weight=None) -> float:
        predicted = self.predict(X)
        if not np.isfinite(predicted).all():
            return float("nan")
        return -float(np.average((np.asarray(y, dtype=np.float64) - predicted) ** 2, weights=sample_weight))


class RegistryClassifier(ClassifierMixin, _RegistryEstimator):
    """A registry classification model (default ``mlp``, the course's) as a scikit-learn
    classifier; any labels, trained as 0..K-1; ``score`` is accuracy."""

    _task, _default_model = "classification", "mlp"

    def fit(self, X, y, validation_data=None):
        check_classification_targets(y)
        self.classes_ = np.unique(np.asarray(y))
        self._labels = tuple(range(len(self.classes_)))
        return super().fit(X, y, validation_data)

    def _encode(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        codes = np.searchsorted(self.classes_, y)
        if (codes >= len(self.classes_)).any() or (self.classes_[np.minimum(codes, len(self.classes_) - 1)] != y).any():
            raise ValueError(f"labels {sorted(set(y.tolist()) - set(self.classes_.tolist()))[:5]} were not seen in fit")
        return codes.astype(np.int64)

    def _width(self) -> int:
        return len(self.classes_)

    def predict_proba(self, X) -> np.ndarray:
        return self._outputs(X)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        if not np.isfinite(proba).all():
            return np.full(len(proba), np.nan)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        predicted = self.predict(X)
        if self.diverged_:
            return float("nan")
        return float(np.average(predicted == np.asarray(y), weights=sample_weight))

