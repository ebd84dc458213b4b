"""The scale stage as a Prefect task: the train-only scaler fitted on the whole data
(``tasks/stages/scale.py``) or, for a table streamed a row group at a time, on moments merged
over the groups (``tasks/stages/scale_stream.py``); the scaled data, the scaler and the
vocabulary written as artifacts. Apart from both, so that neither imports the other's caller."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.stages.categories import UNSEEN
from tasks.stages.scale import feature_names, scale
from tasks.stages.scale_stream import StreamedScale
from tasks.store.artifacts import ArtifactRef, ArtifactStore
from tasks.store.dataset import is_streamed, read_frame, read_index, to_arrow
from tasks.store.stage import StageRun, logger, reported


@task(name="scale", cache_policy=NO_CACHE)
def scale_task(raw: ArtifactRef, index: ArtifactRef, artifacts: str, force: bool = False,
               scale_target: bool = False, workers: int = 1) -> dict[str, ArtifactRef]:
    """Write the scaled data (train, valid, test) and the fitted scaler as artifacts (a streamed
    table's moments scanned in ``workers`` parts side by side: ``tasks/stages/fan_out.py``)."""
    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        if is_streamed(raw):  # a row group at a time (tasks/stages/scale_stream.py)
            fitted = StreamedScale(raw.path, index.path, scale_target, parts=workers)
            refs = {"scaled": run.put_batches(fitted.scaled_batches()),
                    "scaler": run.put_table(fitted.scaler_table(), stage="scaler")}
            vocabulary, unseen = fitted.vocabulary, fitted.unseen  # (unseen: counted as the scaled rows were written)
        else:
            scaled, scaler, vocabulary, unseen = scale(read_frame(raw.path), read_index(index.path), scale_target)
            numeric = feature_names(scaled)[:len(scaler.mean_)]
            refs = {"scaled": run.put_table(to_arrow(scaled)),
                    "scaler": run.put_table(scaler.to_arrow(numeric), stage="scaler")}
        if vocabulary is not None:
            for column, count in unseen.items():
                if count:
                    logger().warning("scale: %s: %d valid/test row(s) hold a category the train rows do not: "
                                     "encoded as unseen (%s)", column, count, UNSEEN)
            refs["vocabulary"] = run.put_table(vocabulary.to_arrow(), stage="vocabulary", unseen=unseen)
        return refs

    # the target's scaling enters the key only when asked: the course's runs keep their keys
    params = {"scale_target": True} if scale_target else {}
    run = StageRun(ArtifactStore(artifacts), "scaled", __name__, parents=[raw, index], params=params)
    return reported(run.run(produce, force), run)
