"""Search: plans and Optuna's proposals over a declared space, the record of a search's trials,
and scikit-learn's own searches over a registry model wrapped as an estimator. A trial is the
training stage with the trial's values."""
