"""The report's per-class scores and confusion counts, against scikit-learn's on the same labels."""
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from tasks.stages.report import confusion, per_class


def test_per_class_scores_and_counts_equal_scikit_learns():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 5_000)
    guess = np.where(rng.random(5_000) < 0.7, y, rng.integers(0, 9, 5_000))  # class 9 never predicted
    table = per_class(y, guess, [f"c{k}" for k in range(10)]).to_pydict()
    precision, recall, f1, support = precision_recall_fscore_support(y, guess, labels=range(10), zero_division=0)
    assert np.allclose(table["precision"], precision) and np.allclose(table["recall"], recall)
    assert np.allclose(table["f1"], f1) and list(table["support"]) == list(support)
    assert (confusion(y, guess, 10) == confusion_matrix(y, guess, labels=range(10))).all()
