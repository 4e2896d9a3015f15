"""Compute commands: the nightly `compute` (dbt build + featurelake-computed views) and one-view `backfill`."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.console import Console

from featurelake.cli import app
from featurelake.cli.options import EndDate, StartDate

console = Console()


@app.command()
def compute(
    start: StartDate,
    end: EndDate,
    view: Annotated[
        list[str] | None, typer.Option("--view", help="only these window/transform views (repeatable)")
    ] = None,
    skip_dbt: Annotated[bool, typer.Option("--skip-dbt", help="do not run dbt build first")] = False,
) -> None:
    """Nightly path for START..END: dbt build (incremental merge), then every window and transform view."""
    from featurelake.compute.pipeline import compute as run_compute
    from featurelake.compute.pipeline import computed_views
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo
    from featurelake.runs import Interval
    from featurelake.spark import get_spark

    interval = Interval.parse(start, end)
    settings = get_settings()
    repo = feature_repo(settings)
    computed_views(repo, view or None)  # unknown or dbt-computed views stop here, before Spark starts
    report = run_compute(get_spark(settings), settings, interval, views=view or None, dbt=not skip_dbt, repo=repo)
    if report.dbt_models:
        console.print(f"dbt build {interval}: {len(report.dbt_models)} models")
    for r in report.views:
        console.print(r.describe(), highlight=False)
    console.print(f"run {report.run_id}")


@app.command()
def backfill(
    view: Annotated[str, typer.Option("--view", help="the window or transform feature view to backfill")],
    start: StartDate,
    end: EndDate,
) -> None:
    """Recompute one window or transform view over START..END as one Spark job."""
    from featurelake.compute.pipeline import backfill as run_backfill
    from featurelake.compute.pipeline import computed_views
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo
    from featurelake.runs import Interval
    from featurelake.spark import get_spark

    interval, run_id = Interval.parse(start, end), uuid.uuid4().hex
    settings = get_settings()
    repo = feature_repo(settings)
    computed_views(repo, [view])  # an unknown or dbt-computed view stops here, before Spark starts
    r = run_backfill(get_spark(settings), settings, view, interval, repo=repo, run_id=run_id)
    console.print(f"{r.describe()}; run {run_id}", highlight=False)
