"""The local PostgreSQL server: a data folder under ``.state/`` (``initdb`` on first start), listening on 127.0.0.1
only, its postmaster pid recorded beside the folder and stopped by that pid.

PostgreSQL refuses to run as root: a root caller runs the server (and ``initdb``) as the ``postgres`` system user
the Debian package creates, with the data folder owned by it. Clients (``psql``, ``createdb``, Spark's JDBC driver)
connect over TCP as ``services.postgres.user``, trusted on loopback.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from featurelake.config import PG_IDENTIFIER, Settings
from featurelake.errors import ConfigError, ServiceDown

HOST = "127.0.0.1"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"  # the account the Debian package creates; the server runs as it when we are root
START_TIMEOUT_S = 60


def binaries() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<version>/bin)."""
    found = sorted(DEBIAN_ROOT.glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise ConfigError(f"PostgreSQL is not installed (no {DEBIAN_ROOT}/<version>/bin): run `make setup`")
    return found[-1].parent


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@dataclass(frozen=True)
class Postgres:
    """One PostgreSQL server: its data folder, port and superuser."""

    data_dir: Path
    port: int
    user: str
    fsync: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Postgres:
        pg = settings.services.postgres
        return cls(Path(settings.path(pg.data_dir)), pg.port, pg.user, pg.fsync)

    @property
    def pid_file(self) -> Path:
        """Where ``start`` records the postmaster's pid (beside the data folder, so it survives ``initdb``)."""
        return self.data_dir.with_name(self.data_dir.name + ".pid")

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def _run_as(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise ConfigError(
                f"no {SYSTEM_USER!r} system user to run PostgreSQL as (root may not): run `make setup`"
            ) from None
        return ["runuser", "-u", SYSTEM_USER, "--"]

    def running_pid(self) -> int | None:
        """The recorded postmaster's pid when that process still serves this data folder, else None."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
            postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid == postmaster and _alive(pid) else None

    def start(self) -> tuple[int, bool]:
        """Start the server unless it runs (``initdb`` first when the folder is new); (pid, started by this call)."""
        if (pid := self.running_pid()) is not None:
            return pid, False
        if port_open(HOST, self.port):
            raise ServiceDown(
                f"port {self.address} is taken by a process this repository did not start (another clone's "
                "PostgreSQL?): set services.postgres.port (or FEATURELAKE__SERVICES__POSTGRES__PORT)"
            )
        bin_dir, run_as = binaries(), self._run_as()
        self._check_reachable(run_as)
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb(bin_dir, run_as)
        options = [f"-p {self.port}", f"-c listen_addresses={HOST}", "-c unix_socket_directories=''"]
        options += ["-c max_connections=200"]
        if not self.fsync:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        cmd = [*run_as, str(bin_dir / "pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_file)]
        cmd += ["-w", "-t", str(START_TIMEOUT_S), "-s", "-o", " ".join(options)]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            log_tail = (
                self.log_file.read_text(errors="replace").strip().splitlines()[-3:] if self.log_file.exists() else []
            )
            raise ServiceDown(
                f"PostgreSQL did not start on {self.address}: {(proc.stderr or proc.stdout).strip()} "
                f"{' / '.join(log_tail)} (log: {self.log_file})"
            )
        pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        self.pid_file.write_text(f"{pid}\n")
        return pid, True

    def _check_reachable(self, run_as: list[str]) -> None:
        """Under root the server runs as the ``postgres`` user, which must be able to enter the data folder's parent
        (a private folder above it, e.g. a 0700 home or ``mktemp -d``, shuts it out)."""
        parent = self.data_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        if run_as and subprocess.run([*run_as, "test", "-x", str(parent)], stdin=subprocess.DEVNULL).returncode != 0:
            raise ConfigError(
                f"PostgreSQL runs as the {SYSTEM_USER!r} user when you are root, and it cannot enter {parent} (a "
                f"folder above it is private): `chmod o+x` that folder, or set services.postgres.data_dir to a "
                "folder it can reach"
            )

    def _initdb(self, bin_dir: Path, run_as: list[str]) -> None:
        """A new cluster in a sibling folder, renamed into place once complete (no half-made data folder)."""
        staging = self.data_dir.with_name(self.data_dir.name + ".initdb")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True, mode=0o700)
        if run_as:
            shutil.chown(staging, SYSTEM_USER, SYSTEM_USER)
        cmd = [*run_as, str(bin_dir / "initdb"), "-D", str(staging), "-U", self.user, "--auth=trust"]
        cmd += ["-E", "UTF8", "--locale=C"]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise ServiceDown(f"initdb of {self.data_dir} failed: {proc.stderr.strip()}")
        if self.data_dir.exists():  # an empty or leftover folder without PG_VERSION
            shutil.rmtree(self.data_dir)
        staging.rename(self.data_dir)

    def stop(self) -> int | None:
        """Stop the server by its recorded pid (fast shutdown: sessions end, data is flushed); the pid, or None."""
        if (pid := self.running_pid()) is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while _alive(pid):
            if time.monotonic() > deadline:
                raise ServiceDown(f"PostgreSQL (pid {pid}) did not stop within {START_TIMEOUT_S}s")
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def _client(self, program: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(binaries() / program), "-h", HOST, "-p", str(self.port), "-U", self.user, *args]
        return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def databases(self) -> list[str]:
        proc = self._client("psql", "-X", "-d", "postgres", "-tAc", "SELECT datname FROM pg_database ORDER BY 1")
        if proc.returncode != 0:
            raise ServiceDown(f"PostgreSQL on {self.address} did not answer: {proc.stderr.strip()}")
        return proc.stdout.split()

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; True when this call created it."""
        _check_name(name)
        if name in self.databases():
            return False
        proc = self._client("createdb", name)
        if proc.returncode != 0 and name not in self.databases():  # another driver may have just created it
            raise ServiceDown(f"cannot create database {name} on {self.address}: {proc.stderr.strip()}")
        return proc.returncode == 0

    def drop_database(self, name: str) -> None:
        _check_name(name)
        proc = self._client("dropdb", "--if-exists", "--force", name)
        if proc.returncode != 0:
            raise ServiceDown(f"cannot drop database {name} on {self.address}: {proc.stderr.strip()}")


def _check_name(name: str) -> None:
    if not PG_IDENTIFIER.match(name):
        raise ConfigError(f"{name!r} is not a PostgreSQL database name (lower-case letters, digits, _; at most 63)")
