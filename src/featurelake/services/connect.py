"""The notebook endpoint: a Spark Connect server (its jar ships with pyspark) with featurelake's catalog and Delta,
on 127.0.0.1:``services.connect.port``, and the remote session a notebook opens on it (no local JVM)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurelake.config import Settings
from featurelake.services.postgres import HOST
from featurelake.services.spark_server import SparkServer

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

START_COMMAND = "`featurelake serve connect` (or `make connect`)"


def connect_server(settings: Settings) -> SparkServer:
    """The Spark Connect server of ``settings`` (bound to loopback on ``services.connect.port``)."""
    port = settings.services.connect.port
    return SparkServer(
        name="connect",
        title="the notebook endpoint (Spark Connect server)",
        main_class="org.apache.spark.sql.connect.service.SparkConnectServer",
        port=port,
        start_command=START_COMMAND,
        conf={"spark.connect.grpc.binding.address": HOST, "spark.connect.grpc.binding.port": str(port)},
    )


def connect_url(settings: Settings) -> str:
    """What a notebook passes to ``SparkSession.builder.remote``."""
    return f"sc://localhost:{settings.services.connect.port}"


def remote_session(settings: Settings | None = None) -> SparkSession:
    """A Spark Connect session on the notebook endpoint; :class:`ServiceDown` (one line) when it is not running.

    Only the Connect client runs in this process: no JVM starts here.
    """
    from pyspark.sql import SparkSession

    from featurelake.config import get_settings

    settings = settings or get_settings()
    connect_server(settings).require(settings)
    return SparkSession.builder.remote(connect_url(settings)).getOrCreate()
