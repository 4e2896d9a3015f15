"""The demo command behind `make run`: the nightly DAG through Airflow on the demo days, then a summary."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from featurelake.cli.output import console, show_steps
from featurelake.runs import parse_date


def run_demo(
    start: Annotated[str | None, typer.Option("--start", help="first flight date (default: ingest.demo_start)")] = None,
    end: Annotated[str | None, typer.Option("--end", help="last flight date (default: ingest.demo_end)")] = None,
) -> None:
    """Run the feature_pipeline DAG through Airflow over the demo days, then the training_set DAG per TrainingSet of
    the feature repository; summarize. Each DAG's tasks are shown as they start and end; the full output goes to a
    log file under the state folder."""
    from featurelake.config import get_settings
    from featurelake.orchestration import dag_log, nightly_run_after, run_dag_test
    from featurelake.repo import feature_repo

    settings = get_settings()
    training_sets = list(feature_repo(settings).training_sets.values())
    first = parse_date(start) if start else settings.ingest.demo_start
    last = parse_date(end) if end else settings.ingest.demo_end
    since = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def run(dag_id: str, what: str, run_after: dt.datetime, conf: dict) -> None:
        console.print(f"[bold]{dag_id}[/] DAG {what} (Airflow, LocalExecutor; full log: {dag_log(settings, dag_id)})")
        with show_steps(lines=True):
            run_dag_test(settings, dag_id, run_after, conf)

    run("feature_pipeline", f"over {first}..{last}", nightly_run_after(last), {"start": first, "end": last})
    for ts in training_sets:
        form = ts.model_dump(include={"name", "service", "entities", "full_feature_names"})
        conf = {**form, "overwrite": True, "start": first, "end": last}
        run("training_set", f"building training.{ts.name}", dt.datetime.now(dt.UTC), conf)
    print_summary(since, [ts.name for ts in training_sets])


def print_summary(since: dt.datetime, training_sets: list[str]) -> None:
    """Tables written with versions, validation outcomes, rows materialized and the training sets built."""
    from featurelake.artifacts import artifacts_root
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
    for table in (writes, checks, online):
        console.print(table)
    for name in training_sets:
        manifest = load_manifest(spark, name)
        console.print(
            f"training set: {manifest.table} (Delta version {manifest.table_version}, "
            f"{manifest.rows.output:,} rows), manifest {manifest_file(artifacts_root(settings), name).url}",
            highlight=False,
            soft_wrap=True,
        )
