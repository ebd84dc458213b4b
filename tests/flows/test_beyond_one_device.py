"""One training beyond one device, from the command line, against the same training on one:

- on two devices (the CPU split into two logical devices: TensorFlow's MirroredStrategy; on JAX,
  XLA's two host devices and Keras's DataParallel): the same history to 1e-5 for the same global
  batch, a model of its own (the devices are in the cache key) whose lineage says where it ran;
- over two processes (two tasks of the flow's task runner, joined on loopback by TensorFlow's
  MultiWorkerMirroredStrategy): one model, one lineage record, the single process's test MSE within
  0.01; a process killed mid-training fails the stage naming it, and the retry resumes from the
  last epoch backed up, ending with the very model of an uninterrupted run.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # whole flows in processes of their own: the full suite, not the fast lane

ROOT = Path(__file__).resolve().parents[2]


def _run(store: Path | str, *options: str, env: dict | None = None, epochs: int = 3) -> tuple[dict, str]:
    # a process of its own: TensorFlow splits the CPU only before it starts
    done = subprocess.run([sys.executable, "-m", "flows", "regression", "--epochs", str(epochs), *options,
                           "--artifacts", str(store), "--json"], cwd=ROOT,
                          env={**os.environ, "PREFECT_LOGGING_LEVEL": "INFO", **(env or {})},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout + done.stderr  # the run's log too


def _record(run: dict) -> dict:
    return json.loads(Path(run["artifacts"]["model"]).with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    """The course's housing MLP, 3 epochs, one process on one device."""
    store = tmp_path_factory.mktemp("beyond") / "store"
    return store, _run(store, "--devices", "1")[0]


def test_two_devices_train_as_one_does_for_the_same_global_batch(one):
    store, single = one
    run, said = _run(store, "--devices", "2")
    assert "does not split evenly" not in said  # 11,610 train rows: the last batch, 26 rows, 13 each
    histories = [pd.read_parquet(r["artifacts"]["history"]) for r in (single, run)]
    assert len(histories[1]) == 3
    for column in ("loss", "val_loss"):
        assert np.allclose(histories[1][column], histories[0][column], rtol=0, atol=1e-5), column
    assert abs(run["test"]["loss"] - single["test"]["loss"]) < 1e-5
    assert run["artifacts"]["model"] != single["artifacts"]["model"]  # trained again, not the cached model
    assert run["artifacts"]["scaled"] == single["artifacts"]["scaled"]  # the data stages reused
    record, first = _record(run), _record(single)
    assert record["flow_run_id"] == run["run_id"] and record["params"]["devices"] == 2
    two, one_ = record["training"], first["training"]
    assert two["devices"] == ["/device:CPU:0", "/device:CPU:1"] and two["per_device_batch"] == 16
    assert one_["devices"] == ["default"] and one_["per_device_batch"] == 32 and two["backend"] == "tensorflow"


def test_on_jax_two_virtual_devices_train_as_one_does(tmp_path):
    """Keras's DataParallel over JAX's CPU split into two (XLA's host platform device count)."""
    jax = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    if os.environ.get("KERAS_FLOWS_JAX_LIBS"):  # CI's JAX, kept off the suite's own path (.ci/run)
        jax["PYTHONPATH"] = os.pathsep.join([os.environ["KERAS_FLOWS_JAX_LIBS"], os.environ.get("PYTHONPATH", "")])
    elif importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed: pip install -e '.[jax]' (CI brings it, see .ci/run)")
    runs = [_run(tmp_path / "store", "--devices", str(d), env=jax, epochs=2)[0] for d in (1, 2)]
    histories = [pd.read_parquet(run["artifacts"]["history"]) for run in runs]
    for column in ("loss", "val_loss"):
        assert np.allclose(histories[1][column], histories[0][column], rtol=0, atol=1e-5), column
    training = _record(runs[1])["training"]
    assert training["backend"] == "jax" and training["devices"] == ["cpu:0", "cpu:1"]
    assert training["per_device_batch"] == 16 and runs[1]["artifacts"]["model"] != runs[0]["artifacts"]["model"]


def test_a_training_over_two_processes_writes_one_model_as_good_as_one_process_s(one, tmp_path):
    _, single = one
    run, said = _run(tmp_path / "a", "--hosts", "2")
    assert said.count("Task run 'train-part") >= 2 and "train-part 2 of 2" in said  # two tasks of the flow
    record = _record(run)
    assert record["flow_run_id"] == run["run_id"] and not record["also_produced_by"]  # one model, one record
    training = record["training"]
    assert training["hosts"] == 2 and training["per_device_batch"] == 16 and len(training["devices"]) == 2
    assert all(device.startswith("127.0.0.1:") for device in training["devices"])
    assert abs(run["test"]["loss"] - single["test"]["loss"]) < 0.01
    assert len(pd.read_parquet(run["artifacts"]["history"])) == 3

    lost, said = _run(tmp_path / "b", "--hosts", "2", env={"KERAS_FLOWS_LOSE_HOST": "1:2"})  # after epoch 2
    assert "process 2 of 2 (127.0.0.1:" in said and "was lost: killed by SIGKILL" in said
    assert re.search(r"process 1 of 2 \(127.0.0.1:\d+, pid \d+\) stopped \((exit code 1|killed by SIGTERM)\) when "
                     "another process was lost", said)  # its collective step failed, or it was stopped
    assert "this attempt from epoch 3" in said  # the retry, from the backup of epoch 2
    assert lost["artifacts"]["model"].split("/")[-1] == run["artifacts"]["model"].split("/")[-1]  # the same bytes


def test_a_training_over_two_processes_keeps_its_rendezvous_and_backup_in_a_bucket(tmp_path):
    """The store on object storage: the parts meet through the bucket, the chief's backup goes there
    after each epoch, and the model lands there; the training's folder is gone once it finished."""
    import boto3

    from tests.services import s3_server

    with s3_server() as s3:
        aws = {k: v for k, v in s3.items() if k.startswith("AWS_")}
        store = f"s3://{s3['bucket']}/hosts"
        run, said = _run(store, "--hosts", "2", epochs=2, env={**aws, "KERAS_FLOWS_CACHE": str(tmp_path / "cache")})
        assert run["artifacts"]["model"].startswith(f"{store}/model/") and "train-part 2 of 2" in said
        client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], region_name=s3["AWS_REGION"],
                              aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=s3["AWS_SECRET_ACCESS_KEY"])
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3["bucket"], Prefix="hosts/").get("Contents", [])]
        assert run["artifacts"]["model"][len(f"s3://{s3['bucket']}/"):] in keys
        # backup and rendezvous dropped at the end (pyarrow leaves the empty folder's marker)
        assert [k for k in keys if k.startswith("hosts/.train/")] == ["hosts/.train/"]
