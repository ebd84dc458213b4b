import random
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tasks.core.params import INFERENCE_BATCH, TrainParams
from tasks.model import registry as models
from tasks.model.callbacks import InjectedCrash, Watch
from tasks.stages.evaluate import evaluate
from tasks.stages.plots import plot_history
from tasks.stages.train import train
from tasks.store.artifacts import sha256_file


def test_registry_builds_the_course_models():
    mlp = models.build("mlp", {"features": (28, 28)}, 10)
    assert [layer.__class__.__name__ for layer in mlp.layers] == ["InputLayer", "Flatten", "Dense", "Dense", "Dense"]
    assert [layer.units for layer in mlp.layers[2:]] == [300, 100, 10]
    assert mlp.count_params() == 266_610
    reg = models.build("mlp30", {"features": (8,)}, 1)
    assert reg.count_params() == 8 * 30 + 30 + 31
    assert models.hyperparameters("mlp", {"learning_rate": 0.5, "optimizer": None})["learning_rate"] == 0.5


def test_registry_errors_say_what_exists():
    with pytest.raises(ValueError, match="unknown model 'nope'; registered: cnn, deep, .*, mlp30"):
        models.entry("nope")
    with pytest.raises(ValueError, match="'mlp' is a classification model; for regression use one of"):
        models.entry("mlp", "regression")


def test_train_keeps_the_best_checkpoint_and_never_touches_test_rows(small_housing, tmp_path):
    poisoned = small_housing.take(np.arange(len(small_housing)))
    poisoned.X = poisoned.X.copy()
    poisoned.X[poisoned.split == "test"] = np.nan  # any use of test rows would turn losses to NaN
    result = train(poisoned, "mlp30", tmp_path, epochs=3, batch_size=32, seed=1,
                   watch=Watch(tensorboard_dir=tmp_path / "tb"))
    assert list(result.history.columns) == ["epoch", "loss", "val_loss"]
    assert np.isfinite(result.history[["loss", "val_loss"]].to_numpy()).all()
    for part, column in (("train", "loss"), ("validation", "val_loss")):  # one scalar per epoch, as fit saw it
        board = EventAccumulator(str(tmp_path / "tb" / part))
        board.Reload()
        scalars = [tf.make_ndarray(event.tensor_proto).item() for event in board.Tensors("epoch_loss")]
        np.testing.assert_allclose(scalars, result.history[column], rtol=1e-5)
    best = keras.models.load_model(result.model_path, safe_mode=True)
    valid = small_housing.part("valid")
    val_loss = best.evaluate(valid.inputs(), valid.y.astype(np.float32), verbose=0)
    assert val_loss == pytest.approx(result.history["val_loss"].min(), rel=1e-4)
    assert plot_history(result.history, tmp_path / "c.png", "t").stat().st_size > 1_000


def test_same_seed_same_model(small_housing, tmp_path):
    a = train(small_housing, "mlp30", tmp_path / "a", epochs=2, batch_size=64, seed=5)
    b = train(small_housing, "mlp30", tmp_path / "b", epochs=2, batch_size=64, seed=5)
    np.testing.assert_allclose(a.history["val_loss"], b.history["val_loss"], rtol=1e-6)
    assert sha256_file(a.model_path) == sha256_file(b.model_path)  # same training, same bytes, same hash


def test_evaluate_scores_only_the_test_split(small_housing, tmp_path):
    result = train(small_housing, "mlp30", tmp_path, epochs=1, batch_size=64, seed=1)
    test = small_housing.part("test")
    scores = evaluate(result.model_path, test, "mlp30")
    predicted = keras.models.load_model(result.model_path).predict(test.inputs(), verbose=0)[:, 0]
    assert set(scores) == {"loss"}  # the MSE of the test rows, and of no other
    assert scores["loss"] == pytest.approx(float(np.mean((predicted - test.y) ** 2)), rel=1e-5)
    assert INFERENCE_BATCH > len(test) > 32  # one large batch; the mean is that of 32 at a time
    small_batches = keras.models.load_model(result.model_path).evaluate(
        test.inputs(), test.y.astype(np.float32), batch_size=32, verbose=0)
    assert scores["loss"] == pytest.approx(small_batches, rel=0, abs=1e-6)
    with pytest.raises(ValueError, match="test split only"):
        evaluate(result.model_path, small_housing.part("valid"), "mlp30")


