"""The command line's options for training on more than one device (``tasks/model/devices.py``).
Light, as ``options``: no Prefect or Keras."""
from __future__ import annotations

import argparse

from tasks.core.errors import OptionError
from tasks.model.devices import DISTRIBUTIONS, check_batch


def add_device_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--devices", type=int, default=1, metavar="N",
                     help="train data-parallel on N devices of this machine: its GPUs, or, on a machine with "
                          "fewer, the CPU split into N (runs and matches one device; no faster). --batch-size is "
                          "the global batch, each device taking an equal share (default: %(default)s)")
    sub.add_argument("--hosts", type=int, default=1, metavar="N",
                     help="spread one training over N processes, each a task on the flow's task runner (processes "
                          "of this machine; with --runner dask --address, the cluster's machines), joined by "
                          "TensorFlow's MultiWorkerMirroredStrategy; --batch-size is the global batch "
                          "(default: %(default)s)")
    sub.add_argument("--distribution", choices=DISTRIBUTIONS, default=DISTRIBUTIONS[0],
                     help="how the devices share the training: data-parallel, a replica of the model on each "
                          "device and the batch split between them (default: %(default)s)")


def check_device_options(args: argparse.Namespace) -> None:
    """Refuse a device or process count below 1, both above 1, or a global batch the devices cannot
    share evenly."""
    if getattr(args, "devices", None) is not None:
        check_batch(args.devices, args.batch_size, args.hosts)
        if args.runner == "dask" and not args.address and args.hosts > args.workers:
            raise OptionError(f"--hosts {args.hosts} with --runner dask: a local cluster of --workers {args.workers} "
                              f"runs {args.workers} training process(es) at once; give --workers {args.hosts}")
