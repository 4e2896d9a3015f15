"""Delta table helpers shared by every writer: idempotent interval writes, commit info, record tables."""

from __future__ import annotations

import datetime as dt
import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurelake.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row, SparkSession

    from featurelake.runs import HeldRecords

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a safe SQL identifier (letters, digits, underscore), else raise InputError."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise InputError(
            f"{what} {name!r} is not a safe SQL identifier (letters, digits and _, not starting with a digit)"
        )
    return name


def check_table_name(name: str, what: str = "table") -> str:
    """Validate ``db.table`` (or ``table``) and return it quoted for SQL."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 2:
        raise InputError(f"{what} {name!r} must be `table` or `database.table`")
    for part in parts:
        check_identifier(part, what)
    return ".".join(f"`{p}`" for p in parts)


def single_row(df: DataFrame) -> Row:
    """The one row of a global aggregate (Spark always returns one; typed as present)."""
    row = df.first()
    if row is None:
        raise RuntimeError("a global aggregate returned no row")
    return row


def table_exists(spark: SparkSession, name: str) -> bool:
    return spark.catalog.tableExists(name)


def catalog_tables(spark: SparkSession, database: str) -> list[tuple[str, bool]]:
    """The tables and views of ``database`` in the catalog, sorted, each with whether it is a view (temporary views
    left out). SHOW TABLES rather than ``spark.catalog.listTables``, which fails with Spark's code generation off
    (``spark.codegen: false``): Spark 4.2 cannot build its ``Table`` objects interpreted."""
    check_identifier(database, "database")
    views = {r["viewName"] for r in spark.sql(f"SHOW VIEWS IN `{database}`").collect()}
    names = sorted(r["tableName"] for r in spark.sql(f"SHOW TABLES IN `{database}`").collect() if not r["isTemporary"])
    return [(name, name in views) for name in names]


@dataclass(frozen=True)
class Commit:
    table: str
    version: int
    timestamp: dt.datetime
    operation: str
    rows_written: int | None


def latest_commit(spark: SparkSession, name: str) -> Commit:
    """The newest Delta commit of ``name`` (version, time, rows it wrote)."""
    row = spark.sql(f"DESCRIBE HISTORY {check_table_name(name)} LIMIT 1").collect()[0]
    metrics = row["operationMetrics"] or {}
    rows = metrics.get("numOutputRows") or metrics.get("numTargetRowsInserted")
    return Commit(
        name, int(row["version"]), row["timestamp"], row["operation"], int(rows) if rows is not None else None
    )


def current_version(spark: SparkSession, name: str) -> int:
    """The newest Delta version of ``name``, from the Delta log's cached snapshot (milliseconds, where
    DESCRIBE HISTORY runs a Spark job). That is Delta's internal ``DeltaLog`` API: if it moved, DESCRIBE
    HISTORY answers instead."""
    from py4j.protocol import Py4JError

    check_table_name(name)
    schema, _, table = name.rpartition(".")
    jvm: Any = getattr(spark, "_jvm", None)
    if jvm is None:  # Spark Connect: no JVM in this process (its session raises for the attribute)
        return latest_commit(spark, name).version
    try:
        none = getattr(getattr(jvm.scala, "None$"), "MODULE$")
        ident = jvm.org.apache.spark.sql.catalyst.TableIdentifier.apply(table, jvm.scala.Option.apply(schema or None))
        log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, ident)
        return int(log.update(False, none, none).version())
    except Py4JError:
        return latest_commit(spark, name).version


def write_checkpoint(spark: SparkSession, location: str) -> None:
    """Write a Delta checkpoint of the table at ``location`` at its newest version, and clean up expired log files
    (what Delta does in the commit of every ``delta.checkpointInterval``-th version, here when the caller chooses).
    Delta's internal ``DeltaLog`` API, as in ``current_version``; not on Spark Connect."""
    jvm: Any = spark.sparkContext._jvm
    none = getattr(getattr(jvm.scala, "None$"), "MODULE$")
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, location)
    log.checkpoint(log.update(False, none, none), none)