def test_a_diverging_training_says_so(small_housing, tmp_path):
    with pytest.raises(FloatingPointError, match="lower --learning-rate"):
        train(small_housing, "mlp30", tmp_path, epochs=2, batch_size=32, seed=1, hparams={"learning_rate": 1e12})


@pytest.mark.parametrize("model", ["mlp30", "wide_deep_multi_output",
                                   pytest.param("selu_alphadropout", marks=pytest.mark.slow),
                                   pytest.param("deep_bn_before", marks=pytest.mark.slow)])
def test_fewer_dispatches_take_the_very_same_gradient_steps(small_housing, small_fashion, tmp_path, model):
    """N batches per compiled call (the default) give the seeded history of one at a time:
    the same steps, the dropout masks and the BatchNorm statistics included. 38 and 32 steps
    an epoch: the last call of each epoch runs fewer than N."""
    frame = small_housing if models.entry(model).task == "regression" else small_fashion
    n = TrainParams.steps_per_execution
    assert n > 1
    one, many = (train(frame, model, tmp_path / str(k), epochs=3, batch_size=32, seed=3, steps_per_execution=k)
                 for k in (1, n))
    assert list(many.history.columns) == list(one.history.columns) and len(many.history) == 3
    np.testing.assert_allclose(many.history.to_numpy(), one.history.to_numpy(), rtol=0, atol=1e-6)


def test_the_false_retracing_warning_is_dropped_and_no_other(small_housing, tmp_path):
    """Each model's fused train function is traced once; TensorFlow's detector counts all models'
    as one function and warns (a few times per process: the zoo's CLI run in
    tests/flows/test_clean_runs.py is where it showed). Only that warning is dropped."""
    import logging

    from tasks.model.tf_logging import OneTracePerModel

    train(small_housing, "mlp30", tmp_path, epochs=1, batch_size=64, seed=1)
    board = logging.getLogger("tensorflow")
    assert any(isinstance(f, OneTracePerModel) for f in board.filters)  # installed by the training

    def passes(message: str) -> bool:
        return board.filter(logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None))
    assert not passes("5 out of the last 7 calls to <function TensorFlowTrainer._make_function.<locals>."
                      "multi_step_on_iterator at 0x7f> triggered tf.function retracing. Tracing is expensive")
    assert passes("5 out of the last 5 calls to <function my_step at 0x7f> triggered tf.function retracing.")
    assert passes("Your input ran out of data; interrupting training.")


def test_a_crashed_training_resumes_at_its_epoch_with_identical_results(small_housing, tmp_path):
    assert TrainParams.steps_per_execution > 1  # the resume is that of the default, fused steps
    args = dict(epochs=6, batch_size=32, seed=4)
    with pytest.raises(InjectedCrash, match="epoch 3"):
        train(small_housing, "mlp30", tmp_path / "resumed", watch=Watch(crash_at_epoch=3), **args)
    resumed = train(small_housing, "mlp30", tmp_path / "resumed", **args)
    straight = train(small_housing, "mlp30", tmp_path / "straight", **args)
    assert resumed.resumed_at == 3 and straight.resumed_at == 1
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(resumed.history["val_loss"], straight.history["val_loss"], rtol=0, atol=1e-6)
    test = small_housing.part("test")
    assert evaluate(resumed.model_path, test, "mlp30")["loss"] == pytest.approx(
        evaluate(straight.model_path, test, "mlp30")["loss"], abs=1e-6)


def test_a_cosine_schedule_decays_the_learning_rate_each_epoch(small_housing, tmp_path):
    hp = models.hyperparameters("mlp30", {"schedule": "cosine", "learning_rate": 0.02})
    rates = [models.learning_rate_at(hp, epoch, 4) for epoch in range(4)]
    assert rates[0] == 0.02 and all(a > b > 0 for a, b in zip(rates, rates[1:]))
    assert models.learning_rate_at(models.hyperparameters("mlp30"), 3, 4) == 0.01  # the course: constant
    result = train(small_housing, "mlp30", tmp_path, epochs=4, batch_size=64, seed=1,
                   hparams={"schedule": "cosine", "learning_rate": 0.02})
    np.testing.assert_allclose(result.history["learning_rate"], rates, rtol=1e-5)  # what the optimizer used
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        train(small_housing, "mlp30", tmp_path / "x", epochs=1, batch_size=64, seed=1, hparams={"schedule": "step"})


