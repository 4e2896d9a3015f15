"""The one SparkSession factory every entry point uses: Delta, the persistent catalog, UTC, conf/."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from featurelake.config import Settings, get_settings
from featurelake.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_conf(settings: Settings) -> dict[str, str]:
    """Every Spark setting featurelake applies, derived from ``settings`` (pure: no JVM)."""
    jars_dir = Path(settings.path(settings.spark.jars_dir))
    jars = sorted(str(p) for p in jars_dir.glob("*.jar"))
    if not jars:
        raise ConfigError(f"no Delta Lake JARs in {jars_dir} (spark.jars_dir): run `make setup` first")
    state = settings.state_path
    storage = settings.storage
    java_opts = [f"-Dlog4j.configurationFile=file:{settings.root / 'conf' / 'log4j2.properties'}"]
    conf = {
        "spark.app.name": settings.spark.app_name,
        "spark.master": settings.spark.master,
        "spark.jars": ",".join(jars),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": settings.path(storage.warehouse),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.databricks.delta.snapshotPartitions": str(max(2, settings.spark.shuffle_partitions)),
        "spark.databricks.delta.properties.defaults.logRetentionDuration": storage.log_retention,
        "spark.databricks.delta.properties.defaults.deletedFileRetentionDuration": storage.deleted_file_retention,
        "spark.hadoop.hive.metastore.disallow.incompatible.col.type.changes": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": str(settings.spark.ui).lower(),
    }
    if settings.spark.ui:  # and an event log, for Spark's history server (`make history`)
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = event_log_dir(settings).as_uri()
    if storage.metastore.uri:
        conf["spark.hadoop.hive.metastore.uris"] = storage.metastore.uri
    elif storage.metastore.derby_dir:
        derby = settings.path(storage.metastore.derby_dir)
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = f"jdbc:derby:;databaseName={derby};create=true"
        java_opts.append(f"-Dderby.system.home={state}")
    conf["spark.driver.extraJavaOptions"] = " ".join(java_opts)
    conf.update({k: str(v) for k, v in settings.spark.conf.items()})
    return conf


def get_spark(settings: Settings | None = None) -> SparkSession:
    """Return this process's SparkSession (created on first call) with its databases in place."""
    from pyspark.sql import SparkSession

    settings = settings or get_settings()
    if shutil.which("java") is None and not _java_home_ok():
        raise ConfigError("Java not found: install a JDK 17 (`make setup` does) or set JAVA_HOME")
    conf = spark_conf(settings)
    if settings.spark.master.startswith("local"):
        # Local Python workers must run this interpreter (the venv with featurelake), not python3 from PATH;
        # an in-process session reads this from the environment only.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings.state_path.mkdir(parents=True, exist_ok=True)
    if settings.spark.ui:
        event_log_dir(settings).mkdir(exist_ok=True)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    ensure_databases(spark, settings)
    return spark


def event_log_dir(settings: Settings) -> Path:
    return settings.state_path / "spark-events"


def ensure_databases(spark: SparkSession, settings: Settings) -> None:
    existing = {row[0] for row in spark.sql("SHOW DATABASES").collect()}
    for name in settings.storage.databases:
        if name not in existing:
            spark.sql(f"CREATE DATABASE IF NOT EXISTS `{name}`")


def _java_home_ok() -> bool:
    home = os.environ.get("JAVA_HOME")
    return home is not None and (Path(home) / "bin" / "java").is_file()


def spark_submit_command(settings: Settings, script: str, *args: str) -> list[str]:
    """``spark-submit`` of a ``jobs/`` entry point with the same settings :func:`get_spark` applies.

    Static settings (JARs, extensions, catalog, driver options) must be on the command line: in a submitted
    application the JVM exists before the job's builder runs.
    """

    conf = spark_conf(settings)
    cmd = [
        str(Path(sys.executable).with_name("spark-submit")),
        "--master",
        conf.pop("spark.master"),
        "--name",
        conf.pop("spark.app.name"),
        "--jars",
        conf.pop("spark.jars"),
    ]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    return [*cmd, str(settings.root / "jobs" / script), *args]
