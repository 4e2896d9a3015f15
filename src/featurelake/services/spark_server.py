"""A long-running Spark server of pyspark's own (the Thrift SQL endpoint, Spark Connect): one ``spark-submit
--class <main> spark-internal`` with every setting a featurelake driver applies (Delta, the shared metastore, the
warehouse, UTC), started in the background on loopback, its pid recorded under the state folder, stopped by that
pid; its output in ``<state_dir>/logs/<name>.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from featurelake.config import Settings
from featurelake.errors import ServiceDown
from featurelake.services.postgres import HOST, port_open

START_TIMEOUT_S = 240  # a cold JVM, the metastore client and the server's own start, on a busy 2-core machine
STOP_TIMEOUT_S = 60


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class SparkServer:
    """One Spark server: what it is (``title``, for messages), its main class, port and extra settings."""

    name: str  # file names under the state folder: <name>.pid, logs/<name>.log
    title: str  # e.g. "the SQL endpoint (Spark Thrift server)"
    main_class: str
    port: int
    start_command: str  # how a user starts it, for the one-line "is not running" error
    conf: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # the server's own arguments, after spark-internal

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def pid_file(self, settings: Settings) -> Path:
        return settings.state_path / f"{self.name}.pid"

    def log_file(self, settings: Settings) -> Path:
        return settings.state_path / "logs" / f"{self.name}.log"

    def running_pid(self, settings: Settings) -> int | None:
        """The recorded pid when that process is still this server (not a reused pid), else None."""
        try:
            pid = int(self.pid_file(settings).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if self.main_class in _cmdline(pid) else None

    def is_up(self, settings: Settings) -> bool:
        """Running and accepting connections."""
        return self.running_pid(settings) is not None and port_open(HOST, self.port)

    def require(self, settings: Settings) -> None:
        """Raise :class:`ServiceDown` (one line: what is down, how to start it) unless the server answers."""
        if not self.is_up(settings):
            raise ServiceDown(f"{self.title} on {self.address} is not running: start it with {self.start_command}")

    def command(self, settings: Settings) -> list[str]:
        from featurelake.spark import spark_conf, spark_submit_prefix

        base = spark_conf(settings)
        # The JARs also on the driver's class path: the server's session threads load Delta's catalog through
        # the system class loader, which does not see the jars spark-submit adds (ClassNotFoundException).
        class_path = [base["spark.driver.extraClassPath"]] if "spark.driver.extraClassPath" in base else []
        class_path += base["spark.jars"].split(",")
        conf = {
            "spark.app.name": f"{settings.spark.app_name}-{self.name}",
            "spark.driver.extraClassPath": ":".join(class_path),
            **self.conf,
        }
        return [*spark_submit_prefix(settings, conf), "--class", self.main_class, "spark-internal", *self.args]

    def start(self, settings: Settings) -> tuple[int, bool]:
        """Start the server in the background unless it runs, and wait until it accepts connections;
        (pid, started by this call). Raises :class:`ServiceDown` with the log's last lines if it dies first."""
        from featurelake.services.metastore import require_metastore

        if (pid := self.running_pid(settings)) is not None:
            return pid, False
        if port_open(HOST, self.port):
            raise ServiceDown(
                f"port {self.address} for {self.title} is taken by a process this repository did not start: free "
                f"it or set services.{self.name}.port"
            )
        require_metastore(settings)
        log = self.log_file(settings)
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
        with log.open("w") as sink:
            proc = subprocess.Popen(
                self.command(settings),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=settings.root,
                env=env,
                start_new_session=True,  # not stopped by the terminal's Ctrl-C; `stop` ends it
            )
        self.pid_file(settings).write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_open(HOST, self.port):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                self.pid_file(settings).unlink(missing_ok=True)
                tail = " / ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                raise ServiceDown(f"{self.title} did not start on {self.address}: {tail} (log: {log})")
            time.sleep(0.5)
        return proc.pid, True

    def stop(self, settings: Settings) -> int | None:
        """Stop the server by its recorded pid (SIGTERM, then SIGKILL after STOP_TIMEOUT_S); the pid, or None."""
        if (pid := self.running_pid(settings)) is None:
            self.pid_file(settings).unlink(missing_ok=True)
            return None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.main_class in _cmdline(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        self.pid_file(settings).unlink(missing_ok=True)
        return pid
