"""The class-data archive Spark drivers start from (the JVM's AppCDS): the classes a driver loads (Spark's, Hive's,
Hadoop's, Delta's, Scala's) parsed and verified once, by ``make setup``, and mapped by every driver after, so that a
driver (a CLI command, a DAG task's spark-submit, an endpoint) starts in about 60% of the time.

``spark.class_archive`` names the file (none: no archive). ``build`` writes it: a child process runs what a driver
does (a session on a scratch catalog, a Delta table written, merged into, read by SQL) with the JVM's
``-XX:ArchiveClassesAtExit``, then the file is moved into place. ``java_options`` are the driver's options that map it
when it exists; a JVM that cannot use it (another JDK build, another class path) starts without it, silently (the
JVM's ``cds`` log is off: its warnings would go to standard output).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from featurelake.config import Settings, get_settings
from featurelake.errors import ConfigError

QUIET = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def archive_path(settings: Settings) -> Path | None:
    name = settings.spark.class_archive
    return Path(settings.path(name)) if name else None


def java_options(settings: Settings) -> list[str]:
    """The driver JVM options that map the archive, when there is one."""
    path = archive_path(settings)
    if path is None or not path.is_file():
        return []
    return [f"-XX:SharedArchiveFile={path}", *QUIET]


def build(settings: Settings | None = None) -> Path:
    """Write the archive of ``settings`` (``spark.class_archive``) from a child driver's run; returns its path."""
    settings = settings or get_settings()
    path = archive_path(settings)
    if path is None:
        raise ConfigError("spark.class_archive is not set: no class archive to build")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="featurelake-classes-") as scratch:
        env = {
            **os.environ,
            "FEATURELAKE__STATE_DIR": scratch,
            "FEATURELAKE__STORAGE__WAREHOUSE": f"{scratch}/warehouse",
            "FEATURELAKE__STORAGE__METASTORE__KIND": "derby",
            "FEATURELAKE__STORAGE__METASTORE__DERBY_DIR": f"{scratch}/metastore_db",
            "FEATURELAKE__SPARK__CLASS_ARCHIVE": "",
            "FEATURELAKE__SPARK__MASTER": "local[2]",
            # Read by spark-submit's launcher into the driver JVM's command (the class path the drivers run with).
            "SPARK_SUBMIT_OPTS": f"-XX:ArchiveClassesAtExit={partial} {' '.join(QUIET)}",
        }
        code = "from featurelake.class_archive import drive; drive()"
        run = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.root, capture_output=True, text=True)
    if run.returncode != 0 or not partial.is_file():
        raise RuntimeError(f"the driver JVM wrote no class archive at {partial}:\n{run.stdout}{run.stderr[-3000:]}")
    partial.replace(path)
    return path


def drive() -> None:
    """What a driver does, in the child of ``build``; returns when the JVM has exited (it writes the archive then)."""
    from delta.tables import DeltaTable

    from featurelake.spark import get_spark

    spark = get_spark()
    rows = spark.range(1000).selectExpr("id", "id % 7 AS k", "timestamp_seconds(id) AS ts", "rand() AS x")
    rows.write.format("delta").partitionBy("k").saveAsTable("default.classes")
    table = DeltaTable.forName(spark, "default.classes").alias("t")
    table.merge(rows.alias("s"), "t.id = s.id").whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
    spark.sql("SELECT k, count(*), max(ts) FROM default.classes GROUP BY k").collect()
    spark.sql("SELECT id, avg(x) OVER (PARTITION BY k ORDER BY ts) FROM default.classes").collect()
    spark.table("default.classes").toPandas()
    gateway = spark.sparkContext._gateway
    assert gateway is not None
    spark.stop()
    # The JVM exits when its standard input closes (pyspark's gateway), and writes the archive as it exits.
    gateway.proc.stdin.close()
    gateway.proc.wait(timeout=300)
