"""The one SparkSession factory every entry point uses: Delta, the persistent catalog, UTC, conf/."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from featurelake import class_archive, executor_env
from featurelake.config import Settings, get_settings
from featurelake.errors import ConfigError, ServiceDown
from featurelake.services.metastore import down_message, is_connection_failure, require_metastore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The password of a ``jdbc`` metastore comes only from the environment (never conf/, never a command line).
METASTORE_PASSWORD_VAR = "FEATURELAKE_METASTORE_PASSWORD"
PASSWORD_KEY = "spark.hadoop.javax.jdo.option.ConnectionPassword"
# Delta's log store of s3a:// tables per storage.s3.commit_coordination: featurelake's conditional-write one
# (src/java, built by `make setup`), or Delta's own that locks within one driver.
S3_LOG_STORES = {
    "conditional": "io.featurelake.delta.S3ConditionalLogStore",
    "none": "io.delta.storage.S3SingleDriverLogStore",
}
# Hive 2.3's metastore model (package.jdo in hive-metastore-2.3.*.jar). DataNucleus creates all their tables when
# a driver's metastore client starts, in one go: created lazily instead, a foreign key on TBLS added while the same
# driver's other connection holds an open insert into TBLS waits for it forever (PostgreSQL's lock on TBLS).
HIVE_MODEL = "org.apache.hadoop.hive.metastore.model"
HIVE_MODEL_CLASSES = [
    "MDatabase",
    "MFieldSchema",
    "MType",
    "MTable",
    "MConstraint",
    "MSerDeInfo",
    "MOrder",
    "MColumnDescriptor",
    "MStringList",
    "MStorageDescriptor",
    "MPartition",
    "MIndex",
    "MRole",
    "MRoleMap",
    "MGlobalPrivilege",
    "MDBPrivilege",
    "MTablePrivilege",
    "MPartitionPrivilege",
    "MTableColumnPrivilege",
    "MPartitionColumnPrivilege",
    "MPartitionEvent",
    "MMasterKey",
    "MDelegationToken",
    "MTableColumnStatistics",
    "MPartitionColumnStatistics",
    "MVersionTable",
    "MResourceUri",
    "MFunction",
    "MNotificationLog",
    "MNotificationNextId",
]
# spark.codegen false: no generated Java per query and per task (whole-stage code, projections, predicates), the
# plans' expressions interpreted instead. On runs of a few thousand rows compiling the code costs more than it saves.
INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


def spark_conf(settings: Settings) -> dict[str, str]:
    """Every Spark setting featurelake applies, derived from ``settings`` (no JVM; for a non-local master it builds the
    executors' Python environment first unless it is current)."""
    jars_dir = Path(settings.path(settings.spark.jars_dir))
    jars = sorted(str(p) for p in jars_dir.glob("*.jar"))
    if not jars:
        raise ConfigError(f"no Delta Lake JARs in {jars_dir} (spark.jars_dir): run `make setup` first")
    state = settings.state_path
    storage = settings.storage
    java_opts = [
        f"-Dlog4j.configurationFile=file:{settings.root / 'conf' / 'log4j2.properties'}",
        f"-Dderby.system.home={state}",  # derby.log of an embedded metastore, or of `featurelake metastore migrate`
        *class_archive.java_options(settings),
    ]
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
        # over any table's delta.autoOptimize.autoCompact: record tables are compacted by ``tables.append_now``
        "spark.databricks.delta.autoCompact.enabled": "false",
        "spark.hadoop.hive.metastore.disallow.incompatible.col.type.changes": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": str(settings.spark.ui).lower(),
    }
    if not settings.spark.codegen:
        conf.update(INTERPRETED)
    if settings.spark.ui:  # and an event log, for Spark's history server (`make history`)
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = event_log_dir(settings).as_uri()
    conf.update(metastore_conf(settings))
    conf.update({f"spark.hadoop.{k}": v for k, v in s3a_conf(settings).items()})
    conf["spark.delta.logStore.s3a.impl"] = S3_LOG_STORES[storage.s3.commit_coordination]
    conf["spark.driver.extraJavaOptions"] = " ".join(java_opts)
    if not is_local(settings):  # the executors run the Python environment the application ships
        conf.update(executor_env.spark_conf(settings))
    conf.update({k: str(v) for k, v in settings.spark.conf.items()})
    return conf


def is_local(settings: Settings) -> bool:
    """Whether the executors run on this machine with the driver's Python (``local``, ``local[n]``,
    ``local-cluster[...]``)."""
    return settings.spark.master.startswith("local")


def driver_env(settings: Settings) -> dict[str, str]:
    """Environment variables of a driver process (spark-submit, a Spark server): PYSPARK_PYTHON, this interpreter or
    on a cluster the executors' shipped one (a session's Python functions carry it as their interpreter;
    spark.pyspark.python alone reaches only a spark-submitted application), PYSPARK_DRIVER_PYTHON, and the local S3
    server's key pair when S3A points at it and the environment has none."""
    from featurelake.services.s3 import local_credentials_env

    executors = sys.executable if is_local(settings) else executor_env.PYTHON
    return {"PYSPARK_PYTHON": executors, "PYSPARK_DRIVER_PYTHON": sys.executable, **local_credentials_env(settings)}


