"""Layered settings: conf/base.yaml, then conf/<FEATURELAKE_ENV>.yaml, then environment variables.

Environment variables named ``FEATURELAKE__SECTION__KEY`` override a setting (values are parsed as
YAML, so ``8`` is an int). Every value is validated by the pydantic schema below; an unknown key or a
wrong type stops the run with a message naming the key and the file (or variable) it came from.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from featurelake.errors import ConfigError

ENV_VAR = "FEATURELAKE_ENV"
HOME_VAR = "FEATURELAKE_HOME"
OVERRIDE_PREFIX = "FEATURELAKE__"
DEFAULT_ENV = "local"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Section):
    app_name: str = "featurelake"
    master: str = "local[*]"
    jars_dir: str = ".state/jars"
    shuffle_partitions: int = Field(8, ge=1)
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)


class MetastoreSettings(_Section):
    derby_dir: str | None = ".state/metastore_db"
    uri: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MetastoreSettings:
        if not self.derby_dir and not self.uri:
            raise ValueError("set derby_dir (embedded metastore) or uri (remote metastore)")
        return self


class StorageSettings(_Section):
    warehouse: str = ".state/warehouse"
    metastore: MetastoreSettings = MetastoreSettings()
    databases: list[str] = Field(default_factory=lambda: ["raw", "staging", "features", "training", "monitoring"])
    log_retention: str = "interval 90 days"
    deleted_file_retention: str = "interval 30 days"


class OnlineStoreSettings(_Section):
    type: Literal["sqlite", "redis", "dynamodb"] = "sqlite"
    sqlite_path: str = ".state/online/online.db"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    dynamodb_region: str = "us-east-1"
    dynamodb_endpoint_url: str | None = None
    dynamodb_table_prefix: str = "featurelake"


class IngestSettings(_Section):
    source_dir: str | None = None
    timezone: str = "America/New_York"
    demo_start: dt.date = dt.date(2013, 1, 1)
    demo_end: dt.date = dt.date(2013, 1, 7)


class Settings(_Section):
    env: str = DEFAULT_ENV
    root: Path = Path(".")
    state_dir: str = ".state"
    spark: SparkSettings = SparkSettings()
    storage: StorageSettings = StorageSettings()
    online_store: OnlineStoreSettings = OnlineStoreSettings()
    ingest: IngestSettings = IngestSettings()

    def path(self, value: str) -> str:
        """Resolve a configured path: URIs (s3a://...) as they are, relative paths against the repo root."""
        if "://" in value:
            return value
        p = Path(value)
        return str(p if p.is_absolute() else (self.root / p).resolve())

    @property
    def state_path(self) -> Path:
        return Path(self.path(self.state_dir))


def find_root(environ: dict[str, str] | None = None) -> Path:
    """The repository root: $FEATURELAKE_HOME, else the nearest folder above cwd (or this file) with conf/."""
    if home := (os.environ if environ is None else environ).get(HOME_VAR):
        return Path(home).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "conf" / "base.yaml").is_file():
                return candidate
    raise ConfigError(f"cannot find conf/base.yaml above {Path.cwd()}; set {HOME_VAR} to the repository root")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def _merge(target: dict[str, Any], layer: dict[str, Any], origin: str, origins: dict[str, str], prefix=()):
    """Deep-merge ``layer`` into ``target`` and remember which file set each dotted key."""
    for key, value in layer.items():
        dotted = (*prefix, str(key))
        if isinstance(value, dict) and isinstance(target.get(key), dict) and dotted != ("spark", "conf"):
            _merge(target[key], value, origin, origins, dotted)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key] = {**target[key], **value}
            origins[".".join(dotted)] = origin
        else:
            target[key] = value
            origins[".".join(dotted)] = origin


def _env_overrides(environ: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    layers = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(OVERRIDE_PREFIX):
            continue
        parts = [p.lower() for p in name[len(OVERRIDE_PREFIX) :].split("__") if p]
        if parts[:2] == ["spark", "conf"] and len(parts) > 2:  # spark conf keys keep their dots
            parts = ["spark", "conf", ".".join(parts[2:])]
        value: Any = yaml.safe_load(raw) if raw.strip() else None
        for part in reversed(parts):
            value = {part: value}
        layers.append((f"environment variable {name}", value))
    return layers


def _origin_of(loc: tuple[Any, ...], origins: dict[str, str]) -> str:
    parts = [str(p) for p in loc]
    while parts:
        if (key := ".".join(parts)) in origins:
            return origins[key]
        parts.pop()
    return "defaults"


def load_settings(env: str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Load and validate the settings for ``env`` (default: $FEATURELAKE_ENV or ``local``)."""
    environ = dict(os.environ if environ is None else environ)
    root = find_root(environ)
    env = env or environ.get(ENV_VAR) or DEFAULT_ENV
    conf_dir = root / "conf"
    env_file = conf_dir / f"{env}.yaml"
    if env == "base" or not env_file.is_file():
        known = sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"unknown {ENV_VAR}={env!r}: no conf/{env}.yaml (known: {', '.join(known)})")

    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for path in (conf_dir / "base.yaml", env_file):
        _merge(merged, _read_yaml(path), str(path.relative_to(root)), origins)
    for origin, layer in _env_overrides(environ):
        _merge(merged, layer, origin, origins)

    try:
        return Settings.model_validate({**merged, "env": env, "root": root})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            what = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
            got = "" if err["type"] == "extra_forbidden" else f" (got {err.get('input')!r})"
            problems.append(f"{_origin_of(err['loc'], origins)}: {key}: {what}{got}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


@cache
def get_settings() -> Settings:
    """Settings of this process, loaded once."""
    return load_settings()
