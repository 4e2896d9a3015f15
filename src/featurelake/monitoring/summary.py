"""Summaries read back from the catalog: what a pipeline run did (tables written, validation outcomes, rows
materialized) and what the catalog holds (tables with their latest Delta version, row count and last write)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurelake.runs import RUNS_TABLE
from featurelake.tables import catalog_tables, latest_commit, single_row, table_exists
from featurelake.validation.results import RESULTS_TABLE

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class RunSummary:
    writes: list[dict[str, Any]]  # one per table and job: latest version, rows written, interval
    validations: list[dict[str, Any]]  # one per target and interval: passed/failed, failed expectations
    materialized: list[dict[str, Any]]  # one per feature table: rows written to the online store


def summarize(spark: SparkSession, since: dt.datetime) -> RunSummary:
    """Everything recorded in ``monitoring`` since ``since`` (naive UTC), aggregated per table/target."""
    writes: list[dict[str, Any]] = []
    materialized: list[dict[str, Any]] = []
    validations: list[dict[str, Any]] = []
    if table_exists(spark, RUNS_TABLE):
        rows = spark.sql(
            f"""SELECT job, target, min(interval_start) AS interval_start, max(interval_end) AS interval_end,
                       max(delta_version) AS delta_version, sum(rows_written) AS rows_written, count(*) AS runs
                FROM {RUNS_TABLE} WHERE started_at >= TIMESTAMP '{since.isoformat(sep=" ")}' AND status = 'success'
                GROUP BY job, target ORDER BY job, target"""
        ).collect()
        for r in rows:
            (materialized if r["job"] == "materialize" else writes).append(r.asDict())
    if table_exists(spark, RESULTS_TABLE):
        validations = [
            r.asDict()
            for r in spark.sql(
                f"""SELECT target, mode, interval_start, interval_end, max(delta_version) AS delta_version,
                           bool_and(run_success) AS passed, bool_or(published) AS published,
                           count_if(NOT success) AS failed_expectations, count(*) AS expectations
                    FROM {RESULTS_TABLE} WHERE validated_at >= TIMESTAMP '{since.isoformat(sep=" ")}'
                    GROUP BY target, mode, interval_start, interval_end ORDER BY target, interval_start"""
            ).collect()
        ]
    return RunSummary(writes, validations, materialized)


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
        for table, is_view in catalog_tables(spark, db):
            name = f"{db}.{table}"
            rows = single_row(spark.sql(f"SELECT count(*) FROM `{db}`.`{table}`"))[0]
            is_delta = not is_view and single_row(spark.sql(f"DESCRIBE DETAIL `{db}`.`{table}`"))["format"] == "delta"
            commit = latest_commit(spark, name) if is_delta else None
            out.append(
                TableSummary(db, table, commit.version if commit else None, rows, commit.timestamp if commit else None)
            )
    return out
