"""Shared fixtures: slices of the real data (from DATA_MIRROR) and quiet, fast Prefect settings;
and the check that the suite leaves no process behind."""
from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

# before Prefect is imported anywhere: a persistent home (no migrations per run), no telemetry;
# one per pytest-xdist worker, since each runs its own embedded server on the home's database
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
os.environ.setdefault("PREFECT_HOME", str(Path(tempfile.gettempdir()) / f"keras-flows-test-prefect{_worker}"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if "DATA_MIRROR" not in os.environ and _shared.is_dir():
    os.environ["DATA_MIRROR"] = str(_shared)

import shutil  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tasks.stages.load import load_california_housing, load_fashion_mnist  # noqa: E402
from tests.leftovers import left_behind  # noqa: E402

SESSION_MARK = "KERAS_FLOWS_TEST_SESSION"  # in the environment of every process the suite starts


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller, before any worker starts
        os.environ.setdefault(SESSION_MARK, str(uuid.uuid4()))


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session, exitstatus):
    """Once every test and worker has finished: fail the run if a process it started is still running."""
    yield
    if not session.config.pluginmanager.has_plugin("dsession"):  # not the controller of xdist's workers:
        return  # with -n 0 this process is still running, and what ends with it has not ended yet
    left = left_behind(os.environ[SESSION_MARK], but=(os.getpid(), os.getppid()), grace=15)
    if left:
        print("\nprocesses the tests started are still running:\n  " + "\n  ".join(left))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own empty data/ cache, so only the mirror feeds the loaders."""
    monkeypatch.setenv("PIPELINE_DATA", str(tmp_path / "data-cache"))


@pytest.fixture(scope="session")
def fashion():
    return load_fashion_mnist()[0]


@pytest.fixture(scope="session")
def housing():
    return load_california_housing()[0]


@pytest.fixture
def fashion_table(fashion, tmp_path) -> Path:
    """A user table cut from real Fashion-MNIST: 2,400 train, 600 valid, 600 test rows, 784 columns."""
    rng = np.random.default_rng(0)
    train = rng.choice(60_000, 3_000, replace=False)
    test = 60_000 + rng.choice(10_000, 600, replace=False)
    rows = np.concatenate([train, test])
    df = pd.DataFrame(fashion.X[rows], columns=[f"px{i}" for i in range(784)])
    df["label"] = fashion.y[rows].astype(np.int64)
    df["split"] = ["train"] * 2_400 + ["valid"] * 600 + ["test"] * 600
    path = tmp_path / "fashion-slice.parquet"
    df.to_parquet(path)
    return path


@pytest.fixture
def housing_csv(housing, tmp_path) -> Path:
    """A user CSV cut from the real housing data: 3,000 rows, no split column."""
    df = pd.DataFrame(housing.X[:3_000], columns=list(housing.spec.features))
    df["MedHouseVal"] = housing.y[:3_000]
    path = tmp_path / "housing-slice.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture
def corrupt_mirror(tmp_path):
    """A copy of the Fashion-MNIST mirror whose train-labels file has one byte flipped."""
    def make(name: str = "train-labels-idx1-ubyte.gz") -> Path:
        source = Path(os.environ["DATA_MIRROR"]) / "fashion-mnist"
        target = tmp_path / "mirror" / "fashion-mnist"
        target.mkdir(parents=True)
        for gz in source.glob("*.gz"):
            shutil.copy(gz, target / gz.name)
        data = bytearray((target / name).read_bytes())
        data[-1] ^= 0xFF
        (target / name).write_bytes(bytes(data))
        return tmp_path / "mirror"
    return make
