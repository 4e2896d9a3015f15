"""The nightly feature pipeline.

ingest (+ raw table checks) → dbt build per model group (models, data tests; dbt views through their validation
gate, then published) → window views (tiles, roll-up, validation gate, publish) → materialize to the online store
→ consistency and freshness checks → monitoring report (HTML in ``monitoring.report_dir``, default
``<artifacts>/reports``; fails on a late strict view or drift). A failed task posts to the webhook in
``$FEATURELAKE_ALERT_WEBHOOK`` when set.

A scheduled run covers its data interval's flight dates; a run triggered with params ``start``/``end`` covers
that range instead, each step as one Spark job over it (a backfill in one run). Every task is a
``featurelake spark-submit`` of a ``jobs/`` entry point with master and resources from ``conf/``, idempotent on
its interval (Delta ``replaceWhere``/``MERGE`` per interval, the online store's newer-wins writes). Feature
tables are assets: a DAG scheduled on them runs when fresh features are published.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from featurelake.config import get_settings
from featurelake.orchestration import (
    PARAM_DATE_SCHEMA,
    dbt_model_group,
    default_args,
    interval_args,
    job_command,
    materialization_time,
    run_interval,
    start_datetime,
    task_options,
)
from featurelake.repo import feature_repo

settings = get_settings()
repo = feature_repo(settings)
RUN = task_options(settings)


def table_asset(table: str) -> Asset:
    return Asset(name=table, uri=f"featurelake://{table.replace('.', '/')}", group="featurelake")


@dag(
    dag_id="feature_pipeline",
    description=__doc__.splitlines()[0],
    schedule=CronDataIntervalTimetable(settings.orchestration.schedule, timezone="UTC"),
    start_date=start_datetime(settings),
    catchup=False,
    max_active_runs=1,  # consecutive intervals share tiles and windows: one run at a time
    default_args=default_args(settings),
    tags=["featurelake", "features", "nightly"],
    params={
        "start": Param(None, description="first flight date (default: the data interval's)", **PARAM_DATE_SCHEMA),
        "end": Param(None, description="last flight date, inclusive (default: start)", **PARAM_DATE_SCHEMA),
    },
    doc_md=__doc__,
)
def feature_pipeline() -> None:
    @task.bash(task_id="ingest", outlets=[table_asset(t) for t in repo.raw_tables], **RUN)
    def ingest(**context) -> str:
        return job_command("ingest_raw.py", *interval_args(context), "--validate")

    previous = ingest()
    for group in settings.orchestration.dbt_model_groups:
        # the dbt models of this group that feature views read (dbt feature views, sources of the others)
        tables = sorted(
            {
                v.source.table
                for v in repo.views.values()
                if v.source.kind == "dbt_model" and dbt_model_group(settings, v.source.model) == group
            }
        )
        outlets = [table_asset(t) for t in tables]

        @task.bash(task_id=f"dbt_{group}", outlets=outlets, **RUN)
        def dbt_build(group: str = group, **context) -> str:
            return job_command("dbt_build.py", "--select", group, *interval_args(context))

        current = dbt_build()
        previous >> current
        previous = current

    names = sorted(n for n, v in repo.views.items() if v.computation.kind in ("window", "transform"))
    batches = [[v] for v in names] if settings.orchestration.task_per_view else [names]
    computed = []
    for batch in filter(None, batches):
        task_id = f"compute_{batch[0]}" if len(batch) == 1 else "compute_views"
        outlets = [table_asset(repo.views[v].offline_table) for v in batch]

        @task.bash(task_id=task_id, outlets=outlets, **RUN)
        def compute_views(views: list[str] = batch, **context) -> str:
            view_args = [a for v in views for a in ("--view", v)]
            return job_command("compute_features.py", *interval_args(context), *view_args, "--skip-dbt")

        computed.append(compute_views())
    previous >> computed

    @task.bash(task_id="materialize", **RUN)
    def materialize(**context) -> str:
        return job_command("materialize.py", "--all", "--as-of", materialization_time(run_interval(context)))

    @task.bash(task_id="check_features", **RUN)
    def check_features(**context) -> str:
        return job_command("check_features.py", "--as-of", materialization_time(run_interval(context)))

    @task.bash(task_id="monitor_report", **RUN)
    def monitor_report(**context) -> str:
        return job_command(
            "monitor_report.py",
            "--as-of",
            materialization_time(run_interval(context)),
            *interval_args(context),
        )

    (computed or previous) >> materialize() >> check_features() >> monitor_report()


feature_pipeline()
