"""One training on two devices (the CPU split into two logical devices: TensorFlow's
MirroredStrategy), from the command line, against the same training on one: the same history to
1e-5 for the same global batch, a model of its own (the devices are in the cache key) whose
lineage says where it ran."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # whole flows in processes of their own: the full suite, not the fast lane

ROOT = Path(__file__).resolve().parents[2]


def _run(store: Path, devices: int) -> dict:
    # a process of its own: TensorFlow splits the CPU only before it starts
    done = subprocess.run([sys.executable, "-m", "flows", "regression", "--epochs", "3", "--devices", str(devices),
                           "--artifacts", str(store), "--json"], cwd=ROOT, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "does not split evenly" not in done.stderr  # 11,610 train rows: the last batch, 26 rows, 13 each
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_devices_train_as_one_does_for_the_same_global_batch(tmp_path):
    runs = {devices: _run(tmp_path / "store", devices) for devices in (1, 2)}
    histories = {d: pd.read_parquet(run["artifacts"]["history"]) for d, run in runs.items()}
    assert len(histories[2]) == 3
    for column in ("loss", "val_loss"):
        assert np.allclose(histories[2][column], histories[1][column], rtol=0, atol=1e-5), column
    assert abs(runs[2]["test"]["loss"] - runs[1]["test"]["loss"]) < 1e-5
    records = {d: json.loads(Path(run["artifacts"]["model"]).with_suffix(".json").read_text())
               for d, run in runs.items()}
    assert runs[2]["artifacts"]["model"] != runs[1]["artifacts"]["model"]  # trained again, not the cached model
    assert records[2]["flow_run_id"] == runs[2]["run_id"] and records[2]["params"]["devices"] == 2
    two, one = records[2]["training"], records[1]["training"]
    assert two["devices"] == ["/device:CPU:0", "/device:CPU:1"] and two["per_device_batch"] == 16
    assert one["devices"] == ["default"] and one["per_device_batch"] == 32 and two["backend"] == "tensorflow"
    assert runs[2]["artifacts"]["scaled"] == runs[1]["artifacts"]["scaled"]  # the data stages reused
