"""Is the configured metastore reachable? Checked before a Spark driver starts, so that a stopped database gives one
line naming it and the command that starts it (exit 2) instead of a Java traceback; and the same line for a JDBC
connection failure Spark reports later."""

from __future__ import annotations

from urllib.parse import urlsplit

from featurelake.config import Settings
from featurelake.errors import ServiceDown
from featurelake.services.postgres import HOST, Postgres, port_open

START_COMMAND = "`featurelake services start` (or `make up`)"
# Spark's error when its Hive client could not open the metastore's database (DataNucleus's cause, e.g. a refused
# connection or a missing database, is in the JVM's stack trace, not in the message).
_CLIENT_FAILURE = "Unable to instantiate org.apache.hadoop.hive.ql.metadata.SessionHiveMetaStoreClient"


def down_message(settings: Settings) -> str:
    """The one line that names the metastore that is down and how to start it."""
    metastore = settings.storage.metastore
    if metastore.kind == "postgres":
        server = Postgres.from_settings(settings)
        return (
            f"the metastore's PostgreSQL ({server.address}, data in {server.data_dir}) is not running: "
            f"start it with {START_COMMAND}"
        )
    target = metastore.url if metastore.kind == "jdbc" else metastore.uri
    return f"the metastore ({metastore.kind} {target}) is not reachable: start it, or fix storage.metastore"


def require_metastore(settings: Settings) -> None:
    """Raise :class:`ServiceDown` unless the metastore's database (or service) answers; for the local PostgreSQL
    also create the metastore's database on first use."""
    metastore = settings.storage.metastore
    if metastore.kind == "derby":
        return
    if metastore.kind == "postgres":
        server = Postgres.from_settings(settings)
        if server.running_pid() is None or not port_open(HOST, server.port):
            raise ServiceDown(down_message(settings))
        server.ensure_database(metastore.database)
        return
    target = (metastore.url or "").removeprefix("jdbc:") if metastore.kind == "jdbc" else (metastore.uri or "")
    address = urlsplit(target)
    if address.hostname and not port_open(address.hostname, address.port or 5432):
        raise ServiceDown(down_message(settings))


def is_connection_failure(error: BaseException) -> bool:
    """Whether an error from Spark's catalog is its Hive client failing to reach the metastore's database."""
    return _CLIENT_FAILURE in str(error)
