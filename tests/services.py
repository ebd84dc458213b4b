"""Real services for the tests, each on 127.0.0.1 in a temporary folder, stopped afterwards:
a PostgreSQL cluster (Debian's binaries, run as the unprivileged ``postgres`` user: PostgreSQL
refuses to run as root) and a Prefect server on it, as a team would run it in production."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian's postgresql-15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """A tiny REST client for a Prefect server's API (what the UI itself reads)."""

    def __init__(self, url: str):
        self.url = url  # .../api

    def call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")


def _as_postgres(*command: str, **kwargs) -> subprocess.CompletedProcess:
    runner = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
    return subprocess.run([*runner, *command], check=True, capture_output=True, text=True, timeout=120, **kwargs)


@contextlib.contextmanager
def postgres(database: str = "prefect") -> Iterator[str]:
    """A fresh PostgreSQL cluster with one database; yields its SQLAlchemy URL for asyncpg."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL is not installed ({PG_BIN}); .ci/run installs Debian's postgresql")
    folder = Path(tempfile.mkdtemp(prefix="keras-flows-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    try:
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(folder / "postgres.log"), "-w", "-o",
                     f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        try:
            _as_postgres(str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                         f"create database {database}")
            yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"
        finally:
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def prefect_server(database_url: str | None = None, timeout: float = 180) -> Iterator[Api]:
    """``prefect server start`` on a free port of 127.0.0.1, with its own PREFECT_HOME; on
    ``database_url`` (PostgreSQL) when given, else on SQLite in that home."""
    port, home = free_port(), tempfile.mkdtemp(prefix="keras-flows-prefect-server-")
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_URL": "", "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"}
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    log = open(os.path.join(home, "server.log"), "w")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    api = Api(f"http://127.0.0.1:{port}/api")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                api.call("GET", "/health")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"prefect server did not start; see {log.name}:\n"
                                       + Path(log.name).read_text()[-3000:]) from None
                time.sleep(0.5)
        yield api
    finally:
        stop(server)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it is still there after ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


S3_SECRET = "keras-flows-test-secret-0b2f5c"  # must never appear in anything a run leaves


@contextlib.contextmanager
def s3_server(bucket: str = "keras-flows") -> Iterator[dict[str, str]]:
    """moto's S3 server (as s3fs's own tests run it) in a process of its own on 127.0.0.1, with
    one bucket; yields the environment a client needs (boto3's and pyarrow's standard variables).
    Its objects live in its memory: they are gone when it stops."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="keras-flows-moto-", suffix=".log", delete=False)
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "keras-flows-test",
           "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{env['AWS_ENDPOINT_URL']}/moto-api/", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"moto's S3 server did not start; see {log.name}") from None
                time.sleep(0.2)
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=S3_SECRET, region_name="us-east-1").create_bucket(Bucket=bucket)
        yield {**env, "pid": str(server.pid), "bucket": bucket}
    finally:
        stop(server)
        log.close()
        os.unlink(log.name)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Debian's ``redis-server`` on 127.0.0.1, persisting nothing; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; .ci/run installs Debian's redis-server")
    port = free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        deadline = time.monotonic() + 30
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        stop(server)
