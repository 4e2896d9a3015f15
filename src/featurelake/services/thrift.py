"""The SQL endpoint: Spark's Thrift server (HiveServer2's binary protocol) on 127.0.0.1:``services.thrift.port``,
for beeline, JDBC/ODBC tools, PyHive and dbt's ``thrift`` target; and a query through it with PyHive (no JVM in the
client) whose values are the Python values a local session's ``collect()`` gives.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import struct
from collections.abc import Callable
from typing import Any

from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.services.postgres import HOST
from featurelake.services.spark_server import SparkServer

MAIN_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
START_COMMAND = "`featurelake serve sql` (or `make sql`)"


def thrift_server(settings: Settings) -> SparkServer:
    """The Thrift server of ``settings``: the warehouse and metastore every featurelake driver uses."""
    port = settings.services.thrift.port
    hiveconf = {
        "hive.server2.thrift.bind.host": HOST,
        "hive.server2.thrift.port": str(port),
        "hive.server2.transport.mode": "binary",
    }
    return SparkServer(
        name="thrift",
        title="the SQL endpoint (Spark Thrift server)",
        main_class=MAIN_CLASS,
        port=port,
        start_command=START_COMMAND,
        conf={
            "spark.driver.memory": settings.services.thrift.driver_memory,
            # Rows reach the client as they are computed, one partition at a time: a client that fetches the
            # first rows of a large result does not make the server hold all of it.
            "spark.sql.thriftServer.incrementalCollect": "true",
        },
        args=tuple(arg for key, value in hiveconf.items() for arg in ("--hiveconf", f"{key}={value}")),
    )


def jdbc_url(settings: Settings) -> str:
    """The JDBC URL of the endpoint (beeline -u, any JDBC tool; ODBC tools take host and port)."""
    return f"jdbc:hive2://{HOST}:{settings.services.thrift.port}/default"


def _timestamp(value: dt.datetime) -> dt.datetime:
    # The server writes timestamps in the session's time zone (UTC); pyspark's collect() gives local naive ones.
    return value.replace(tzinfo=dt.UTC).astimezone().replace(tzinfo=None)


def _float(value: float) -> float:
    # The server sends a FLOAT as the double of its decimal text (1.1); collect() gives the float's value itself.
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _nested(text: str) -> Any:
    """An ARRAY or MAP as the server sends it (JSON text); as it came when it is not JSON (the server does not escape
    quotes inside a map's string values, e.g. DESCRIBE HISTORY's operationParameters)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _struct(text: str) -> Any:
    from pyspark.sql import Row  # pure Python: no JVM

    value = _nested(text)
    return Row(**value) if isinstance(value, dict) else value


# PyHive gives DECIMAL as Decimal and TIMESTAMP as a naive datetime already; these it leaves as the server sent them.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "TIMESTAMP_TYPE": _timestamp,
    "DATE_TYPE": dt.date.fromisoformat,
    "FLOAT_TYPE": _float,
    "BINARY_TYPE": bytes,
    "ARRAY_TYPE": _nested,
    "MAP_TYPE": _nested,
    "STRUCT_TYPE": _struct,
}


def first_line(message: str) -> str:
    """The reason in a Spark error message, without the server's prefix, Java class names and the plan after it."""
    text = re.sub(r"^Error running query: (\[\w+\] )?", "", message.strip())
    text = re.sub(r"^[\w.$]+(Exception|Error): ", "", text)
    return next((line.strip() for line in text.splitlines() if line.strip()), message)


def query(settings: Settings, sql: str, max_rows: int) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` on the endpoint; its column names and at most ``max_rows`` rows. A statement the server rejects
    raises :class:`InputError` with the server's one-line reason."""
    from pyhive import exc, hive

    thrift_server(settings).require(settings)
    with hive.connect(HOST, settings.services.thrift.port) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute(sql)
        except exc.OperationalError as error:
            status = getattr(error.args[0], "status", None) if error.args else None
            raise InputError(first_line(getattr(status, "errorMessage", None) or str(error))) from None
        description = cursor.description or []  # none for a statement without a result (CREATE, INSERT...)
        columns = [d[0] for d in description]
        converters = [_CONVERT.get(d[1]) for d in description]
        rows = [
            tuple(v if v is None or f is None else f(v) for f, v in zip(converters, row, strict=True))
            for row in (cursor.fetchmany(max_rows) if description else [])
        ]
        cursor.close()
    return columns, rows
