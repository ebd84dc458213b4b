"""A run whose store is a bucket (and whose table is in one), from the command line, against a real
S3 API (moto's server on 127.0.0.1); a second host, with a working copy of its own, reuses it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.services import S3_SECRET, s3_server

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane

ROOT = Path(__file__).resolve().parents[2]


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def _objects(client, bucket: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_a_run_on_a_bucket_keeps_everything_there_and_no_secret_anywhere(housing_csv, tmp_path):
    with s3_server() as s3:
        client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=S3_SECRET, region_name=s3["AWS_REGION"])
        client.upload_file(str(housing_csv), s3["bucket"], "tables/houses.csv")
        store, table = f"s3://{s3['bucket']}/runs", f"s3://{s3['bucket']}/tables/houses.csv"
        aws = {k: v for k, v in s3.items() if k.startswith("AWS_")}
        hosts = {name: {**os.environ, **aws, "KERAS_FLOWS_CACHE": str(tmp_path / name / "cache"),
                        "PIPELINE_DATA": str(tmp_path / name / "data")} for name in ("host-a", "host-b")}
        command = ("regression", "--epochs", "2", "--data", table, "--target", "MedHouseVal", "--artifacts", store,
                   "--json")
        first = _cli(hosts["host-a"], *command)
        assert first.returncode == 0, first.stderr[-3000:]
        summary = json.loads(first.stdout.strip().splitlines()[-1])
        held = _objects(client, s3["bucket"])
        for stage, url in summary["artifacts"].items():
            assert url.startswith(f"{store}/") and url[len(f"s3://{s3['bucket']}/"):] in held, stage
            assert url.replace(".parquet", ".json").rsplit(".", 1)[0] + ".json" in {f"s3://{s3['bucket']}/{k}"
                                                                                     for k in held}, stage
        assert any(key.startswith("runs/champions/") for key in held)
        assert not (ROOT / "s3:").exists()  # nothing written to a local folder named after the URL
        verified = _cli(hosts["host-a"], "verify", "--artifacts", store)
        assert verified.returncode == 0 and "all intact" in verified.stdout, verified.stdout + verified.stderr

        second = _cli(hosts["host-b"], *command)  # another machine: nothing of its own yet
        assert second.returncode == 0, second.stderr[-3000:]
        again = json.loads(second.stdout.strip().splitlines()[-1])
        assert again["artifacts"] == summary["artifacts"] and again["test"] == summary["test"]  # all reused
        model = json.loads(held[summary["artifacts"]["model"][len(f"s3://{s3['bucket']}/"):].replace(".keras",
                                                                                                     ".json")])
        assert model["flow_run_id"] == summary["run_id"]  # trained once, by the first host
        tables = sorted(p.parent.name for p in (tmp_path / "host-b" / "cache").rglob("*.parquet"))
        assert "raw" not in tables and "scaled" not in tables, tables  # reused where they lie: never downloaded

        everything = [first.stdout, first.stderr, second.stdout, second.stderr, verified.stdout]
        everything += [blob.decode(errors="replace") for blob in _objects(client, s3["bucket"]).values()]
        for folder in (tmp_path, Path(os.environ["PREFECT_HOME"])):  # working copies, data, Prefect's database
            everything += [p.read_bytes().decode(errors="replace") for p in folder.rglob("*") if p.is_file()]
        assert not [text for text in everything if S3_SECRET in text]


def test_a_store_that_stops_answering_for_ten_seconds_delays_the_run_and_leaves_nothing_half_written(tmp_path):
    import signal
    import threading
    import time

    with s3_server() as s3:
        env = {**os.environ, **{k: v for k, v in s3.items() if k.startswith("AWS_")},
               "KERAS_FLOWS_CACHE": str(tmp_path / "cache"), "PREFECT_LOGGING_LEVEL": "INFO"}
        store = f"s3://{s3['bucket']}/paused"
        run = subprocess.Popen([sys.executable, "-m", "flows", "regression", "--epochs", "6", "--artifacts", store,
                                "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        seen: dict[str, float] = {}
        resume = threading.Timer(10, os.kill, (int(s3["pid"]), signal.SIGCONT))
        lines = []
        for line in run.stdout:  # moto keeps its objects in memory: paused (SIGSTOP), not restarted
            lines.append(line)
            for epoch in ("epoch 2/6", "epoch 3/6"):
                if epoch in line:
                    seen[epoch] = time.monotonic()
            if "epoch 2/6" in line and not resume.is_alive() and not resume.finished.is_set():
                os.kill(int(s3["pid"]), signal.SIGSTOP)
                resume.start()
        assert run.wait(timeout=600) == 0, "".join(lines[-30:])
        resume.join()
        assert seen["epoch 3/6"] - seen["epoch 2/6"] >= 8  # epoch 2's backup waited for the store
        verified = _cli(env, "verify", "--artifacts", store)
        assert verified.returncode == 0 and "all intact" in verified.stdout, verified.stdout + verified.stderr
