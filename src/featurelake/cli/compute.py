"""Compute commands: the nightly `compute` (dbt build + featurelake-computed views), `dbt-build` of one model
group, and one-view `backfill`."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from featurelake.cli.options import EndDate, StartDate
from featurelake.cli.output import console, show_steps


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
    from featurelake.validation import import_in_background

    interval = Interval.parse(start, end)
    settings = get_settings()
    repo = feature_repo(settings)
    computed_views(repo, view or None)  # unknown or dbt-computed views stop here, before Spark starts
    import_in_background()
    with show_steps():
        report = run_compute(get_spark(settings), settings, interval, views=view or None, dbt=not skip_dbt, repo=repo)
    if report.dbt_models:
        console.print(f"dbt build {interval}: {len(report.dbt_models)} models")
    for r in report.views:
        console.print(r.describe(), highlight=False)
    console.print(f"run {report.run_id}")


def dbt_build(
    select: Annotated[
        str, typer.Option("--select", help="a model group (folder under dbt_project/models) or a dbt selector")
    ],
    start: StartDate,
    end: EndDate,
) -> None:
    """`dbt build` of one model group for START..END (models, data tests), its dbt views gated, then published."""
    from featurelake.compute.dbt import model_selector, run_dbt_build
    from featurelake.config import get_settings
    from featurelake.runs import Interval
    from featurelake.spark import get_spark
    from featurelake.validation import import_in_background

    interval = Interval.parse(start, end)
    settings = get_settings()
    selector = model_selector(settings, select)
    import_in_background()
    with show_steps():
        models, checks = run_dbt_build(get_spark(settings), settings, interval, uuid.uuid4().hex, select=selector)
    console.print(f"dbt build --select {selector}: {len(models)} models: {', '.join(models) or '-'}", highlight=False)
    for r in checks:
        console.print(r.headline(), highlight=False)


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
    from featurelake.validation import import_in_background

    interval, run_id = Interval.parse(start, end), uuid.uuid4().hex
    settings = get_settings()
    repo = feature_repo(settings)
    computed_views(repo, [view])  # an unknown or dbt-computed view stops here, before Spark starts
    import_in_background()
    with show_steps():
        r = run_backfill(get_spark(settings), settings, view, interval, repo=repo, run_id=run_id)
    console.print(f"{r.describe()}; run {run_id}", highlight=False)
