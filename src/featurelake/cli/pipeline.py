"""The demo command behind `make run`: the nightly DAG through Airflow on the demo days, then a summary."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from featurelake.cli import app
from featurelake.runs import parse_date

console = Console()


@app.command("run-demo")
def run_demo(
    start: Annotated[str | None, typer.Option("--start", help="first flight date (default: ingest.demo_start)")] = None,
    end: Annotated[str | None, typer.Option("--end", help="last flight date (default: ingest.demo_end)")] = None,
) -> None:
    """Run the feature_pipeline DAG through Airflow over the demo days, then the training_set DAG per TrainingSet."""
    from featurelake.config import get_settings
    from featurelake.orchestration import nightly_run_after, run_dag_test
    from featurelake.repo import feature_repo

    settings = get_settings()
    training_sets = list(feature_repo(settings).training_sets.values())
    first = parse_date(start) if start else settings.ingest.demo_start
    last = parse_date(end) if end else settings.ingest.demo_end
    since = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    console.rule(f"feature_pipeline DAG over {first}..{last} (airflow dags test)")
    run_dag_test(settings, "feature_pipeline", nightly_run_after(last), {"start": first, "end": last})
    for ts in training_sets:
        console.rule(f"training_set DAG: training.{ts.name}")
        form = ts.model_dump(include={"name", "service", "entities", "full_feature_names"})
        run_dag_test(
            settings, "training_set", dt.datetime.now(dt.UTC), {**form, "overwrite": True, "start": first, "end": last}
        )
    print_summary(since, [ts.name for ts in training_sets])


def print_summary(since: dt.datetime, training_sets: list[str]) -> None:
    """Tables written with versions, validation outcomes, rows materialized and the training sets built."""
    from featurelake.config import get_settings
    from featurelake.monitoring.summary import summarize
    from featurelake.offline.manifest import load_manifest, manifest_file
    from featurelake.spark import get_spark

    settings = get_settings()
    spark = get_spark(settings)
    summary = summarize(spark, since)
    writes = Table("job", "table", "interval", "Delta version", "rows written", title="Tables written")
    for w in summary.writes:
        interval = f"{w['interval_start']}..{w['interval_end']}" if w["interval_start"] else "-"
        writes.add_row(w["job"], w["target"], interval, str(w["delta_version"]), f"{w['rows_written'] or 0:,}")
    checks = Table("target", "mode", "interval", "version", "outcome", "published", title="Validation")
    for v in summary.validations:
        outcome = "passed" if v["passed"] else f"FAILED {v['failed_expectations']}/{v['expectations']}"
        checks.add_row(
            v["target"],
            v["mode"],
            f"{v['interval_start']}..{v['interval_end']}",
            str(v["delta_version"]),
            outcome,
            "yes" if v["published"] else "-",
        )
    online = Table(
        "feature table", "Delta version", "rows written", title=f"Materialized ({settings.online_store.type})"
    )
    for m in summary.materialized:
        online.add_row(m["target"], str(m["delta_version"]), f"{m['rows_written'] or 0:,}")
    wide = Console(width=max(console.width, 150))  # full table names also when output is not a terminal
    for table in (writes, checks, online):
        wide.print(table)
    for name in training_sets:
        manifest = load_manifest(spark, name)
        console.print(
            f"training set: {manifest.table} (Delta version {manifest.table_version}, "
            f"{manifest.rows.output:,} rows), manifest {manifest_file(settings.state_path, name)}",
            highlight=False,
            soft_wrap=True,
        )
