"""The nightly compute path (dbt build for the interval, then every window and transform view) and backfills."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from featurelake.compute.dbt import run_dbt_build
from featurelake.compute.publish import ViewResult
from featurelake.compute.windows import compute_view
from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.repo import Repo, feature_repo
from featurelake.repo.definitions import TransformComputation, WindowComputation
from featurelake.runs import Interval, holding_records, recorded_run, run_all

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurelake.validation.gate import GateResult


@dataclass
class ComputeReport:
    run_id: str
    interval: Interval
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
    interval: Interval,
    *,
    job: str = "compute",
    run_id: str | None = None,
) -> ViewResult:
    """Compute one featurelake-computed view over the interval with the engine its definition names, as one
    recorded run (a failure is recorded in ``monitoring.runs`` with status ``failed`` before it is raised)."""
    from featurelake.compute.transforms import compute_transform_view

    view = repo.view(name)
    engine = compute_transform_view if isinstance(view.computation, TransformComputation) else compute_view
    with recorded_run(spark, job, [view.offline_table or name], interval, run_id) as run:
        result = engine(spark, settings, view, repo.join_keys(view), interval)
        result.record(run)
    return result


def compute(
    spark: SparkSession,
    settings: Settings,
    interval: Interval,
    *,
    views: list[str] | None = None,
    dbt: bool = True,
    repo: Repo | None = None,
) -> ComputeReport:
    """The nightly path for the interval: dbt build (incremental models merge the interval), then the views."""
    repo = repo or feature_repo(settings)
    names = computed_views(repo, views)
    report = ComputeReport(uuid.uuid4().hex, interval)
    if dbt:
        report.dbt_models, report.dbt_validation = run_dbt_build(spark, settings, interval, report.run_id, repo=repo)
    report.views = compute_views(spark, settings, repo, names, interval, run_id=report.run_id)
    return report


def compute_views(
    spark: SparkSession, settings: Settings, repo: Repo, names: list[str], interval: Interval, *, run_id: str
) -> list[ViewResult]:
    """Compute ``names`` over the interval, ``compute.parallel_views`` at once (see ``run_all``: a failing view
    does not stop the others; the first failure is raised after all finished, naming the others). The views'
    records are committed behind them (``holding_records(behind=True)``): the views ending within
    ``RECORD_LINGER_S`` of each other share their record commits (one thread appends them: views never race to
    create a record table), and the last ones are committed before this returns."""

    def compute_named(name: str) -> ViewResult:
        return compute_one(spark, settings, repo, name, interval, run_id=run_id)

    with holding_records(spark, behind=True):
        return run_all(compute_named, names, label=str, workers=settings.compute.parallel_views)


def backfill(
    spark: SparkSession,
    settings: Settings,
    view: str,
    interval: Interval,
    *,
    repo: Repo | None = None,
    run_id: str | None = None,
) -> ViewResult:
    """One view over a whole range as one job per table (not a loop over days)."""
    repo = repo or feature_repo(settings)
    (name,) = computed_views(repo, [view])
    return compute_one(spark, settings, repo, name, interval, job="backfill", run_id=run_id)
