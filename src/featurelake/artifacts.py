"""Where the artifacts live, and reading and writing them: the files tasks write besides tables (GE's Data Docs and
validation results, training-set manifests' JSON copies, the monitoring report, the catalog page).

The root is ``storage.artifacts``: a local folder or ``s3a://bucket[/prefix]``. Unset, it is the state folder (so
``make run`` keeps them under ``.state/``), or, when the warehouse is on ``s3a://``, the folder ``artifacts`` beside
it (``s3a://b/warehouse`` -> ``s3a://b/artifacts``): then any worker reads what another wrote, and no task leaves a
file only on its machine's disk. Object-store files go through boto3 (``services.s3.client``: endpoint, path-style
and region from ``storage.s3``, credentials from the environment), as the object store's other operations do;
pyarrow's S3 filesystem sends checksums S3-compatible servers (S3Proxy) reject unless the process environment says
otherwise.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featurelake.config import Settings
from featurelake.errors import InputError

SCHEME = "s3a://"


def artifacts_root(settings: Settings) -> ArtifactPath:
    """The root of the artifacts: ``storage.artifacts``, else beside an ``s3a://`` warehouse, else the state folder."""
    storage = settings.storage
    if storage.artifacts:
        return ArtifactPath(settings.path(storage.artifacts).rstrip("/"), settings)
    if storage.warehouse.startswith(SCHEME):
        bucket, _, prefix = storage.warehouse[len(SCHEME) :].strip("/").partition("/")
        parent = prefix.rpartition("/")[0]
        return ArtifactPath(f"{SCHEME}{bucket}/{parent + '/' if parent else ''}artifacts", settings)
    return ArtifactPath(str(settings.state_path), settings)


def location(settings: Settings, value: str | None, default: str) -> ArtifactPath:
    """A configured location (a folder or ``s3a://`` URL), or ``default`` under the artifacts root when unset."""
    if value:
        return ArtifactPath(settings.path(value).rstrip("/"), settings)
    return artifacts_root(settings) / default


@dataclass(frozen=True)
class ArtifactPath:
    """A file or folder of the artifacts: an absolute local path or an ``s3a://bucket/key`` URL."""

    url: str
    settings: Settings = field(compare=False, repr=False)

    @property
    def remote(self) -> bool:
        return self.url.startswith(SCHEME)

    @property
    def path(self) -> Path:
        """The local path (a remote location has none)."""
        if self.remote:
            raise ValueError(f"{self.url} is not on the local disk")
        return Path(self.url)

    @property
    def display(self) -> str:
        """What a person is shown: the ``s3a://`` URL, or a ``file://`` URL a browser opens."""
        return self.url if self.remote else self.path.as_uri()

    def __truediv__(self, part: str) -> ArtifactPath:
        return ArtifactPath(f"{self.url}/{part.strip('/')}", self.settings)

    def _bucket_key(self) -> tuple[str, str]:
        bucket, _, key = self.url[len(SCHEME) :].partition("/")
        return bucket, key

    def _client(self) -> Any:
        from featurelake.services.s3 import client

        return client(self.settings)

    def write_text(self, text: str) -> None:
        if not self.remote:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(text, encoding="utf-8")
            return
        bucket, key = self._bucket_key()
        self._client().put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType=_content_type(key))

    def read_text(self) -> str:
        if not self.remote:
            if not self.path.is_file():
                raise InputError(f"{self.url} does not exist")
            return self.path.read_text(encoding="utf-8")
        bucket, key = self._bucket_key()
        boto = self._client()
        try:
            return boto.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        except boto.exceptions.NoSuchKey:
            raise InputError(f"{self.url} does not exist") from None

    def files(self) -> list[str]:
        """The files under this folder, as paths relative to it, sorted."""
        if not self.remote:
            root = self.path
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        bucket, key = self._bucket_key()
        prefix = key + "/"
        names = []
        for page in self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            names += [o["Key"][len(prefix) :] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        return sorted(names)

    def upload(self, folder: Path, names: list[str] | None = None) -> None:
        """Copy ``names`` (default: every file) of local ``folder`` to the same relative paths under this folder."""
        names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if names is None else names
        if not self.remote:
            for name in names:
                target = self.path / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / name, target)
            return
        bucket, key = self._bucket_key()
        boto = self._client()
        for name in names:
            boto.upload_file(
                str(folder / name), bucket, f"{key}/{name}", ExtraArgs={"ContentType": _content_type(name)}
            )

    @contextmanager
    def writing(self) -> Iterator[Path]:
        """A local folder to write this folder's files into: the folder itself, or for the object store a scratch
        folder whose files are uploaded here when the block ends without an error."""
        if not self.remote:
            if self.path.exists() and not self.path.is_dir():
                raise InputError(f"{self.url} exists and is not a folder")
            self.path.mkdir(parents=True, exist_ok=True)
            yield self.path
            return
        with tempfile.TemporaryDirectory(prefix="featurelake-artifacts-") as scratch:
            yield Path(scratch)
            self.upload(Path(scratch))


def local_copy(settings: Settings, folder: Path, out: str) -> ArtifactPath:
    """Copy the files of ``folder`` into local folder ``out`` (what ``--out`` gives a person to open); return it."""
    if "://" in out:
        raise InputError(f"--out {out}: give a local folder (the pages themselves go to the artifacts location)")
    copy = ArtifactPath(settings.path(out), settings)
    if copy.path.exists() and not copy.path.is_dir():
        raise InputError(f"{copy.url} exists and is not a folder")
    if copy.path.resolve() != folder.resolve():
        copy.upload(folder)
    return copy


def _content_type(name: str) -> str:
    """The Content-Type a browser needs to show a page served from the object store."""
    import mimetypes

    return mimetypes.guess_type(name)[0] or "application/octet-stream"
