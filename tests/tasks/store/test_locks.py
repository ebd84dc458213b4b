"""The stage lock across hosts (a real Redis server) and on one machine (a file lock)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tasks.store.locks import LEASE_ENV, LOCKS_ENV, held
from tests.services import redis_server


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


def _second_waits_for_the_first(tmp_path) -> list[str]:
    events: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with held("store:raw:k", tmp_path / "a.lock"):
            inside.set()
            time.sleep(1.0)
            events.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(10)
    with held("store:raw:k", tmp_path / "b.lock"):  # another host: another lock file, the same name
        events.append("second in")
    thread.join()
    return events


def test_hosts_sharing_a_redis_server_take_turns(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv(LOCKS_ENV, redis_url)
    assert _second_waits_for_the_first(tmp_path) == ["first done", "second in"]


def test_without_redis_the_lock_is_this_machine_s_own(tmp_path, monkeypatch):
    monkeypatch.delenv(LOCKS_ENV, raising=False)
    assert _second_waits_for_the_first(tmp_path) == ["second in", "first done"]  # two lock files: no turn


HOLD = """
import time
from pathlib import Path
from tasks.store.locks import held
with held("store:model:k", Path({path!r})):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_holder_that_dies_frees_the_lock_within_a_lease_and_a_live_one_keeps_it(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv(LOCKS_ENV, redis_url)
    monkeypatch.setenv(LEASE_ENV, "2")
    holder = subprocess.Popen([sys.executable, "-c", HOLD.format(path=str(tmp_path / "x.lock"))],
                              stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert holder.stdout.readline().strip() == "holding"
    got = threading.Event()

    def wait_for_it() -> None:
        with held("store:model:k", tmp_path / "y.lock"):
            got.set()

    waiter = threading.Thread(target=wait_for_it, daemon=True)
    waiter.start()
    assert not got.wait(5)  # 2.5 leases: the live holder renewed it
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert got.wait(5)  # the dead one's lease ran out
    waiter.join()
