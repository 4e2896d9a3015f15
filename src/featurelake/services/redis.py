"""The local Redis server (``featurelake services start --redis``): Debian's ``redis-server`` on
127.0.0.1:``services.redis.port``, durable (an append-only file in ``services.redis.data_dir``), the online store of
the cluster environment (conf/cluster.yaml) where no task may keep state on a local disk of its own.

With ``online_store.redis_username`` set, the server knows that ACL user with the password of
``$FEATURELAKE_REDIS_PASSWORD`` (written to an ACL file readable by its owner only, never on a command line) and its
default user is off, as a production server would be.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from featurelake.config import Settings
from featurelake.errors import ConfigError
from featurelake.online.backends.redis import PASSWORD_ENV
from featurelake.services.postgres import HOST
from featurelake.services.process import Daemon


class RedisServer(Daemon):
    port: int
    name = "redis"
    title = "the Redis server"
    start_command = "`featurelake services start --redis`"
    start_timeout_s = 30

    def __init__(self, settings: Settings):
        self.port = settings.services.redis.port
        self.data_dir = Path(settings.path(settings.services.redis.data_dir))
        self.username = settings.online_store.redis_username

    @property
    def marker(self) -> str:
        return str(self.data_dir)

    def command(self, settings: Settings) -> list[str]:
        server = shutil.which("redis-server")
        if server is None:
            raise ConfigError("redis-server not found: run `make setup` (installs Debian's redis-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [server, "--bind", HOST, "--port", str(self.port), "--dir", str(self.data_dir),
                   "--appendonly", "yes", "--save", "",
                   # redis-server rewrites its command line into this title: it must keep the marker
                   "--proc-title-template", f"{{title}} {{listen-addr}} {self.marker}"]  # fmt: skip
        if self.username:
            command += ["--aclfile", str(self._acl_file())]
        return command

    def _acl_file(self) -> Path:
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            raise ConfigError(
                f"online_store.redis_username is {self.username!r} but ${PASSWORD_ENV} is not set: export the "
                "user's password"
            )
        if not re.fullmatch(r"[A-Za-z0-9_.@-]+", self.username or "") or any(c.isspace() for c in password):
            raise ConfigError(
                f"online_store.redis_username {self.username!r} or ${PASSWORD_ENV}: an ACL user name is letters, "
                "digits, '_.@-', and a password has no white space"
            )
        path = self.data_dir / "users.acl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"user default off\nuser {self.username} on >{password} ~* &* +@all\n")
        return path


def redis_server(settings: Settings) -> RedisServer:
    return RedisServer(settings)
