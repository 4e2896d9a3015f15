"""What a pipeline run did, read back from the catalog: tables written, validation outcomes, rows materialized."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurelake.tables import table_exists

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RUNS = "monitoring.runs"
VALIDATION = "monitoring.validation_results"


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
    if table_exists(spark, RUNS):
        rows = spark.sql(
            f"""SELECT job, target, min(interval_start) AS interval_start, max(interval_end) AS interval_end,
                       max(delta_version) AS delta_version, sum(rows_written) AS rows_written, count(*) AS runs
                FROM {RUNS} WHERE started_at >= TIMESTAMP '{since.isoformat(sep=" ")}' AND status = 'success'
                GROUP BY job, target ORDER BY job, target"""
        ).collect()
        for r in rows:
            (materialized if r["job"] == "materialize" else writes).append(r.asDict())
    if table_exists(spark, VALIDATION):
        validations = [
            r.asDict()
            for r in spark.sql(
                f"""SELECT target, mode, interval_start, interval_end, max(delta_version) AS delta_version,
                           bool_and(run_success) AS passed, bool_or(published) AS published,
                           count_if(NOT success) AS failed_expectations, count(*) AS expectations
                    FROM {VALIDATION} WHERE validated_at >= TIMESTAMP '{since.isoformat(sep=" ")}'
                    GROUP BY target, mode, interval_start, interval_end ORDER BY target, interval_start"""
            ).collect()
        ]
    return RunSummary(writes, validations, materialized)
