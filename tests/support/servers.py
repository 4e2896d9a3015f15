"""Throw-away local servers for tests and benchmarks: redis-server (standalone or a 3-master cluster) and a DynamoDB-API
server (moto) on free loopback ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
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


@dataclass
class LocalRedisCluster:
    """The masters of a Redis Cluster this code started (no replicas); ``stop()`` ends exactly those processes."""

    masters: list[LocalServer]
    folder: Path

    @property
    def nodes(self) -> list[str]:
        return [f"127.0.0.1:{m.port}" for m in self.masters]

    def stop(self) -> None:
        for master in self.masters:
            master.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_redis_cluster(masters: int = 3, *extra: str, timeout: float = 30.0) -> LocalRedisCluster:
    """Start ``masters`` cluster-enabled ``redis-server`` processes (node files in a temporary folder, data and cluster
    bus on free ports), join them with ``redis-cli --cluster create`` (slots split evenly, no replicas) and wait
    until every node reports ``cluster_state:ok``; ``extra``: more configuration arguments for every node."""
    folder = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
    cluster = LocalRedisCluster([], folder)
    try:
        for _ in range(masters):
            port = free_port()
            cluster.masters.append(
                start_redis(
                    port,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    str(free_port()),
                    "--cluster-config-file",
                    str(folder / f"nodes-{port}.conf"),
                    "--dir",
                    str(folder),
                    *extra,
                )  # fmt: skip
            )
        create = ["redis-cli", "--cluster", "create", *cluster.nodes, "--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-500:]}{done.stderr[-500:]}")
        deadline = time.monotonic() + timeout
        for master in cluster.masters:
            info = ["redis-cli", "-p", str(master.port), "cluster", "info"]
            while "cluster_state:ok" not in subprocess.run(info, capture_output=True, text=True, timeout=5).stdout:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Redis Cluster node {master.port} not ok within {timeout:.0f}s")
                time.sleep(0.1)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_dynamodb(port: int | None = None) -> LocalServer:
    """Start a DynamoDB-API server: moto's (``moto_server``, Apache-2.0, the venv's), in memory, on 127.0.0.1."""
    server = Path(sys.executable).with_name("moto_server")
    if not server.is_file():
        raise ConfigError(f"{server} not found: run `make setup` (moto is a dev dependency)")
    port = port or free_port()
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for_port(port, proc, "moto_server")
    return LocalServer(proc, port)