def test_a_seeded_training_ignores_other_threads_drawing_from_python_random(small_housing, tmp_path):
    args = dict(epochs=2, batch_size=64, seed=7)
    baseline = train(small_housing, "mlp30", tmp_path / "a", **args)
    stop = threading.Event()

    def draw() -> None:  # as websockets' keepalive ping does, from Prefect's event-loop thread
        while not stop.wait(0.0005):
            random.getrandbits(32)

    other = threading.Thread(target=draw, daemon=True)
    other.start()
    try:
        disturbed = train(small_housing, "mlp30", tmp_path / "b", **args)
    finally:
        stop.set()
        other.join()
    np.testing.assert_allclose(disturbed.history["val_loss"], baseline.history["val_loss"], rtol=1e-6)


@pytest.mark.slow
def test_a_paused_training_continues_to_the_same_result_early_stopping_included(small_housing, tmp_path):
    args = dict(epochs=30, batch_size=32, seed=4, watch=Watch(patience=3, min_delta=0.01))
    straight = train(small_housing, "mlp30", tmp_path / "straight", **args)
    assert straight.stopped_early and len(straight.history) < 30  # the course's min_delta stops it
    rungs = []
    for stop in range(2, 31, 2):  # halving's rungs: pause, keep the backup, continue
        paused = train(small_housing, "mlp30", tmp_path / "paused", stop_at=stop, **args)
        rungs.append((len(paused.history), paused.resumed_at))
        if paused.stopped_early:
            break
    assert rungs[:2] == [(2, 1), (4, 3)]  # each rung starts where the one before ended
    assert len(paused.history) == len(straight.history)  # EarlyStopping counted the earlier rungs' epochs
    np.testing.assert_allclose(paused.history["val_loss"], straight.history["val_loss"], rtol=0, atol=1e-6)
    assert sha256_file(paused.model_path) == sha256_file(straight.model_path)


@pytest.mark.slow
def test_memory_stays_flat_over_twenty_trials_in_one_process(small_housing, tmp_path):
    import gc

    from tasks.stages.train import train_task
    from tasks.store.artifacts import ArtifactStore
    from tasks.store.dataset import to_arrow

    def rss_mib() -> float:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

    scaled = ArtifactStore(tmp_path).put_table(to_arrow(small_housing), "scaled")
    gc.collect()
    before = sum(isinstance(o, keras.Model) for o in gc.get_objects())  # other tests' in this process
    rss, alive = [], []
    for trial in range(20):  # as a worker runs a search's trials: a new model each time
        train_task.fn(scaled, TrainParams("mlp30", epochs=1, width=8 + trial), str(tmp_path))
        gc.collect()
        rss.append(rss_mib())
        alive.append(sum(isinstance(o, keras.Model) for o in gc.get_objects()))
    assert max(alive) <= before + 1  # no trial keeps a model (the last one may still be in Keras's session)
    growth = (rss[-1] - rss[4]) / 15
    print(f"RSS after trial 5: {rss[4]:.0f} MiB, after 20: {rss[-1]:.0f} MiB ({growth:.2f} MiB a trial)")
    assert growth < 2.5  # TensorFlow itself keeps ~1 MiB of graph per model fitted (tensorflow#61791)


def test_a_standardised_target_is_learnt_and_the_model_answers_in_its_units(small_housing, tmp_path):
    """A target in dollars (5 orders of magnitude above the course's) at the default learning rate."""
    from tasks.stages.scale import target_moments

    dollars = small_housing.take(np.arange(len(small_housing)))
    dollars.y = small_housing.y * 100_000.0
    dollars.spec = dollars.spec.replace(target_scaling=target_moments(dollars.y[dollars.split == "train"]))
    result = train(dollars, "mlp30", tmp_path / "scaled", epochs=5, batch_size=32, seed=1)
    test = dollars.part("test")
    scores = evaluate(result.model_path, test, "mlp30")
    assert scores["loss"] < 0.5 * test.y.var()  # test MSE in dollars², well under the target's own variance
    predicted = keras.models.load_model(result.model_path, safe_mode=True).predict(test.inputs(), verbose=0)[:, 0]
    assert abs(predicted.mean() - test.y.mean()) < 0.2 * test.y.std()  # answers in dollars
    assert result.history["val_loss"].min() < 1.0  # what it learnt: the standardised target
    with pytest.raises(FloatingPointError, match="diverged"):  # what the same target does unscaled
        train(_unscaled(dollars), "mlp30", tmp_path / "raw",
              epochs=5, batch_size=32, seed=1)


def _unscaled(frame):
    copy = frame.take(np.arange(len(frame)))
    copy.spec = copy.spec.replace(target_scaling=None)
    return copy
