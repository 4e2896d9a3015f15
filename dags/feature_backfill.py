"""Backfill one window feature view over a long date range as a single Spark job, then refresh its online values.

The ``feature_pipeline`` DAG covers a range too (trigger it with params ``start``/``end``, or run
``airflow backfill create --dag-id feature_pipeline``, one run per interval); this DAG recomputes one view's tiles
and windows over the whole range in one job (``featurelake backfill``), e.g. after a definition change.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from featurelake.config import get_settings
from featurelake.orchestration import (
    default_args,
    interval_args,
    job_command,
    materialization_time,
    run_interval,
    task_options,
)
from featurelake.repo import feature_repo

settings = get_settings()
repo = feature_repo(settings)
WINDOW_VIEWS = sorted(n for n, v in repo.views.items() if v.computation.kind == "window")
ONLINE_VIEWS = {n for n, v in repo.views.items() if v.online}


@dag(
    dag_id="feature_backfill",
    description=__doc__.splitlines()[0],
    schedule=None,
    start_date=None,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    tags=["featurelake", "features", "backfill"],
    params={
        "view": Param(WINDOW_VIEWS[0], enum=WINDOW_VIEWS, description="the window feature view to backfill"),
        "start": Param(type="string", format="date", description="first flight date"),
        "end": Param(type="string", format="date", description="last flight date, inclusive"),
    },
    doc_md=__doc__,
)
def feature_backfill() -> None:
    @task.bash(task_id="backfill", **task_options(settings))
    def backfill(**context) -> str:
        return job_command("backfill.py", "--view", context["params"]["view"], *interval_args(context))

    @task.bash(task_id="materialize", **task_options(settings))
    def materialize(**context) -> str:
        view = context["params"]["view"]
        if view not in ONLINE_VIEWS:
            return f"echo {view} is offline only: nothing to materialize"
        return job_command("materialize.py", "--view", view, "--as-of", materialization_time(run_interval(context)))

    backfill() >> materialize()


feature_backfill()
