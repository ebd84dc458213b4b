"""Training on several devices of one machine, data-parallel, through the backend's own engine.

Each device holds a replica of the model and takes an equal share of every batch; the backend
averages the replicas' gradients, so that every replica takes the same step. The global batch is
the user's ``--batch-size`` (a batch that does not split evenly is refused): the same seed and the
same global batch give the same training as one device, to float tolerance, for a model whose
layers treat rows one at a time (the course's MLPs, Wide & Deep). BatchNormalization normalises
each device's share with its own statistics and Dropout draws each device's masks apart, so the
models that hold them train differently (not worse) on several devices.

- TensorFlow: ``tf.distribute.MirroredStrategy`` over N GPUs, or, on a machine with fewer, over N
  logical CPU devices (the CPU split into N: the replicas share the same cores, so it runs and
  matches one device, it does not speed anything up). The model is built and compiled inside the
  strategy's scope, as Keras requires; ``steps_per_execution`` is 1 under it (Keras's TensorFlow
  trainer fails with more: keras-team/keras#19246).
- JAX: ``keras.distribution.DataParallel`` over N of JAX's devices (on a CPU,
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX starts).
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from tasks.core.errors import OptionError

DISTRIBUTIONS = ("data-parallel",)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a training ran: what the lineage records (its fields are ``Training``'s of the same names)."""

    backend: str
    devices: tuple[str, ...]
    per_device_batch: int
    hosts: int = 1  # processes the training was spread over (each with its devices)


def check_replicas(net, placement: Placement) -> None:
    """Fail loudly where a model was built outside its strategy: TensorFlow would train it on one
    device, silently, with the lineage naming several."""
    strategy = getattr(net, "distribute_strategy", None)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if placement.backend == "tensorflow" and len(placement.devices) > 1 and replicas != len(placement.devices):
        raise RuntimeError(f"the model was built for {replicas} replica(s), not {len(placement.devices)}: build it "
                           "inside data_parallel()")


def check_batch(devices: int, batch_size: int, hosts: int = 1) -> None:
    """Refuse a global batch that ``devices`` cannot share evenly, and several devices in each of
    several processes (one or the other, today)."""
    for name, count in (("--devices", devices), ("--hosts", hosts)):
        if count < 1:
            raise OptionError(f"{name} {count}: must be at least 1")
    if devices > 1 and hosts > 1:
        raise OptionError(f"--devices {devices} with --hosts {hosts}: give one or the other (a training spread over "
                          "several processes takes one device in each)")
    if batch_size % devices:
        raise OptionError(f"--batch-size {batch_size} does not split evenly over --devices {devices}: give a "
                          f"multiple of {devices} (the batch is global: each device takes batch-size / devices)")


def uneven_last_batch(rows: dict[str, int], batch_size: int, devices: int, backend: str) -> str | None:
    """Why an epoch's training differs from one device's beyond round-off, if it does: its last train
    batch does not split evenly over the devices, and Keras's TensorFlow trainer scales each
    device's mean loss by 1 / devices (``keras.losses.Loss``'s ``scale_loss_for_distribution``), not
    by each one's share of the rows. JAX cannot split such a batch at all (its sharding needs equal
    shares, of the validation batches too), nor TensorFlow a split that is all one such batch:
    refused there, naming the split and the rows."""
    def uneven(split: str) -> int:
        return rows[split] % batch_size if devices > 1 and rows[split] % batch_size % devices else 0

    for split in ("train", "valid"):  # TensorFlow fails too on a split of one batch that does not split evenly
        if (last := uneven(split)) and (backend == "jax" or rows[split] < batch_size):
            raise OptionError(f"--devices {devices}: the last batch of each epoch's {split} rows ({last} of "
                              f"{rows[split]:,}) does not split evenly over {devices} devices, which {backend} cannot "
                              f"train on: choose a --batch-size for which {rows[split]:,} % batch-size is a multiple "
                              f"of {devices}, or --devices 1")
    if last := uneven("train"):
        return (f"the last batch of each epoch ({last} of {rows['train']:,} train rows) does not split evenly over "
                f"{devices} devices, so its step weighs the rows slightly differently from one device's (a "
                f"--batch-size for which {rows['train']:,} % batch-size is a multiple of {devices} gives the same "
                "training to round-off)")
    return None


def _cpu_split(count: int) -> list[str]:
    """``count`` logical CPU devices, made before TensorFlow starts (it cannot split a started CPU)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    with contextlib.suppress(RuntimeError):  # started already: whatever it has is what there is
        if len(tf.config.get_logical_device_configuration(cpu) or [None]) < count:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    found = [device.name for device in tf.config.list_logical_devices("CPU")]
    if len(found) < count:
        raise OptionError(f"--devices {count}: this machine has no {count} GPUs, and TensorFlow already started in "
                          f"this process with {len(found)} CPU device(s), too late to split the CPU into {count}; "
                          "run the flow in a process of its own (python -m flows ..., or a deployment)")
    return found[:count]


def _tensorflow_devices(count: int) -> list[str]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= count:
        return [device.name for device in tf.config.list_logical_devices("GPU")][:count]
    return _cpu_split(count)


@contextlib.contextmanager
def data_parallel(devices: int, batch_size: int) -> Iterator[Placement]:
    """Build, compile and fit the model inside this: on ``devices`` devices (1: the backend's default
    placement, unchanged)."""
    import keras

    check_batch(devices, batch_size)
    backend = keras.backend.backend()
    if devices == 1:
        yield Placement(backend, ("default",), batch_size)
        return
    if backend == "tensorflow":
        import tensorflow as tf

        names = _tensorflow_devices(devices)
        strategy = tf.distribute.MirroredStrategy(names)
        with strategy.scope():
            yield Placement(backend, tuple(names), batch_size // devices)
        return
    if backend == "jax":
        found = keras.distribution.list_devices()
        if len(found) < devices:
            raise OptionError(f"--devices {devices}: JAX sees {len(found)} device(s) (on a CPU, set XLA_FLAGS="
                              f"--xla_force_host_platform_device_count={devices} before the run starts)")
        with keras.distribution.DataParallel(devices=found[:devices]).scope():
            yield Placement(backend, tuple(map(str, found[:devices])), batch_size // devices)
        return
    raise OptionError(f"--devices {devices}: not supported on Keras's {backend} backend (tensorflow or jax)")
