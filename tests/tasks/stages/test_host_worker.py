"""One process of a training over several, run alone (a cluster of one): EarlyStopping's end is
part of the backup, so a process started again after it (a retry after a later failure) trains
nothing more; the epoch log always matches the backup."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tasks.store.dataset import Frame, to_arrow

pytestmark = pytest.mark.slow  # TensorFlow started in processes of its own

ROOT = Path(__file__).resolve().parents[3]


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tasks.stages.host_worker", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_a_process_started_again_after_early_stopping_trains_nothing_more(housing, tmp_path):
    rows = 2_000
    split = np.array(["train"] * 1_200 + ["valid"] * 400 + ["test"] * 400, dtype=object)
    X = housing.X[:rows]
    X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)  # scaled, as the scale stage leaves it
    frame = Frame(housing.spec, X, housing.y[:rows], np.arange(rows), split)
    pq.write_table(to_arrow(frame), tmp_path / "scaled.parquet")
    config = {"model": "mlp30", "batch_size": 128, "epochs": 6, "seed": 1, "hparams": {}, "patience": 1,
              "min_delta": 1e6,  # no epoch after the first counts as progress: stopped after the second
              "rank": 0, "hosts": 1, "workdir": str(tmp_path), "scaled": str(tmp_path / "scaled.parquet"),
              "tf_config": {"cluster": {"worker": [f"127.0.0.1:{_port()}"]}, "task": {"type": "worker", "index": 0}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    first = _start(tmp_path / "config.json")
    assert first.returncode == 0, first.stderr[-2000:]
    assert [json.loads(line)["epoch"] for line in first.stdout.splitlines() if '"epoch"' in line] == [1, 2]
    log = (tmp_path / "epochs.csv").read_text()
    assert (tmp_path / "best.keras").exists() and bool(np.load(tmp_path / "hosts-backup.npz")["stopped"])

    again = _start(tmp_path / "config.json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout.splitlines()[0]) == {"resumed_at": 3} and '"epoch"' not in again.stdout
    assert (tmp_path / "epochs.csv").read_text() == log  # the same two rows, none added
