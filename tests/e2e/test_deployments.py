"""Production, as a Prefect team runs it: a server on PostgreSQL, ``prefect deploy --all`` from the
repository's ``prefect.yaml``, the artifact store in an S3 bucket, stage locks on Redis, and two
process workers standing for two hosts (each with its own working folder, HOME, TMPDIR and
PREFECT_HOME: they share only the server, the bucket and Redis).

The workers get the code the way ``prefect.yaml`` says: each run clones the repository (this
checkout's committed HEAD) into the run's own folder.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import psutil
import pytest

from tasks.core.faults import PAUSE_ENV
from tests.services import S3_SECRET, postgres, prefect_server, redis_server, s3_server, stop

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane

ROOT = Path(__file__).resolve().parents[2]
POOL = "keras-flows"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """The server on PostgreSQL, the deployments of prefect.yaml, and two workers."""
    base = tmp_path_factory.mktemp("production")
    with postgres() as database, prefect_server(database) as api, s3_server() as s3, redis_server() as locks:
        shared = {**{k: v for k, v in s3.items() if k.startswith("AWS_")}, "KERAS_FLOWS_LOCKS": locks}
        store = f"s3://{s3['bucket']}/production"
        env = {**os.environ, **shared, "PREFECT_API_URL": api.url, "PREFECT_HOME": str(base / "deployer-home"),
               "KERAS_FLOWS_REPOSITORY": str(ROOT), "KERAS_FLOWS_ARTIFACTS": store}
        prefect(env, "work-pool", "create", POOL, "--type", "process")
        prefect(env, "--no-prompt", "deploy", "--all")
        prefect(env, "automation", "create", "--from-file", "flows/launch/automations.yaml")
        workers = [worker(api.url, base / host, host, shared) for host in ("host-a", "host-b")]
        client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=S3_SECRET, region_name=s3["AWS_REGION"])
        try:
            online(api, {"host-a", "host-b"})
            yield {"api": api, "env": env, "store": store, "base": base, "bucket": s3["bucket"], "client": client,
                   "shared": shared, "workers": workers}
        finally:
            for process in workers:
                stop(process)


def prefect(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def online(api, names: set[str], timeout: float = 180) -> None:
    """Wait until each named worker has polled the pool (sent its first heartbeat)."""
    deadline = time.monotonic() + timeout
    while {w["name"] for w in api.call("POST", f"/work_pools/{POOL}/workers/filter", {})} < names:
        assert time.monotonic() < deadline, f"workers {names} did not come online in {timeout} s"
        time.sleep(1)


def worker(api_url: str, host: Path, name: str, shared: dict[str, str]) -> subprocess.Popen:
    """``prefect worker start`` as on a machine of its own: nothing shared but the server, the
    bucket and Redis (``shared``: where they are, as a team sets them on each worker machine).
    Its flow runs start in sessions of their own (Prefect's runner): ``die`` kills the whole tree."""
    for folder in ("home", "tmp", "prefect-home", "work"):
        (host / folder).mkdir(parents=True)
    env = {**os.environ, **shared, "PREFECT_API_URL": api_url, "HOME": str(host / "home"), "TMPDIR": str(host / "tmp"),
           "PREFECT_HOME": str(host / "prefect-home"), "PIPELINE_DATA": str(host / "data-cache"),
           "PREFECT_LOGGING_LEVEL": "INFO"}
    log = open(host / "worker.log", "w")
    return subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--name", name,
                             "--limit", "1"], cwd=host / "work", env=env, stdout=log, stderr=subprocess.STDOUT)


def die(process: subprocess.Popen) -> None:
    """The machine stops: the worker and every process under it (its flow runs), all at once."""
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for each in tree:
        each.suspend()  # frozen first, so that nothing notices the others going and says goodbye
    for each in tree:
        each.kill()
    process.wait(timeout=60)


def start_deployment(production, name: str, **params) -> str:
    """``prefect deployment run NAME --param k=v ...``: the new flow run's id."""
    args = [arg for key, value in params.items() for arg in ("--param", f"{key}={value}")]
    started = prefect(production["env"], "deployment", "run", name, *args)
    return next(line.split()[-1] for line in started.stdout.splitlines() if "UUID" in line)


