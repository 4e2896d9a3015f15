"""A long-running Spark server of pyspark's own (the Thrift SQL endpoint, Spark Connect): one ``spark-submit
--class <main> spark-internal`` with every setting a featurelake driver applies (Delta, the shared metastore, the
warehouse, UTC), a background service (process.py) on loopback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from featurelake.config import Settings
from featurelake.services.process import Daemon


@dataclass(frozen=True)
class SparkServer(Daemon):
    """One Spark server: what it is (``title``, for messages), its main class, port and extra settings."""

    name: str  # file names under the state folder: <name>.pid, logs/<name>.log
    title: str  # e.g. "the SQL endpoint (Spark Thrift server)"
    main_class: str
    port: int
    start_command: str  # how a user starts it, for the one-line "is not running" error
    conf: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # the server's own arguments, after spark-internal

    @property
    def marker(self) -> str:
        return self.main_class

    def command(self, settings: Settings) -> list[str]:
        from featurelake.spark import spark_conf, spark_submit_prefix

        base = spark_conf(settings)
        # The JARs also on the driver's class path: the server's session threads load Delta's catalog through
        # the system class loader, which does not see the jars spark-submit adds (ClassNotFoundException).
        class_path = [base["spark.driver.extraClassPath"]] if "spark.driver.extraClassPath" in base else []
        class_path += base["spark.jars"].split(",")
        conf = {
            "spark.app.name": f"{settings.spark.app_name}-{self.name}",
            "spark.driver.extraClassPath": ":".join(class_path),
            **self.conf,
        }
        return [*spark_submit_prefix(settings, conf), "--class", self.main_class, "spark-internal", *self.args]

    def environment(self, settings: Settings) -> dict[str, str]:
        from featurelake.spark import driver_env

        return {**os.environ, **driver_env(settings)}

    def start(self, settings: Settings) -> tuple[int, bool]:
        """Start the server (see :meth:`Daemon.start`) once the metastore it opens answers."""
        from featurelake.services.metastore import require_metastore

        if self.running_pid(settings) is None:
            require_metastore(settings)
        return super().start(settings)
