"""Throw-away local servers for tests and benchmarks: redis-server and DynamoDB Local on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from featurelake.errors import ConfigError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


@dataclass
class LocalServer:
    """A server process this code started; ``stop()`` ends exactly that process."""

    proc: subprocess.Popen
    port: int

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_redis(port: int | None = None, *extra: str) -> LocalServer:
    """Start ``redis-server`` on 127.0.0.1 without persistence (``--save '' --appendonly no``); ``extra``: more
    configuration arguments (e.g. ``--user``)."""
    port = port or free_port()
    cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", *extra]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ConfigError("redis-server not found: run `make setup` (installs the Debian package)") from None
    _wait_for_port(port, proc, "redis-server")
    return LocalServer(proc, port)


def start_dynamodb_local(home: Path, port: int | None = None) -> LocalServer:
    """Start DynamoDB Local (fetched by ``make setup`` into ``home``, e.g. .state/dynamodb) in memory."""
    jars = sorted(home.glob("DynamoDBLocal-*.jar"))
    if not jars:
        raise ConfigError(f"DynamoDB Local not found in {home}: run `make setup`")
    port = port or free_port()
    cmd = [
        "java",
        f"-Djava.library.path={home}",
        f"-Dsqlite4java.library.path={home}",
        "-cp",
        f"{home}/*",
        "com.amazonaws.services.dynamodbv2.local.main.ServerRunner",
        "-inMemory",
        "-disableTelemetry",
        "-port",
        str(port),
    ]
    workdir = tempfile.mkdtemp(prefix="dynamodb-local-")  # it leaves a metadata file in its working folder
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)
    _wait_for_port(port, proc, "DynamoDB Local")
    return LocalServer(proc, port)
