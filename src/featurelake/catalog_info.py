"""What the catalog holds: tables with their latest Delta version, row count and last write."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelake.tables import latest_commit, single_row

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class TableSummary:
    database: str
    table: str
    version: int | None
    rows: int
    last_write: dt.datetime | None


def table_summaries(spark: SparkSession, databases: list[str]) -> list[TableSummary]:
    out = []
    for db in databases:
        if not spark.catalog.databaseExists(db):
            continue
        for t in sorted(spark.catalog.listTables(db), key=lambda t: t.name):
            name = f"{db}.{t.name}"
            rows = single_row(spark.sql(f"SELECT count(*) FROM `{db}`.`{t.name}`"))[0]
            is_delta = (
                single_row(spark.sql(f"DESCRIBE DETAIL `{db}`.`{t.name}`"))["format"] == "delta"
                if t.tableType != "VIEW"
                else False
            )
            commit = latest_commit(spark, name) if is_delta else None
            out.append(
                TableSummary(db, t.name, commit.version if commit else None, rows, commit.timestamp if commit else None)
            )
    return out
