"""A background service (services/process.py) on a small real process (Python's HTTP server, no JVM): reused when
running, up only on the address it was started with, stopped by its recorded pid."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from featurelake.config import Settings, load_settings
from featurelake.errors import ServiceDown
from featurelake.services.process import Daemon
from tests.support.servers import free_port


@dataclass(frozen=True)
class HttpServer(Daemon):
    port: int
    name: str = "http-test"
    title: str = "a test HTTP server"
    start_command: str = "the test"

    @property
    def marker(self) -> str:
        return "http.server"

    def command(self, settings: Settings) -> list[str]:
        return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(self.port)]


def test_a_server_is_up_on_the_address_it_was_started_with_only(tmp_path):
    settings = load_settings(environ={"FEATURELAKE__STATE_DIR": str(tmp_path)})
    server, elsewhere = HttpServer(free_port()), HttpServer(free_port())
    pid, started = server.start(settings)
    try:
        assert started and server.is_up(settings)
        assert server.start(settings) == (pid, False)  # a running one is reused
        assert server.pid_file(settings).read_text() == f"{pid} 127.0.0.1:{server.port}\n"
        # The same state folder configured with another port: that server is not the one the settings name.
        assert not elsewhere.is_up(settings)
        with pytest.raises(ServiceDown, match=rf"runs on 127.0.0.1:{server.port} \(pid {pid}\), not on"):
            elsewhere.start(settings)
    finally:
        assert server.stop(settings) == pid
    assert not server.is_up(settings) and server.running_pid(settings) is None


def test_s3_server_down_says_how_to_start_it_and_needs_setup(tmp_path, monkeypatch):
    from featurelake.errors import ConfigError
    from featurelake.services.s3 import credentials, s3_server
    from tests.conftest import isolated_env

    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    port = free_port()
    settings = load_settings(
        environ=isolated_env(
            tmp_path,
            FEATURELAKE__SERVICES__S3__PORT=str(port),
            FEATURELAKE__SERVICES__S3__INSTALL_DIR=str(tmp_path / "nothing"),
        )
    )
    server = s3_server(settings)
    with pytest.raises(ServiceDown) as exc:
        server.require(settings)
    assert str(exc.value) == (
        f"the S3 server (S3Proxy) on 127.0.0.1:{port} is not running: start it with `featurelake services start --s3`"
    )
    with pytest.raises(ConfigError, match=f"S3Proxy not found in {tmp_path / 'nothing'}: run `make setup`"):
        server.start(settings)
    assert server.running_pid(settings) is None
    pair = credentials(settings)  # generated once for the state folder, readable by its owner only
    assert pair == credentials(settings) and len(pair[1]) >= 32
    assert (tmp_path / "s3-credentials").stat().st_mode & 0o077 == 0


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not reaped by its parent, counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_end_group_stops_a_child_that_ignores_sigterm_and_the_process_it_started(tmp_path):
    from featurelake.services.process import end_group

    grandchild_pid = tmp_path / "grandchild.pid"
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "sleeper = subprocess.Popen(['sleep', '600'])\n"
        f"open({str(grandchild_pid)!r}, 'w').write(str(sleeper.pid))\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 30
    while not grandchild_pid.is_file() or not grandchild_pid.read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    sleeper = int(grandchild_pid.read_text())
    assert _alive(proc.pid) and _alive(sleeper)
    end_group(proc, timeout_s=1)
    assert proc.returncode == -signal.SIGKILL  # SIGTERM was ignored: SIGKILL after the timeout
    deadline = time.monotonic() + 10
    while _alive(sleeper) and time.monotonic() < deadline:  # init reaps the orphan
        time.sleep(0.05)
    assert not _alive(sleeper)