def run_deployment(production, name: str, timeout: float = 600, **params) -> dict:
    """A deployment's run, started as a user would, once it has ended."""
    return wait(production["api"], start_deployment(production, name, **params), timeout)


def wait(api, run_id: str, timeout: float, states: set[str] = FINAL) -> dict:
    """The flow run once its state is one of ``states`` (by default: once it has ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.call("GET", f"/flow_runs/{run_id}")
        if run["state_type"] in states:
            return run
        time.sleep(2)
    raise AssertionError(f"flow run {run_id} not {states} in {timeout} s: {run['state_type']}")


def objects(production) -> dict[str, bytes]:
    client, bucket = production["client"], production["bucket"]
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def logs(api, run_id: str) -> str:
    found = api.call("POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
    return "\n".join(entry["message"] for entry in found)


def test_prefect_yaml_deploys_every_flow_with_each_parameter_described(production):
    api = production["api"]
    found = api.call("POST", "/deployments/filter", {})
    names = {(d["entrypoint"], d["name"]) for d in found}
    assert names == {("flows/regression.py:regression", "housing"),
                     ("flows/classification.py:classification", "fashion-mnist"),
                     ("flows/zoo.py:zoo", "zoo"), ("flows/search.py:search", "search"),
                     ("flows/predict.py:predict", "predict")}
    housing = next(d for d in found if d["name"] == "housing")
    assert housing["work_pool_name"] == POOL
    assert housing["parameters"] == {"artifacts": production["store"]}  # read from the deployer's environment
    epochs = housing["parameter_openapi_schema"]["properties"]["epochs"]
    # the UI's form says what an empty field means: the course's epochs for housing, the table set-up's for a table
    assert epochs.get("default") is None and "100 for housing" in epochs["description"]
    pull = housing["pull_steps"][0]["prefect.deployments.steps.git_clone"]
    assert pull["repository"] in (str(ROOT), "{{ $KERAS_FLOWS_REPOSITORY }}")


def test_deployments_run_on_the_workers_with_one_parameter_overridden(production, housing_csv, fashion_table):
    api, store = production["api"], production["store"]
    housing = run_deployment(production, "regression/housing", epochs=2, data=housing_csv, target="MedHouseVal")
    assert housing["state_type"] == "COMPLETED", logs(api, housing["id"])
    fashion = run_deployment(production, "classification/fashion-mnist", epochs=1, data=fashion_table,
                             target="label")
    assert fashion["state_type"] == "COMPLETED", logs(api, fashion["id"])
    assert housing["parameters"]["epochs"] == 2 and housing["parameters"]["artifacts"] == store
    held = objects(production)
    models = [json.loads(blob) for key, blob in held.items() if key.startswith("production/model/")
              and key.endswith(".json")]
    assert sorted(m["training"]["epochs_run"] for m in models) == [1, 2]  # each run's one override
    for model in models:
        for parent in model["parents"]:  # every artifact is in the bucket, beside its sidecar
            name = f"production/{Path(parent['path']).parent.name}/{Path(parent['path']).name}"
            assert name in held and name.rsplit(".", 1)[0] + ".json" in held
    log = logs(api, housing["id"])
    assert "Executing deployment step: git_clone" in log and "Worker 'host-" in log
    assert "oneDNN" not in log and "cuda" not in log.lower()  # TensorFlow's start-up lines stay out
    verify = subprocess.run([sys.executable, "-m", "flows", "verify", "--artifacts", store], cwd=ROOT,
                            env=production["env"], capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0 and "all intact" in verify.stdout, verify.stdout + verify.stderr
    assert S3_SECRET not in log + "".join(blob.decode(errors="replace") for blob in held.values())


def test_the_same_run_twice_at_once_on_two_workers_produces_each_stage_once(production, housing_csv, tmp_path):
    api = production["api"]
    table = tmp_path / "houses-twice.csv"  # a table of its own: no stage of it is in the store yet
    table.write_bytes(housing_csv.read_bytes())
    params = {"epochs": 3, "seed": 5, "data": table, "target": "MedHouseVal"}
    ids = [start_deployment(production, "regression/housing", **params) for _ in range(2)]
    runs = [wait(api, run_id, 600) for run_id in ids]
    assert [run["state_type"] for run in runs] == ["COMPLETED"] * 2, [logs(api, run_id) for run_id in ids]
    texts = [logs(api, run_id) for run_id in ids]
    assert {"Worker 'host-a'" in text for text in texts} == {True, False}  # one on each host
    trained = [json.loads(blob) for key, blob in objects(production).items() if key.startswith("production/model/")
               and key.endswith(".json")]
    ours = [m for m in trained if m["flow_run_id"] in ids]
    assert len(ours) == 1 and not ours[0].get("also_produced_by")  # trained once: the other waited, then took it
    states: dict[str, list[str]] = {}
    for run_id in ids:
        for task_run in api.call("POST", "/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}}):
            states.setdefault(task_run["name"].rsplit("-", 1)[0], []).append(task_run["state_name"])
    assert set(states) >= {"load", "validate-raw", "split", "scale", "train", "evaluate", "report", "champion"}
    # every stage produced by one run, and Cached in Prefect's terms in the other
    assert {stage: names for stage, names in states.items() if sorted(names) != ["Cached", "Completed"]} == {}


def models_of(production, prefix: str) -> dict[str, str]:
    """The flow run id of each model sidecar under ``prefix`` in the bucket, by model file name."""
    return {json.loads(blob)["flow_run_id"]: Path(key).with_suffix("").name for key, blob in objects(production).items()
            if key.startswith(f"{prefix}/model/") and key.endswith(".json")}


def test_a_run_whose_worker_died_is_crashed_retried_on_another_worker_and_resumes(production, housing_csv, tmp_path):
    api, base = production["api"], production["base"]
    table = tmp_path / "houses-killed.csv"  # a table of its own: nothing of it in the store yet
    table.write_bytes(housing_csv.read_bytes())
    params = {"epochs": 5, "patience": 10, "seed": 7, "data": table, "target": "MedHouseVal"}
    others = production["workers"]
    for process in others:  # the other hosts are busy: the run goes to host-c, which will die
        os.kill(process.pid, signal.SIGSTOP)
    dying = worker(api.url, base / "host-c", "host-c", {**production["shared"], PAUSE_ENV: "epoch:3"})
    try:
        run_id = start_deployment(production, "regression/housing", **params)
        log, deadline = base / "host-c" / "worker.log", time.monotonic() + 300
        while "paused at epoch:3" not in log.read_text():  # epochs 1 and 2 are backed up in the bucket
            assert time.monotonic() < deadline and dying.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
    finally:
        die(dying)  # the machine dies: worker and flow run, no goodbye
        for process in others:
            os.kill(process.pid, signal.SIGCONT)
    crashed = wait(api, run_id, 300, states={"CRASHED", "COMPLETED", "FAILED"})  # by the automation
    assert crashed["state_type"] == "CRASHED" and "heartbeat" in crashed["state"]["message"], crashed["state"]
    prefect(production["env"], "flow-run", "retry", run_id)  # as an operator would, or the UI's Retry
    retried = wait(api, run_id, 600)
    text = logs(api, run_id)
    assert retried["state_type"] == "COMPLETED", text[-3000:]
    assert "this attempt from epoch 3" in text and ("Worker 'host-a'" in text or "Worker 'host-b'" in text)
    straight = run_deployment(production, "regression/housing", **params,
                              artifacts=f"s3://{production['bucket']}/uninterrupted")
    assert straight["state_type"] == "COMPLETED", logs(api, straight["id"])[-3000:]
    assert models_of(production, "production")[run_id] == models_of(production, "uninterrupted")[straight["id"]]
    left = [key for key in objects(production) if "/.train/" in key and not key.endswith("/.train/")]
    assert not left  # the backup went with the finished training
