"""One producer per stage key: the lock a stage (and the champion gate) holds while it works.

On one machine it is a file lock (``fcntl``): the kernel releases it when its holder dies, so a
killed run never blocks the next. Across machines, name a Redis server in ``KERAS_FLOWS_LOCKS``
(``redis://host:6379/0``): the lock is a Redis key with a lease (``KERAS_FLOWS_LOCK_LEASE``
seconds, 30 by default) that its holder renews while it works, so a holder that dies frees the key
within one lease, and a training of any length keeps it.

Why not Prefect's ``RedisLockManager`` (prefect-redis): its ``acquire_lock`` by the holder of a
lock returns at once without extending the lock's expiry, so a lock either outlives a killed
holder (no ``hold_timeout``) or expires under a long training (a ``hold_timeout``); the
renewable lease of redis-py's own ``Lock`` (``reacquire``) does both. Why not Prefect's cache
records for the cache itself: a record found by its key is taken as it is, while the store checks
every artifact's bytes against its name before it reuses them (``ArtifactStore.cache_get``).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

LOCKS_ENV = "KERAS_FLOWS_LOCKS"  # redis://...: locks shared by every host that runs the flows
LEASE_ENV = "KERAS_FLOWS_LOCK_LEASE"  # seconds a Redis lock lives unless its holder renews it


@contextlib.contextmanager
def held(name: str, lock_file: Path) -> Iterator[None]:
    """Hold the lock ``name`` (waiting for another holder to finish): through Redis when
    ``KERAS_FLOWS_LOCKS`` names a server, else on ``lock_file`` on this machine."""
    url = os.environ.get(LOCKS_ENV)
    with (_redis_lock(url, name) if url else file_lock(lock_file)):
        yield


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """A lock of this machine on ``path`` (threads and processes alike: each opens its own handle)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _redis_lock(url: str, name: str) -> Iterator[None]:
    import redis

    lease = float(os.environ.get(LEASE_ENV) or 30)
    key = "keras-flows:lock:" + hashlib.sha256(name.encode()).hexdigest()
    lock = redis.Redis.from_url(url).lock(key, timeout=lease, thread_local=False)
    lock.acquire(blocking=True, token=f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    done = threading.Event()

    def renew() -> None:
        while not done.wait(lease / 3):
            with contextlib.suppress(redis.RedisError):  # a lost lease only lets another host produce too
                lock.reacquire()

    renewer = threading.Thread(target=renew, name="lock-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        with contextlib.suppress(redis.RedisError):  # expired meanwhile: nothing left to release
            lock.release()