def s3a_conf(settings: Settings) -> dict[str, str]:
    """The Hadoop settings of S3A (``s3a://`` paths) from ``storage.s3``: endpoint, region, path-style access, the
    credentials provider (never credentials themselves) and conditional creates (the commit coordination's)."""
    s3 = settings.storage.s3
    conf = {
        "fs.s3a.endpoint.region": s3.region,
        "fs.s3a.path.style.access": str(s3.path_style_access).lower(),
        "fs.s3a.aws.credentials.provider": s3.credentials_provider,
        "fs.s3a.create.conditional.enabled": str(s3.commit_coordination == "conditional").lower(),
    }
    if s3.endpoint:
        conf["fs.s3a.endpoint"] = s3.endpoint.rstrip("/")
        conf["fs.s3a.connection.ssl.enabled"] = str(s3.endpoint.startswith("https://")).lower()
    return conf


def metastore_conf(settings: Settings) -> dict[str, str]:
    """The Hive client's settings for ``storage.metastore``: a JDBC database (the local PostgreSQL, or any by url),
    a thrift service, or embedded Derby.

    Spark's built-in Hive 2.3 client talks to the database itself. DataNucleus creates the metastore's tables on
    first use (``datanucleus.schema.autoCreateAll``; Hive's schema scripts do not ship with Spark), and Hive's
    schema version check is off because nothing records that version in an auto-created schema.
    """
    metastore = settings.storage.metastore
    # The driver's class path, not spark.jars: DataNucleus finds JDBC drivers through java.sql.DriverManager, which
    # does not see the jars Spark adds at run time. The same for every kind: the drivers' class archive
    # (featurelake.class_archive, built on a Derby catalog) fits a driver whose class path starts like its own.
    class_path = {"spark.driver.extraClassPath": ":".join(_jdbc_driver_jars(settings))}
    if metastore.kind == "thrift":
        return {**class_path, "spark.hadoop.hive.metastore.uris": str(metastore.uri)}
    if metastore.kind == "derby":
        derby = settings.path(metastore.derby_dir)
        return {
            **class_path,
            "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={derby};create=true",
        }
    if metastore.kind == "postgres":
        local = settings.services.postgres
        url, driver, user = (
            f"jdbc:postgresql://127.0.0.1:{local.port}/{metastore.database}",
            "org.postgresql.Driver",
            local.user,
        )
    else:
        url, driver, user = str(metastore.url), metastore.driver, metastore.user or ""
    conf = {
        **class_path,
        "spark.hadoop.javax.jdo.option.ConnectionURL": url,
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": driver,
        "spark.hadoop.javax.jdo.option.ConnectionUserName": user,
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.datanucleus.autoStartMechanism": "Classes",
        "spark.hadoop.datanucleus.autoStartClassNames": ",".join(f"{HIVE_MODEL}.{c}" for c in HIVE_MODEL_CLASSES),
        "spark.hadoop.hive.metastore.schema.verification": "false",
        "spark.hadoop.datanucleus.connectionPool.maxPoolSize": str(metastore.pool_size),
    }
    if metastore.kind == "jdbc" and (password := os.environ.get(METASTORE_PASSWORD_VAR)):
        conf[PASSWORD_KEY] = password
    return conf


def _jdbc_driver_jars(settings: Settings) -> list[str]:
    jars_dir = Path(settings.path(settings.spark.jars_dir))
    found = sorted(str(p) for p in jars_dir.glob("postgresql-*.jar"))
    if not found:
        raise ConfigError(f"no PostgreSQL JDBC driver in {jars_dir} (spark.jars_dir): run `make setup`")
    return found


def get_spark(settings: Settings | None = None) -> SparkSession:
    """Return this process's SparkSession (created on first call) with its databases in place."""
    from pyspark.sql import SparkSession

    settings = settings or get_settings()
    if shutil.which("java") is None and not _java_home_ok():
        raise ConfigError("Java not found: install a JDK 17 (`make setup` does) or set JAVA_HOME")
    conf = spark_conf(settings)
    require_metastore(settings)
    # An in-process session reads these from the environment only. Local Python workers must run this interpreter
    # (the venv with featurelake), not python3 from PATH; a cluster's, the shipped one whatever this process inherited.
    env = driver_env(settings)
    if is_local(settings):
        os.environ.setdefault("PYSPARK_PYTHON", env.pop("PYSPARK_PYTHON"))
    env.pop("PYSPARK_DRIVER_PYTHON")
    os.environ.update(env)
    settings.state_path.mkdir(parents=True, exist_ok=True)
    if settings.spark.ui:
        event_log_dir(settings).mkdir(exist_ok=True)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    try:
        ensure_databases(spark, settings)  # the Hive client's first connection to the metastore
    except Exception as exc:
        if is_connection_failure(exc):
            raise ServiceDown(down_message(settings)) from None
        raise
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
    return [*spark_submit_prefix(settings), str(settings.root / "jobs" / script), *args]


def spark_submit_prefix(settings: Settings, extra_conf: dict[str, str] | None = None) -> list[str]:
    """``spark-submit`` with every setting :func:`get_spark` applies (plus ``extra_conf``), before the application:
    a ``jobs/`` script, or ``--class <main> spark-internal`` for one of Spark's own servers."""
    conf = {**spark_conf(settings), **(extra_conf or {})}
    conf.pop(PASSWORD_KEY, None)  # the job's own get_spark reads it from the environment it inherits
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
    return cmd
