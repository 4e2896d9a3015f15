"""The local S3-compatible object store: S3Proxy (Maven Central, fetched by ``make setup`` into
``services.s3.install_dir``) with its filesystem-nio2 backend (each bucket a folder of ``services.s3.data_dir``) on
127.0.0.1:``services.s3.port``; and a boto3 client for the object store's own operations (buckets, listings, uploads).

Its access key pair is $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY when both are set, else a pair generated once for
this state folder (``<state_dir>/s3-credentials``, readable by its owner only); :func:`credentials_env` gives it to
the processes that use the server (Spark's and boto3's default credentials chains read it from the environment).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from featurelake.config import Settings
from featurelake.errors import ConfigError
from featurelake.services.postgres import HOST
from featurelake.services.process import Daemon

MAIN_CLASS = "org.gaul.s3proxy.Main"
KEY_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _private_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def credentials(settings: Settings) -> tuple[str, str]:
    """The local server's access key pair: from the environment when both variables are set, else this state
    folder's own (generated on first use)."""
    if all(os.environ.get(v) for v in KEY_VARS):
        return os.environ[KEY_VARS[0]], os.environ[KEY_VARS[1]]
    path = settings.state_path / "s3-credentials"
    if not path.is_file():
        _private_write(path, json.dumps({"access_key": "featurelake", "secret_key": secrets.token_urlsafe(24)}))
    pair = json.loads(path.read_text())
    return pair["access_key"], pair["secret_key"]


def credentials_env(settings: Settings) -> dict[str, str]:
    """Environment variables that give a process (a Spark driver, boto3) the local server's key pair."""
    return dict(zip(KEY_VARS, credentials(settings), strict=True))


class S3Server(Daemon):
    port: int
    name = "s3"
    title = "the S3 server (S3Proxy)"
    start_command = "`featurelake services start --s3`"
    start_timeout_s = 120

    def __init__(self, settings: Settings):
        self.port = settings.services.s3.port
        self.home = Path(settings.path(settings.services.s3.install_dir))
        self.data_dir = Path(settings.path(settings.services.s3.data_dir))
        self.properties = settings.state_path / "s3proxy.properties"

    @property
    def marker(self) -> str:
        return str(self.properties)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self, settings: Settings) -> list[str]:
        if not any(self.home.glob("s3proxy-*.jar")):
            raise ConfigError(f"S3Proxy not found in {self.home}: run `make setup`")
        access_key, secret_key = credentials(settings)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The `filesystem-nio2` backend: it creates an object under If-None-Match: * by a hard link, so of writers
        # racing for one key exactly one succeeds (Delta's commits rely on it: storage.s3.commit_coordination);
        # S3Proxy refuses conditional writes on the legacy `filesystem` backend.
        _private_write(
            self.properties,
            "\n".join(
                [
                    f"s3proxy.endpoint={self.endpoint}",
                    "s3proxy.authorization=aws-v2-or-v4",
                    f"s3proxy.identity={access_key}",
                    f"s3proxy.credential={secret_key}",
                    "jclouds.provider=filesystem-nio2",
                    f"jclouds.filesystem.basedir={self.data_dir}",
                ]
            )
            + "\n",
        )
        return [
            "java",
            f"-Dlogback.configurationFile={settings.root / 'conf' / 's3proxy-logback.xml'}",
            "-cp",
            f"{self.home}/*",
            MAIN_CLASS,
            "--properties",
            str(self.properties),
        ]


def s3_server(settings: Settings) -> S3Server:
    return S3Server(settings)


def client(settings: Settings, endpoint: str | None = None) -> Any:
    """A boto3 S3 client for ``storage.s3`` (or ``endpoint``): path-style when configured; checksums only where an
    operation requires them (S3-compatible servers reject the SDK's default trailing checksums). Credentials come from
    boto3's default chain (the environment, a profile, an instance role), read now: a session of its own, not boto3's
    process-wide default one, which keeps the credentials it first found."""
    import boto3
    from botocore.config import Config

    s3 = settings.storage.s3
    config = Config(
        region_name=s3.region,
        s3={"addressing_style": "path" if s3.path_style_access else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint or s3.endpoint, config=config)


def is_local_endpoint(settings: Settings) -> bool:
    """Whether S3A points at this state folder's S3 server (``storage.s3.endpoint`` is its address)."""
    return (settings.storage.s3.endpoint or "").rstrip("/") == S3Server(settings).endpoint


def local_credentials_env(settings: Settings) -> dict[str, str]:
    """The local server's key pair as environment variables when S3A points at it and the environment has no pair of
    its own; else nothing (the SDK's default chain finds the credentials)."""
    if not is_local_endpoint(settings) or all(os.environ.get(v) for v in KEY_VARS):
        return {}
    return credentials_env(settings)


def warehouse_bucket(settings: Settings) -> str | None:
    """The bucket of an ``s3a://`` warehouse, else None."""
    warehouse = settings.storage.warehouse
    return warehouse.removeprefix("s3a://").split("/", 1)[0] if warehouse.startswith("s3a://") else None


def ensure_bucket(settings: Settings, bucket: str) -> bool:
    """Create ``bucket`` unless it exists; whether this call created it."""
    s3 = client(settings)
    if any(b["Name"] == bucket for b in s3.list_buckets().get("Buckets", [])):
        return False
    s3.create_bucket(Bucket=bucket)
    return True
