"""The online store backends, one module each (SQLite, Redis, DynamoDB), and the factory that opens the configured one.

Each backend implements :class:`featurelake.online.store.OnlineStore`; a backend's client library is imported only
when that backend is opened.
"""

from __future__ import annotations

from featurelake.online.store import OnlineStore, StoreConfig


def open_store(config: StoreConfig) -> OnlineStore:
    """The store named by ``config.type``."""
    if config.type == "sqlite":
        from featurelake.online.backends.sqlite import SqliteStore

        return SqliteStore(config)
    if config.type == "redis":
        from featurelake.online.backends.redis import RedisStore

        return RedisStore(config)
    if config.type == "dynamodb":
        from featurelake.online.backends.dynamodb import DynamoDBStore

        return DynamoDBStore(config)
    raise ValueError(f"unknown online store type {config.type!r}")
