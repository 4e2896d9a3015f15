"""A background service process the repository starts: its command, pid recorded under the state folder, output in
``<state_dir>/logs/<name>.log``, started once (a running one is reused), ready when it answers, stopped by its pid.
Spark's servers (spark_server.py) and Airflow's (airflow.py) are kinds of it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from featurelake.config import Settings
from featurelake.errors import ServiceDown
from featurelake.services.postgres import HOST, port_open

STOP_TIMEOUT_S = 60


def _stop_group(pid: int, running: Callable[[], bool], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to the process group ``pid`` leads, SIGKILL to the group while ``running()`` after ``timeout_s``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while running():
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        time.sleep(0.2)


def end_group(proc: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop a child started with ``start_new_session=True`` and the processes of its group (``_stop_group``, then
    SIGKILL to what outlives the child); waits for the child."""
    _stop_group(proc.pid, lambda: proc.poll() is None, timeout_s)
    with contextlib.suppress(ProcessLookupError):  # the group outlives its leader while any member lives
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Daemon(ABC):
    """What a background service declares: ``name`` (file names), ``title`` (messages), ``port`` (None: it serves
    none), ``start_command`` (how a user starts it), ``marker`` (a string of its command line, so that a pid the
    system reused is not taken for it), and its ``command``."""

    name: str
    title: str
    port: int | None
    start_command: str
    start_timeout_s: float = 240

    @property
    @abstractmethod
    def marker(self) -> str: ...

    @abstractmethod
    def command(self, settings: Settings) -> list[str]: ...

    def environment(self, settings: Settings) -> dict[str, str]:
        return dict(os.environ)

    def ready(self, settings: Settings) -> bool:
        """Whether a started process serves (default: its port accepts connections)."""
        return self.port is None or port_open(HOST, self.port)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}" if self.port is not None else "no port"

    @property
    def url(self) -> str:
        """Where a person reaches it (messages)."""
        return f"http://{self.address}"

    def pid_file(self, settings: Settings) -> Path:
        return settings.state_path / f"{self.name}.pid"

    def log_file(self, settings: Settings) -> Path:
        return settings.state_path / "logs" / f"{self.name}.log"

    def _recorded(self, settings: Settings) -> tuple[int, str] | None:
        """The pid and address in the pid file when that process is still this service (not a reused pid)."""
        try:
            pid, _, address = self.pid_file(settings).read_text().strip().partition(" ")
        except OSError:
            return None
        if not pid.isdigit() or self.marker not in _cmdline(int(pid)):
            return None
        return int(pid), address or self.address  # a pid file without the address: written before it was recorded

    def running_pid(self, settings: Settings) -> int | None:
        """The recorded pid when that process is still this service (not a reused pid), else None."""
        recorded = self._recorded(settings)
        return recorded[0] if recorded else None

    def is_up(self, settings: Settings) -> bool:
        """Running on the configured address and serving (a server of this state folder started with another port
        is not the one the settings name)."""
        recorded = self._recorded(settings)
        return recorded is not None and recorded[1] == self.address and self.ready(settings)

    def require(self, settings: Settings) -> None:
        """Raise :class:`ServiceDown` (one line: what is down, how to start it) unless the service answers."""
        if not self.is_up(settings):
            raise ServiceDown(f"{self.title} on {self.address} is not running: start it with {self.start_command}")

    def start(self, settings: Settings) -> tuple[int, bool]:
        """Start the service in the background unless it runs and wait until it serves; (pid, started by this
        call). Raises :class:`ServiceDown` with its log's last lines if it dies or times out first."""
        if (recorded := self._recorded(settings)) is not None:
            pid, address = recorded
            if address != self.address:
                raise ServiceDown(
                    f"{self.title} of this state folder runs on {address} (pid {pid}), not on {self.address}: stop it "
                    "first (`featurelake services stop`)"
                )
            return pid, False
        if self.port is not None and port_open(HOST, self.port):
            raise ServiceDown(
                f"port {self.address} for {self.title} is taken by a process this repository did not start: free "
                f"it or set services.{self.name.replace('-', '_')}.port"
            )
        log = self.log_file(settings)
        log.parent.mkdir(parents=True, exist_ok=True)
        command, env = self.command(settings), self.environment(settings)
        with log.open("w") as sink:
            proc = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=settings.root,
                env=env,
                start_new_session=True,  # its own process group: a terminal's Ctrl-C does not stop it, `stop` does
            )
        self.pid_file(settings).write_text(f"{proc.pid} {self.address}\n")
        deadline = time.monotonic() + self.start_timeout_s
        while not self.ready(settings):
            if proc.poll() is not None or time.monotonic() > deadline:
                self._end(proc.pid)
                proc.wait()
                self.pid_file(settings).unlink(missing_ok=True)
                tail = " / ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                raise ServiceDown(f"{self.title} did not start on {self.address}: {tail} (log: {log})")
            time.sleep(0.5)
        return proc.pid, True

    def stop(self, settings: Settings) -> int | None:
        """Stop the service by its recorded pid; the pid, or None when it was not running."""
        if (pid := self.running_pid(settings)) is None:
            self.pid_file(settings).unlink(missing_ok=True)
            return None
        self._end(pid)
        self.pid_file(settings).unlink(missing_ok=True)
        return pid

    def _end(self, pid: int) -> None:
        """Stop the process group the service leads (its own workers too): ``_stop_group`` while its command runs."""
        _stop_group(pid, lambda: self.marker in _cmdline(pid))
