"""One training spread over several processes (``--hosts N``), each a Prefect task on the flow's
task runner: threads of this process that each start a training process here, or a Dask
cluster's workers, each on its own machine.

Each part (``train_part``) takes a free port on its host, says where it listens in the training's
rendezvous folder (beside its backup, in the store: in the bucket for a store on object storage),
waits for the other parts, and starts ``tasks/stages/host_worker.py`` with the cluster in
``TF_CONFIG``: the first part's process is TensorFlow's chief and coordinator. A process that dies
makes the others' collective steps fail; a part whose process failed says so in the rendezvous
folder, and the others stop theirs if it has not stopped by itself within ``PEER_GRACE_SECONDS``.
The stage then fails naming the lost process (its rank, host, pid and the signal that ended it),
and its retry starts every process again from the last epoch the chief backed up.

Where several hosts run the parts, each must reach the others at the address it gives:
``KERAS_FLOWS_TRAIN_HOST`` (default 127.0.0.1, this machine only).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.params import TrainParams
from tasks.stages.host_worker import DIVERGED
from tasks.store.artifacts import ArtifactRef, ArtifactStore
from tasks.store.stage import logger

HOST_ENV = "KERAS_FLOWS_TRAIN_HOST"
RENDEZVOUS_SECONDS = 180  # for every part to start (the task runner must run all at once)
PEER_GRACE_SECONDS = 30  # for a process whose peer was lost to fail by itself before it is stopped


class TrainingLost(RuntimeError):
    """A process of a training spread over several was lost, or failed: the stage's retry resumes."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _await_all(store: ArtifactStore, cluster: str, hosts: int) -> list[str]:
    """Every part's address, in rank order, once all have said it."""
    folder, deadline = store.root / cluster, time.monotonic() + RENDEZVOUS_SECONDS
    while True:
        store.pull_folder(cluster)
        found = {p.stem: json.loads(p.read_text())["address"] for p in folder.glob("part-*.json")}
        if len(found) == hosts:
            return [found[f"part-{rank}"] for rank in range(hosts)]
        if time.monotonic() > deadline:
            raise TrainingLost(f"only {len(found)} of {hosts} training processes started in {RENDEZVOUS_SECONDS} s: "
                               "the task runner must run them all at once")
        time.sleep(0.5)


def _ended(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


@task(name="train-part", cache_policy=NO_CACHE)
def train_part(rank: int, hosts: int, attempt: str, artifacts: str, scaled: ArtifactRef, backup: str,
               config: dict[str, Any]) -> dict[str, Any]:
    """Process ``rank`` of a training over ``hosts`` processes: run it here, relay its epochs, and
    say (raise) how it ended if it did not finish."""
    store = ArtifactStore(artifacts)
    here = store.here(scaled, whole=True)
    store.pull_folder(backup, every=True)
    workdir, cluster = store.root / backup, f"{backup}/cluster-{attempt}"
    address = f"{os.environ.get(HOST_ENV) or '127.0.0.1'}:{_free_port()}"
    (store.root / cluster).mkdir(parents=True, exist_ok=True)
    store.write_json(store.root / cluster / f"part-{rank}.json", json.dumps({"address": address}))
    workers = _await_all(store, cluster, hosts)
    setup = {**config, "rank": rank, "hosts": hosts, "workdir": str(workdir), "scaled": here.path,
             "tf_config": {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}}
    config_file = store.root / cluster / f"config-{rank}.json"
    config_file.write_text(json.dumps(setup))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(sys.path)}
    log_file = workdir / f"process-{rank}-{attempt}.log"
    with open(log_file, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "tasks.stages.host_worker", str(config_file)],
                                   stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        said: dict[str, Any] = {}
        relay = threading.Thread(target=contextvars.copy_context().run, daemon=True,  # Prefect's logger there too
                                 args=(_relay, process, said, store, workdir, rank == 0))
        relay.start()
        try:
            code = _wait(process, store, cluster, rank)
        finally:  # never leave a training process behind (it would write into the retry's folder)
            if process.poll() is None:
                process.kill()
                process.wait()
        relay.join()
    who = f"process {rank + 1} of {hosts} ({address}, pid {process.pid})"
    if code == DIVERGED:
        return {"rank": rank, "diverged": True, **said}
    if code != 0:
        peers = [p for p in (store.root / cluster).glob("failed-*") if p.name != f"failed-{rank}.json"]
        store.write_json(store.root / cluster / f"failed-{rank}.json", json.dumps({"code": code}))
        if code < 0 and not peers:
            raise TrainingLost(f"{who} was lost: {_ended(code)}")
        if peers:
            raise TrainingLost(f"{who} stopped ({_ended(code)}) when another process was lost")
        tail = log_file.read_text().strip().splitlines()[-1:] or [""]
        raise TrainingLost(f"{who} failed ({_ended(code)}): {tail[0][-300:]} (its log: {log_file})")
    return {"rank": rank, "address": address, "pid": process.pid, **said}


