"""The nightly compute path (dbt build for the interval, then every window and transform view) and backfills."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from featurelake import progress
from featurelake.compute.windows import ViewResult, compute_view
from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.monitoring import FEATURE_STATS_TABLE
from featurelake.monitoring.stats import feature_stats_schema, published_interval, record_write_stats
from featurelake.repo import Repo, feature_repo
from featurelake.repo.definitions import DbtComputation, FeatureView, TransformComputation, WindowComputation
from featurelake.tables import (
    RUNS_TABLE,
    RunRecord,
    create_if_missing,
    failures_recorded,
    latest_commit,
    record_runs,
    runs_schema,
)
from featurelake.validation.results import RESULTS_TABLE, results_schema

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurelake.validation.gate import GateResult


@dataclass
class ComputeReport:
    run_id: str
    start: dt.date
    end: dt.date
    dbt_models: list[str] = field(default_factory=list)
    views: list[ViewResult] = field(default_factory=list)
    dbt_validation: list[GateResult] = field(default_factory=list)


def computed_views(repo: Repo, names: list[str] | None = None) -> list[str]:
    """The views featurelake computes (window aggregations and PySpark transforms): all, or the named ones."""
    if names:
        for n in names:
            if not isinstance(repo.view(n).computation, WindowComputation | TransformComputation):
                raise InputError(
                    f"feature view {n!r} is computed by dbt, not by featurelake (its model runs in `dbt build`)"
                )
        return list(names)
    return sorted(
        n for n, v in repo.views.items() if isinstance(v.computation, WindowComputation | TransformComputation)
    )


def compute_one(
    spark: SparkSession,
    settings: Settings,
    repo: Repo,
    name: str,
    start: dt.date,
    end: dt.date,
    *,
    job: str = "compute",
    run_id: str | None = None,
) -> ViewResult:
    """Compute one featurelake-computed view over [start, end] with the engine its definition names; a failure
    is recorded in ``monitoring.runs`` (status ``failed``) before it is raised."""
    from featurelake.compute.transforms import compute_transform_view

    if start > end:  # refused before the run: a reversed interval is a typo, not a failed run
        raise InputError(f"--start {start} is after --end {end}")
    view = repo.view(name)
    engine = compute_transform_view if isinstance(view.computation, TransformComputation) else compute_view
    run_id = run_id or uuid.uuid4().hex
    with failures_recorded(spark, run_id, job, [view.offline_table or name], start, end):
        return engine(spark, settings, view, repo.join_keys(view), start, end, job=job, run_id=run_id)


def run_dbt_build(
    spark: SparkSession,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    run_id: str,
    *,
    select: str | None = None,
    repo: Repo | None = None,
) -> tuple[list[str], list[GateResult]]:
    """``dbt build`` of the interval (optionally a ``--select``ion) in this session, then the dbt views' checks.

    Records one run per model: written, or dbt's status (``error``, ``skipped``) for a model it did not write,
    before a failed build raises ``DbtError``. dbt writes its models itself (its data tests run right after each
    model), so the views computed by those models are validated after the write: a strict view that fails
    raises ``ValidationFailed`` and stops the pipeline before anything downstream reads it.
    """
    from featurelake.compute.dbt import dbt_args, run_dbt

    started, t0 = dt.datetime.now(dt.UTC).replace(tzinfo=None), time.monotonic()
    dbt_step = progress.step(f"dbt build {start}..{end}" + (f" --select {select}" if select else ""))
    result = run_dbt(spark, settings, dbt_args(settings, "build", start=start, end=end, select=select), check=False)
    duration = time.monotonic() - t0
    records, models = [], []
    for unique_id, status in result.statuses.items():
        if not unique_id.startswith("model."):
            continue
        table = result.relations[unique_id]
        if status == "success":
            c = latest_commit(spark, table)
            models.append(table)
            version, rows = c.version, c.rows_written
        elif status in ("error", "skipped"):  # not written (skipped: a model it depends on failed)
            version, rows = None, None
        else:
            continue
        records.append(RunRecord(run_id, "dbt", table, start, end, version, rows, started, duration, status, unique_id))
    record_runs(spark, records)
    result.check()
    dbt_step.done()
    repo = repo or feature_repo(settings)
    for view in dbt_views(repo, models):
        table = view.offline_table or ""
        version = latest_commit(spark, table).version
        published = published_interval(spark, view, table, version, start, end)
        record_write_stats(
            spark, view, published, start=start, end=end, table=table, version=version, settings=settings.monitoring
        )
    return models, validate_dbt_views(spark, settings, repo, models, start, end)


def dbt_views(repo: Repo, tables: list[str]) -> list[FeatureView]:
    """The dbt-computed views whose table is in ``tables`` (by name)."""
    return [
        view
        for _, view in sorted(repo.views.items())
        if isinstance(view.computation, DbtComputation) and view.offline_table in tables
    ]


def validate_dbt_views(
    spark: SparkSession, settings: Settings, repo: Repo, tables: list[str], start: dt.date, end: dt.date
) -> list[GateResult]:
    """Validate [start, end] of every dbt-computed view whose table is in ``tables``; raise on a strict failure."""
    from featurelake.validation.gate import validate_all

    names = [view.name for view in dbt_views(repo, tables)]
    return validate_all(spark, settings, names, start, end, repo=repo)


def compute(
    spark: SparkSession,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    *,
    views: list[str] | None = None,
    dbt: bool = True,
    repo: Repo | None = None,
) -> ComputeReport:
    """The nightly path for [start, end]: dbt build (incremental models merge the interval), then window views."""
    if start > end:
        raise InputError(f"--start {start} is after --end {end}")
    repo = repo or feature_repo(settings)
    names = computed_views(repo, views)
    report = ComputeReport(uuid.uuid4().hex, start, end)
    if dbt:
        report.dbt_models, report.dbt_validation = run_dbt_build(spark, settings, start, end, report.run_id, repo=repo)
    report.views = compute_views(spark, settings, repo, names, start, end, run_id=report.run_id)
    return report


def compute_views(
    spark: SparkSession,
    settings: Settings,
    repo: Repo,
    names: list[str],
    start: dt.date,
    end: dt.date,
    *,
    run_id: str,
) -> list[ViewResult]:
    """Compute ``names`` over [start, end], ``compute.parallel_views`` at once (one driver thread each).

    Views are independent: a failing view does not stop the others. After all finished, the first failure
    (in the order of ``names``) is raised, noting the other views that failed.
    """
    workers = max(1, min(settings.compute.parallel_views, len(names)))
    if workers > 1:  # the tables every view appends to, created first so that threads never race to create them
        for table, schema in (
            (RUNS_TABLE, runs_schema()),
            (RESULTS_TABLE, results_schema()),
            (FEATURE_STATS_TABLE, feature_stats_schema()),
        ):
            create_if_missing(spark, table, schema)
    with ThreadPoolExecutor(workers, thread_name_prefix="featurelake-view") as pool:
        futures = [pool.submit(compute_one, spark, settings, repo, name, start, end, run_id=run_id) for name in names]
    failed = [(name, exc) for name, f in zip(names, futures, strict=True) if (exc := f.exception()) is not None]
    if failed:
        (_, first), *others = failed
        if others:
            first.add_note("also failed: " + ", ".join(f"{name} ({exc})" for name, exc in others))
        raise first
    return [f.result() for f in futures]


def backfill(
    spark: SparkSession, settings: Settings, view: str, start: dt.date, end: dt.date, *, repo: Repo | None = None
) -> ViewResult:
    """One view over a whole range as one job per table (not a loop over days)."""
    repo = repo or feature_repo(settings)
    (name,) = computed_views(repo, [view])
    return compute_one(spark, settings, repo, name, start, end, job="backfill")
