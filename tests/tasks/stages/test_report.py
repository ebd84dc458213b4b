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


def test_a_streamed_report_pictures_a_share_of_each_group_holding_one_group_at_a_time(housing, tmp_path,
                                                                                     monkeypatch):
    """The rows shown are about REPORT_ROWS, the same share of every test group, each copied as it
    is taken: the peak is a group or so, not every test row's features (a slice of a group would
    keep the whole group alive until all were joined)."""
    import tracemalloc

    import pandas as pd

    from tasks.stages import report
    from tasks.stages.scale_stream import StreamedScale
    from tasks.stages.split_stream import split_batches
    from tasks.stages.table_stream import StreamedTable
    from tasks.store.artifacts import ArtifactStore

    rows = 20_000
    df = pd.DataFrame(np.tile(housing.X[:5_000], (4, 1)), columns=list(housing.spec.features))
    df["MedHouseVal"] = np.tile(housing.y[:5_000], 4)
    df.to_parquet(tmp_path / "houses.parquet")
    store = ArtifactStore(tmp_path / "store")
    raw = store.put_batches(StreamedTable(tmp_path / "houses.parquet", "MedHouseVal", "regression",
                                          batch_rows=500).batches(), "raw")
    index = store.put_batches(split_batches(raw.path, batch_rows=500), "split")
    scaled = store.put_batches(StreamedScale(raw.path, index.path, batch_rows=500).scaled_batches(), "scaled")
    monkeypatch.setattr(report, "REPORT_ROWS", 200)
    tracemalloc.start()
    try:
        shown, total = report.shown_test_rows(scaled)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0.2 * rows < total < 0.3 * rows and 200 <= len(shown) < 200 + 40  # a row or so more per group
    every_test_row = total * len(housing.spec.features) * 4 * 2  # features, as read and as kept
    assert peak < every_test_row / 4, (peak, every_test_row)