def table_properties(spark: SparkSession, name: str) -> dict[str, str]:
    """The table's properties (e.g. ``delta.enableChangeDataFeed``), from the catalog: no Spark job."""
    return {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {check_table_name(name)}").collect()}


def ensure_properties(spark: SparkSession, table: str, properties: dict[str, str]) -> None:
    """Set table properties that differ from ``properties`` (a new commit only when something changes)."""
    current = table_properties(spark, table)
    changed = {k: v for k, v in properties.items() if current.get(k) != v}
    if changed:
        for k, v in changed.items():
            if not k.replace(".", "").replace("_", "").isalnum() or "'" in v:
                raise InputError(f"table property {k}={v!r} is not safe to set")
        assignments = ", ".join(f"'{k}' = '{v}'" for k, v in changed.items())
        spark.sql(f"ALTER TABLE {check_table_name(table)} SET TBLPROPERTIES ({assignments})")


def write_interval(
    df: DataFrame,
    name: str,
    *,
    date_column: str,
    start: dt.date,
    end: dt.date,
    properties: dict[str, str] | None = None,
) -> Commit:
    """Replace the rows of ``name`` whose ``date_column`` lies in [start, end] with ``df`` (one atomic commit).

    The table is created partitioned by ``date_column`` on first write. Re-running an interval replaces
    it; rows of ``df`` outside the interval make Delta refuse the whole commit.
    """
    check_identifier(date_column, "date column")
    predicate = f"`{date_column}` >= '{start.isoformat()}' AND `{date_column}` <= '{end.isoformat()}'"
    return overwrite_where(df, name, predicate, partition_by=[date_column], properties=properties)


def overwrite_where(
    df: DataFrame,
    name: str,
    predicate: str | None,
    *,
    partition_by: list[str] | None = None,
    properties: dict[str, str] | None = None,
) -> Commit:
    """Overwrite ``name`` (whole, or the rows matching ``predicate``) in one Delta commit and return it."""
    spark = df.sparkSession
    check_table_name(name)
    exists = table_exists(spark, name)
    writer = df.write.format("delta").mode("overwrite")
    if predicate and exists:
        writer = writer.option("replaceWhere", predicate)
    if not predicate:
        writer = writer.option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if properties and not exists:  # Delta stores `delta.*` write options as table properties on creation
        writer = writer.options(**properties)
    writer.saveAsTable(name)
    return latest_commit(spark, name)


# Record tables (run records, validation results, statistics, manifests) take a few rows per commit, every run:
# one file per commit. The append that makes every ``RECORD_COMPACT_EVERY``-th version of one compacts it (one
# OPTIMIZE), so that its readers (e.g. the previous good run a validation compares with) read at most that many
# files however many runs pile up. Each file costs a reader ~10 ms here (the previous good run's query: 0.68 s on
# 33 files, 0.37 s on one); a compaction of 18-33 files took 1.2-2.0 s, paid by every 10th run. Delta's own auto
# compaction counts small files in one JVM's memory only; a run is often a process of its own, so without those
# counts it rewrites the whole table after every commit (a second commit per append): featurelake's sessions turn
# it off (``featurelake.spark``), also for tables created with it.
RECORD_COMPACT_EVERY = 10


def append_rows(spark: SparkSession, name: str, rows: list[Any], schema: Any, *, merge_schema: bool = False) -> None:
    """Append ``rows`` (tuples or dicts) with ``schema`` to the Delta table ``name`` in one commit (one file),
    creating it if needed; ``merge_schema`` adds columns the table lacks. While ``HOLD_RECORDS`` is set
    (``runs.holding_records``) the rows go to it, to be appended later by ``append_now``."""
    hold = HOLD_RECORDS.get()
    if hold is None:
        append_now(spark, name, rows, schema, merge_schema)
    else:
        hold.add(name, rows, schema, merge_schema)


def append_now(spark: SparkSession, name: str, rows: list[Any], schema: Any, merge_schema: bool) -> None:
    """``append_rows`` at once, whatever holds the records; the append that makes a version divisible by
    ``RECORD_COMPACT_EVERY`` then compacts the table."""
    writer = spark.createDataFrame(rows, schema).coalesce(1).write.format("delta").mode("append")
    writer.option("mergeSchema", str(merge_schema).lower()).saveAsTable(name)
    version = current_version(spark, name)
    if version and version % RECORD_COMPACT_EVERY == 0:
        spark.sql(f"OPTIMIZE {check_table_name(name)}")  # SQL: the same through Spark Connect


# Where ``append_rows`` hands its rows instead of appending: set by ``runs.holding_records`` for its block
HOLD_RECORDS: ContextVar[HeldRecords | None] = ContextVar("featurelake_hold_records", default=None)
