"""TensorFlow's one warning that the training stage knows to be false, dropped by a logging filter.

"N out of the last M calls to <function TensorFlowTrainer._make_function.<locals>...> triggered
tf.function retracing" (or ``make_predict_function``): Keras makes each model's train, test and
predict functions as closures of one code object, and TensorFlow's detector counts all of them
as one function. Fitting several models in a process (the zoo, a worker's search trials, the
folds of a scikit-learn search) traces each once, as it must, and reads as retracing. Any other
retracing warning stays.
"""
from __future__ import annotations

import logging
from functools import lru_cache


class OneTracePerModel(logging.Filter):
    """Drops the false retracing warning (above) and passes every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "<function TensorFlowTrainer." in message)


@lru_cache(maxsize=1)
def quiet_false_retracing() -> None:
    """Install the filter on TensorFlow's logger, once per process."""
    logging.getLogger("tensorflow").addFilter(OneTracePerModel())