def _relay(process: subprocess.Popen, said: dict, store: ArtifactStore, workdir: Path, chief: bool) -> None:
    """The process's lines (JSON): its first epoch, and, from the chief, each finished epoch, logged and
    its backup put in the store as soon as it is written."""
    for line in process.stdout:  # read to the end whatever happens, or the process blocks on a full pipe
        try:
            news = json.loads(line)
            said.update({k: v for k, v in news.items() if k == "resumed_at"})
            if chief and "epoch" in news:
                logger().info("epoch %d: loss %.4f, val_loss %.4f", news["epoch"], news["loss"], news["val_loss"])
                store.push_folder(workdir)  # the backup (one file: a copy taken mid-epoch resumes consistently)
        except (ValueError, AttributeError, KeyError, TypeError):
            continue  # not a line of the process's own
        except OSError as error:  # the bucket did not answer: the next epoch's push tries again
            logger().warning("the training's backup was not put in the store this epoch: %s", error)


def _wait(process: subprocess.Popen, store: ArtifactStore, cluster: str, rank: int) -> int:
    """The process's exit code; stopped when another part's process failed and this one has not ended
    by itself within the grace period (a collective step can wait long for a peer that is gone)."""
    lost_since, looked = None, 0.0
    while (code := process.poll()) is None:
        if store.remote and time.monotonic() - looked > 2:  # the other parts may be on other machines
            looked = time.monotonic()
            with contextlib.suppress(OSError):
                store.pull_folder(cluster)
        if lost_since is None and any(p.name != f"failed-{rank}.json" for p in (store.root / cluster).glob("failed-*")):
            lost_since = time.monotonic()
        if lost_since is not None and time.monotonic() - lost_since > PEER_GRACE_SECONDS:
            process.terminate()
        time.sleep(0.5)
    return code


def train_on_hosts(store: ArtifactStore, scaled: ArtifactRef, params: TrainParams, backup: str,
                   artifacts: str) -> dict[str, Any]:
    """Run the training's ``params.hosts`` processes as parts on the flow's task runner; what they
    said (the first epoch of this attempt, the addresses), or ``TrainingLost`` naming what was lost."""
    config = {"model": params.model, "batch_size": params.batch_size, "epochs": params.epochs, "seed": params.seed,
              "hparams": params.hparams(), "patience": params.patience, "min_delta": params.min_delta}
    attempt = uuid.uuid4().hex[:12]
    futures = [train_part.with_options(task_run_name=f"train-part {rank + 1} of {params.hosts}").submit(
        rank, params.hosts, attempt, artifacts, scaled, backup, config) for rank in range(params.hosts)]
    outcomes = [future.result(raise_on_failure=False) for future in futures]
    store.drop_folder(f"{backup}/cluster-{attempt}")
    lost = sorted((str(o) for o in outcomes if isinstance(o, BaseException)), key=lambda said: "stopped" in said)
    if lost:
        raise TrainingLost(f"the training over {params.hosts} processes stopped: {'; '.join(lost)}")
    return {"resumed_at": outcomes[0].get("resumed_at", 1), "diverged": any(o.get("diverged") for o in outcomes),
            "workers": tuple(o.get("address", "") for o in outcomes)}
