"""Serving, i.e. using a trained model: resolving the champion (or a model named by its hash) to
its files, the champion gate and its history, skew and drift checks of new data, predictions,
and the SavedModel export."""
