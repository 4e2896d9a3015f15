"""The online store interface, its write records and the per-view watermark."""

from __future__ import annotations

import datetime as dt
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from featurelake.config import Settings


class Record(NamedTuple):
    """One conditional write for a (view, entity key).

    ``payload`` set: upsert unless the store holds a newer ``(ts, cts)``. ``payload`` None: delete the key if
    its stored ``ts`` is older than ``cutoff_us`` (its value expired by ttl at the materialization time).
    """

    key: str
    ts: int | None
    cts: int | None
    payload: str | None
    exp_ms: int | None
    cutoff_us: int | None


class Entry(NamedTuple):
    """What the store holds for one (view, entity key): the value JSON, its event timestamp (microseconds) and
    its wall-clock expiry (ms; None when the view has no ttl or the store deletes expired keys itself)."""

    payload: str
    ts: int
    exp_ms: int | None

    def live(self, now_ms: int) -> bool:
        return self.exp_ms is None or self.exp_ms > now_ms


@dataclass(frozen=True)
class StoreConfig:
    """Everything an executor needs to open the store (picklable; paths resolved)."""

    type: str
    sqlite_path: str
    redis_host: str
    redis_port: int
    redis_db: int
    dynamodb_region: str
    dynamodb_endpoint_url: str | None
    dynamodb_table_prefix: str
    batch_size: int
    redis_username: str | None = None
    redis_cluster_nodes: tuple[str, ...] = ()  # "host:port" startup nodes of a Redis Cluster; empty: standalone

    @classmethod
    def from_settings(cls, settings: Settings) -> StoreConfig:
        s = settings.online_store
        return cls(
            type=s.type,
            sqlite_path=settings.path(s.sqlite_path),
            redis_host=s.redis_host,
            redis_port=s.redis_port,
            redis_db=s.redis_db,
            dynamodb_region=s.dynamodb_region,
            dynamodb_endpoint_url=s.dynamodb_endpoint_url,
            dynamodb_table_prefix=s.dynamodb_table_prefix,
            batch_size=s.write_batch_size,
            redis_username=s.redis_username,
            redis_cluster_nodes=tuple(s.redis_cluster_nodes or [f"{s.redis_host}:{s.redis_port}"])
            if s.redis_cluster
            else (),
        )

    @property
    def identity(self) -> str:
        """Which store this is, for messages and run records."""
        if self.type == "sqlite":
            return f"sqlite:{self.sqlite_path}"
        if self.type == "redis" and self.redis_cluster_nodes:
            return f"redis-cluster://{','.join(self.redis_cluster_nodes)}"
        if self.type == "redis":
            return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"
        return f"dynamodb:{self.dynamodb_endpoint_url or self.dynamodb_region}/{self.dynamodb_table_prefix}"


@dataclass(frozen=True)
class Watermark:
    """What the last successful materialization of a view into this store read and when."""

    table: str
    version: int
    as_of: dt.datetime
    written_at_ms: int
    mode: str
    features: dict[str, str] = field(default_factory=dict)  # name -> type: how a reader decodes this version

    def to_json(self) -> str:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        return json.dumps(d)

    @classmethod
    def from_json(cls, raw: str) -> Watermark:
        d = json.loads(raw)
        d["as_of"] = dt.datetime.fromisoformat(d["as_of"])
        return cls(**d)


@dataclass
class WriteStats:
    written: int = 0
    deleted: int = 0
    skipped: int = 0

    def add(self, other: WriteStats) -> None:
        self.written += other.written
        self.deleted += other.deleted
        self.skipped += other.skipped


class OnlineStore(ABC):
    """Latest feature values per (view, entity key), written conditionally, read by key."""

    def __init__(self, config: StoreConfig):
        self.config = config

    @abstractmethod
    def prepare(self, view: str) -> None:
        """Create what the view needs (tables); idempotent. Called on the driver before writing."""

    @abstractmethod
    def write(self, view: str, records: Iterable[Record]) -> WriteStats:
        """Apply the records in batches; upserts never replace a newer ``(ts, cts)``; idempotent."""

    @abstractmethod
    def read_entries(self, requests: list[tuple[str, list[str]]]) -> list[list[Entry | None]]:
        """For each (view, keys) the stored entries, expired ones included (None when missing), in one round trip."""

    def read(self, requests: list[tuple[str, list[str]]], now_ms: int) -> list[list[str | None]]:
        """For each (view, keys) the stored payloads (None when missing or expired at ``now_ms``)."""
        return [
            [e.payload if e is not None and e.live(now_ms) else None for e in entries]
            for entries in self.read_entries(requests)
        ]

    def ping(self) -> None:
        """Raise unless the store answers (one small read)."""
        self.read_entries([("featurelake_health", ['["ping"]'])])

    @abstractmethod
    def get_doc(self, name: str) -> str | None:
        """A small JSON record the store keeps beside the values (watermarks, serving pointers), None if absent."""

    @abstractmethod
    def set_doc(self, name: str, doc: str) -> None:
        """Write one record in one operation (atomic: readers see the old or the new one)."""

    @abstractmethod
    def delete_doc(self, name: str) -> None:
        """Remove one record (nothing when absent)."""

    @abstractmethod
    def drop_namespace(self, namespace: str) -> int | None:
        """Remove every value of ``namespace``; returns how many (None when the store cannot tell)."""

    def get_watermark(self, namespace: str) -> Watermark | None:
        raw = self.get_doc(namespace)
        return Watermark.from_json(raw) if raw else None

    def set_watermark(self, namespace: str, watermark: Watermark) -> None:
        self.set_doc(namespace, watermark.to_json())

    def purge_expired(self, view: str, now_ms: int) -> int:
        """Remove values whose expiry has passed (stores without native expiry); returns how many."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def batched(items: Iterable, size: int) -> Iterable[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
