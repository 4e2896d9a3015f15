"""The HTTP feature server as a background service: uvicorn on 127.0.0.1:``services.online.port`` running
:func:`featurelake.serve.online.create_app` (``featurelake serve online``, ``make serve``)."""

from __future__ import annotations

import sys

from featurelake.config import Settings
from featurelake.services.postgres import HOST
from featurelake.services.process import Daemon

APP = "featurelake.serve.online:create_app"


def uvicorn_command(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", APP, "--factory", "--host", HOST, "--port", str(port),
            "--no-access-log"]  # fmt: skip


class OnlineServer(Daemon):
    port: int
    name = "online-server"
    title = "the feature server"
    start_command = "`featurelake serve online` (or `make serve`)"
    start_timeout_s = 60

    def __init__(self, port: int):
        self.port: int = port

    @property
    def marker(self) -> str:
        return APP

    def command(self, settings: Settings) -> list[str]:
        return uvicorn_command(self.port)


def online_server(settings: Settings, port: int | None = None) -> OnlineServer:
    return OnlineServer(port or settings.services.online.port)
