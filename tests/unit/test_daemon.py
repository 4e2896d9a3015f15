"""A background service (services/process.py) on a small real process (Python's HTTP server, no JVM): reused when
running, up only on the address it was started with, stopped by its recorded pid."""

from __future__ import annotations

import sys
from dataclasses import dataclass

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
