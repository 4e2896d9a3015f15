"""Moving a catalog from the embedded Derby metastore (featurelake's default before the shared PostgreSQL one) into
the configured metastore: every database and table of the old catalog registered in the new one by location.

Delta tables carry their schema and history in their folder, so registering a location is the whole move: no data
is copied. The old catalog is read through Derby's JDBC driver (it ships with Spark) from Hive's own tables; it is
checked completely before anything is registered, and a failure while registering unregisters what this run added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featurelake.errors import InputError
from featurelake.tables import check_identifier, check_table_name

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DERBY_DRIVER = "org.apache.derby.jdbc.EmbeddedDriver"
# Hive 2.3's metastore schema: databases, tables, their storage (a datasource table's path is also a serde
# parameter) and Spark's provider property. Quoted aliases: Derby would upper-case bare ones.
CATALOG_QUERY = """
SELECT d."NAME" AS "database_name", t."TBL_NAME" AS "table_name", t."TBL_TYPE" AS "table_type",
       COALESCE(sp."PARAM_VALUE", s."LOCATION") AS "location", p."PARAM_VALUE" AS "provider"
FROM "DBS" d
LEFT JOIN "TBLS" t ON t."DB_ID" = d."DB_ID"
LEFT JOIN "SDS" s ON s."SD_ID" = t."SD_ID"
LEFT JOIN "SERDE_PARAMS" sp ON sp."SERDE_ID" = s."SERDE_ID" AND sp."PARAM_KEY" = 'path'
LEFT JOIN "TABLE_PARAMS" p ON p."TBL_ID" = t."TBL_ID" AND p."PARAM_KEY" = 'spark.sql.sources.provider'
"""


@dataclass(frozen=True)
class OldTable:
    database: str
    name: str
    location: str

    @property
    def qualified(self) -> str:
        return f"{self.database}.{self.name}"


@dataclass(frozen=True)
class OldCatalog:
    databases: list[str]
    tables: list[OldTable]


def require_derby_catalog(derby_dir: Path) -> None:
    if not (derby_dir / "service.properties").is_file():
        raise InputError(f"no Derby metastore in {derby_dir}: nothing to migrate")


def read_derby_catalog(spark: SparkSession, derby_dir: Path) -> OldCatalog:
    """The databases and tables of the Derby metastore in ``derby_dir``; every problem that would stop the move
    (a view, a table that is not Delta, a bad name) is raised at once, in one message."""
    require_derby_catalog(derby_dir)
    try:
        rows = (
            spark.read.format("jdbc")
            .options(url=f"jdbc:derby:{derby_dir};create=false", driver=DERBY_DRIVER, query=CATALOG_QUERY)
            .load()
            .collect()
        )
    except Exception as exc:
        if "another instance of Derby may have already booted" in str(exc):
            raise InputError(
                f"the Derby metastore in {derby_dir} is in use by another process: stop it first"
            ) from None
        raise
    databases = sorted({r.database_name for r in rows})
    tables, problems = [], []
    for r in rows:
        if r.table_name is None:
            continue
        name = f"{r.database_name}.{r.table_name}"
        if r.table_type == "VIRTUAL_VIEW":
            problems.append(f"{name}: a view (views are not migrated: drop it, or recreate it after the move)")
        elif (r.provider or "").lower() != "delta":
            problems.append(f"{name}: a {r.provider or 'Hive'} table (only Delta tables carry their schema)")
        elif not r.location:
            problems.append(f"{name}: no location in the old catalog")
        else:
            tables.append(OldTable(r.database_name, r.table_name, r.location))
    for name in [*databases, *(t.name for t in tables)]:
        try:
            check_identifier(name, "name")
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError("cannot migrate the Derby metastore in {}:\n  {}".format(derby_dir, "\n  ".join(problems)))
    return OldCatalog(databases, sorted(tables, key=lambda t: t.qualified))


def migrate(spark: SparkSession, catalog: OldCatalog, report: Callable[[str], None]) -> int:
    """Register ``catalog`` in this session's metastore; idempotent (a table already registered at the same
    location is left as it is). Returns how many tables this run registered; ``report`` gets a line per table."""
    from delta.tables import DeltaTable

    pending, problems = [], []
    for table in catalog.tables:
        if not DeltaTable.isDeltaTable(spark, table.location):
            problems.append(f"{table.qualified}: no Delta table at {table.location}")
        elif spark.catalog.tableExists(table.qualified):
            current = _location(spark, table.qualified)
            if current.rstrip("/") != table.location.rstrip("/"):
                problems.append(f"{table.qualified}: already in the metastore at another location ({current})")
            else:
                report(f"already registered  {table.qualified}  {table.location}")
        else:
            pending.append(table)
    if problems:
        raise InputError("nothing migrated:\n  " + "\n  ".join(problems))

    created_databases = [d for d in catalog.databases if not spark.catalog.databaseExists(d)]
    registered: list[OldTable] = []
    try:
        for database in created_databases:
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {check_table_name(database, 'database')}")
        for table in pending:
            DeltaTable.createIfNotExists(spark).tableName(table.qualified).location(table.location).execute()
            registered.append(table)
            version = DeltaTable.forName(spark, table.qualified).history(1).collect()[0].version
            report(f"registered          {table.qualified}  {table.location}  (Delta version {version})")
    except Exception as exc:
        for table in registered:  # external tables: dropping them removes the catalog entry, never the data
            spark.sql(f"DROP TABLE IF EXISTS {check_table_name(table.qualified)}")
        for database in created_databases:
            spark.sql(f"DROP DATABASE IF EXISTS {check_table_name(database, 'database')}")
        failed = pending[len(registered)].qualified if len(registered) < len(pending) else "a database"
        raise InputError(
            f"migration stopped at {failed} ({str(exc).splitlines()[0]}); nothing was registered"
        ) from None
    return len(registered)


def _location(spark: SparkSession, name: str) -> str:
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {check_table_name(name)}").collect()
    return next((r.data_type for r in rows if r.col_name == "Location"), "")
