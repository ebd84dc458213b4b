"""The champion gate when two hosts decide at the same moment: one bucket (a real S3 API, moto's
server on 127.0.0.1), one Redis server for the locks, two processes with working copies of their
own. Each decision is a read-modify-write of the gate's history, so without a lock both would read
the same history: one decision lost and two "first" champions."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.serving.champion import gate_name, history
from tasks.store.artifacts import ArtifactStore
from tasks.store.locks import LOCKS_ENV
from tasks.store.remote import CACHE_ENV
from tests.services import redis_server, s3_server

pytestmark = pytest.mark.slow  # three servers and two interpreters

ROOT = Path(__file__).resolve().parents[3]
ROUNDS = 3

HOST = """
import json, pathlib, sys, time
import pyarrow as pa
from tasks.serving.champion import decide
from tasks.store.artifacts import ArtifactStore

store, me, go = ArtifactStore(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
for round in range({rounds}):
    dataset = f"race{{round}}"
    refs = [store.put_table(pa.table({{"host": [me], "part": [part]}}), part, dataset=dataset)
            for part in ("model", "scaler", "scaled")]
    print("ready", flush=True)
    while not (go / str(round)).exists():  # both hosts start deciding at the same moment
        time.sleep(0.001)
    decision = decide(store, dataset, "regression", "MedHouseVal", *refs, {{"loss": 0.6}})
    print(json.dumps({{"round": round, "promoted": decision.promoted}}), flush=True)
"""


def test_two_hosts_deciding_at_once_lose_no_decision_and_make_one_champion(tmp_path, monkeypatch):
    with s3_server() as s3, redis_server() as locks:
        url = f"s3://{s3['bucket']}/race"
        aws = {k: v for k, v in s3.items() if k.startswith("AWS_")}
        go = tmp_path / "go"
        go.mkdir()
        hosts = [subprocess.Popen([sys.executable, "-c", HOST.format(rounds=ROUNDS), url, name, str(go)], cwd=ROOT,
                                  env={**os.environ, **aws, LOCKS_ENV: locks, CACHE_ENV: str(tmp_path / name)},
                                  stdout=subprocess.PIPE, text=True)
                 for name in ("host-a", "host-b")]
        said: list[dict] = []
        for round in range(ROUNDS):
            for host in hosts:
                assert host.stdout.readline().strip() == "ready", "a host died before deciding"
            (go / str(round)).touch()
            said += [json.loads(host.stdout.readline()) for host in hosts]
        for host in hosts:
            assert host.wait(timeout=120) == 0
        for name, value in {**aws, CACHE_ENV: str(tmp_path / "reader")}.items():
            monkeypatch.setenv(name, value)
        store = ArtifactStore(url)
        for round in range(ROUNDS):
            decisions = history(store, gate_name(f"race{round}", "regression", "MedHouseVal"))
            assert len(decisions) == 2  # both decisions recorded, neither overwritten
            assert [d.promoted for d in decisions] == [True, False]  # the second does not beat the first
            assert decisions[1].champion_before == decisions[0].model.sha256
            assert sorted(s["promoted"] for s in said if s["round"] == round) == [False, True]
