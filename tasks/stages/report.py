"""The reports people look at, for each evaluated model, on the test rows (after ``evaluate``).

Classification: a confusion matrix with the class names, per-class precision, recall and F1
(a Parquet table and a Prefect table artifact), and for images the course's sample grid (test
images with true and predicted labels, mistakes in red). Regression: predicted against true
values, and the residuals against each feature. Each picture is a PNG artifact whose markdown
artifact embeds it, so the Prefect UI shows it.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.params import INFERENCE_BATCH
from tasks.model import files as model_files
from tasks.model.registry import main_output, model_inputs
from tasks.model.streamed_batches import ScaledFile, joined
from tasks.stages.scale import StandardScaler
from tasks.store.artifacts import ArtifactRef, ArtifactStore
from tasks.store.dataset import Frame, is_streamed, read_frame, read_parquet
from tasks.store.publish import publish_table
from tasks.store.stage import StageRun, reported

CLASS_NAMES = {"fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                 "Sneaker", "Bag", "Ankle boot")}
SAMPLES = (3, 8)  # rows x columns of the sample grid


def predicted(model_path: str, test: Frame, model_name: str) -> np.ndarray:
    """The main head's outputs on the test rows (class probabilities, or values)."""
    out = model_files.load(model_path).predict(model_inputs(test, model_name), batch_size=INFERENCE_BATCH, verbose=0)
    return main_output(out, model_name)


def class_names(test: Frame, k: int) -> list[str]:
    """The labels' names: a text label column's, the course dataset's, or the codes themselves."""
    return list(test.spec.class_names or CLASS_NAMES.get(test.spec.name, [str(c) for c in range(k)]))


def confusion(y: np.ndarray, guess: np.ndarray, k: int) -> np.ndarray:
    """Counts of (true, predicted) pairs, in numpy: the flow's process does not import
    scikit-learn (and scipy) for four lines of arithmetic."""
    return np.bincount(y * k + guess, minlength=k * k).reshape(k, k)


def per_class(y: np.ndarray, guess: np.ndarray, names: list[str]) -> pa.Table:
    """Precision, recall and F1 per class (0 where a class was never predicted or never true)."""
    matrix = confusion(y, guess, len(names))
    hits, predicted_as, support = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.nan_to_num(hits / predicted_as)
        r = np.nan_to_num(hits / support)
        f = np.nan_to_num(2 * p * r / (p + r))
    return pa.table({"class": names, "precision": p, "recall": r, "f1": f, "support": support.astype(np.int64)})


def _figure(size):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(*size[0], figsize=size[1], squeeze=False)


def confusion_png(y: np.ndarray, guess: np.ndarray, names: list[str], path: Path, title: str) -> Path:
    matrix = confusion(y, guess, len(names))
    plt, fig, axes = _figure(((1, 1), (8, 7)))
    ax = axes[0][0]
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                color="white" if count > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def samples_png(images: np.ndarray, y: np.ndarray, guess: np.ndarray, names: list[str], path: Path) -> Path:
    """The course's grid: the first test images, true / predicted label, mistakes in red."""
    rows, cols = SAMPLES
    plt, fig, axes = _figure(((rows, cols), (cols * 1.6, rows * 1.9)))
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="binary")
            wrong = y[i] != guess[i]
            ax.set_title(f"{names[y[i]]}\n-> {names[guess[i]]}", fontsize=8, color="red" if wrong else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def regression_png(test: Frame, values: np.ndarray, path: Path, title: str) -> Path:
    """Predicted against true (the diagonal is perfect), then each feature's residuals."""
    residual = values - test.y
    features = list(test.spec.features)
    cols = 3
    rows = 1 + -(-len(features) // cols)
    plt, fig, axes = _figure(((rows, cols), (12, 3.2 * rows)))
    ax = axes[0][0]
    ax.scatter(test.y, values, s=4, alpha=0.4)
    low, high = float(min(test.y.min(), values.min())), float(max(test.y.max(), values.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1)
    ax.set_xlabel(f"true {test.spec.target}")
    ax.set_ylabel("predicted")
    ax.set_title(title, fontsize=9)
    for ax in axes[0][1:]:
        ax.axis("off")
    for i, name in enumerate(features):
        ax = axes[1 + i // cols][i % cols]
        ax.scatter(test.X[:, i], residual, s=4, alpha=0.4)
        ax.axhline(0, color="black", linewidth=1)
        ax.set_xlabel(f"{name} (standardised)")
        ax.set_ylabel("residual")
    for ax in axes.ravel()[cols + len(features):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


REPORT_ROWS = 100_000  # the test rows a streamed table's report pictures (its metrics take every row)


def shown_test_rows(scaled: ArtifactRef) -> tuple[Frame, int]:
    """The test rows the report shows, and how many test rows there are: all of them, or, for a
    table larger than memory, about ``REPORT_ROWS`` taken as the same share of each row group (so
    a table sorted by date or label is pictured across its whole length). The evaluate stage
    scores every row."""
    if not is_streamed(scaled):
        test = read_frame(scaled.path, filters=[("split", "=", "test")])
        return test, len(test)
    stored = ScaledFile(scaled.path)
    total = stored.rows("test")
    share = min(1.0, REPORT_ROWS / max(total, 1))
    # a copy of each group's first rows (indexed, not sliced: a slice would keep its whole group alive)
    parts = [part.take(np.arange(int(np.ceil(len(part) * share)))) for part in stored.frames("test")]
    return joined(parts), total


@task(name="report", cache_policy=NO_CACHE)
def report_task(model: ArtifactRef, scaled: ArtifactRef, scaler: ArtifactRef, artifacts: str, force: bool = False
                ) -> dict[str, ArtifactRef]:
    """Pictures and per-class scores of the model on the test rows, as artifacts."""
    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        test, rows = shown_test_rows(scaled)
        name = ArtifactStore.record(model).model_name
        shown = f"{len(test)} test rows" if len(test) == rows else f"{len(test):,} of {rows:,} test rows"
        out, title = predicted(model.path, test, name), f"{test.spec.name}: {name}, {shown}"
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            if test.spec.task == "regression":
                png = regression_png(test, out.reshape(len(test), -1)[:, 0], work / "regression.png", title)
                return {"residuals": run.put_file(png, stage="residuals")}
            guess, y, names = out.argmax(axis=1), test.y.astype(np.int64), class_names(test, out.shape[1])
            scores = per_class(y, guess, names)
            refs = {"per_class": run.put_table(scores, stage="per-class"),
                    "confusion": run.put_file(confusion_png(y, guess, names, work / "confusion.png", title),
                                              stage="confusion")}
            if test.spec.is_image:  # shown as they were, not standardised
                fitted = StandardScaler.from_arrow(read_parquet(scaler.path))
                first = test.X[:int(np.prod(SAMPLES))] * fitted.scale_ + fitted.mean_
                images = first.reshape(len(first), *test.spec.image_shape)
                refs["samples"] = run.put_file(samples_png(images, y, guess, names, work / "samples.png"),
                                               stage="samples")
        publish_table(f"{test.spec.name}-per-class-scores", [{k: round(v, 4) if isinstance(v, float) else v
                                                              for k, v in r.items()} for r in scores.to_pylist()],
                      f"{test.spec.name}: per-class test scores")
        return refs

    run = StageRun(ArtifactStore(artifacts), "report", __name__, parents=[model, scaled, scaler])
    return reported(run.run(produce, force), run)

