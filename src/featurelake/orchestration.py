"""What the Airflow DAGs in ``dags/`` share, kept light: no Spark, dbt or GE imports (DAG files parse fast).

A task's work is a ``featurelake spark-submit <job> -- <args>`` command (master, JARs and resources from
``conf/``; the job runs the ``featurelake`` command of those arguments), run from the repository root with the
task's environment (``FEATURELAKE_ENV``, overrides).
Its interval is the run's data interval as inclusive flight dates, or the ``start``/``end`` params when a run
is triggered for a range (a backfill in one run: every job covers the range in one Spark job).
``run_dag_test`` runs a DAG through Airflow itself (``airflow dags test --use-executor``: LocalExecutor, tasks
side by side) with the local Airflow of featurelake.services.airflow, its output in a log file and its tasks
reported as progress steps: what ``make run`` and the DAG tests do.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featurelake import progress
from featurelake.config import HOME_VAR, Settings, parse_duration
from featurelake.errors import FeaturelakeError, InputError
from featurelake.runs import Interval

PARAM_DATE_SCHEMA: dict[str, Any] = {"type": ["null", "string"], "format": "date"}
EXIT_GRACE_S = 60  # how long ``airflow dags test`` may take to exit after its DAG run ended


class AirflowRunFailed(FeaturelakeError):
    """An Airflow DAG run did not succeed."""


def featurelake_bin() -> str:
    """The ``featurelake`` executable of the interpreter Airflow runs in (the project's venv)."""
    return str(Path(sys.executable).with_name("featurelake"))


def job_command(script: str, *args: str) -> str:
    """The shell command of a task: ``featurelake spark-submit <script> -- <args>``."""
    return shlex.join([featurelake_bin(), "spark-submit", script, "--", *args])


def run_interval(context: Mapping[str, Any]) -> Interval:
    """The inclusive flight dates a run covers: the params ``start``/``end`` if given, else its data interval.

    A daily data interval [2013-01-02 00:00, 2013-01-03 00:00) covers 2013-01-02.
    """
    params = context.get("params") or {}
    if params.get("start") or params.get("end"):
        start = str(params.get("start") or params.get("end"))
        return Interval.parse(start, str(params.get("end") or start))
    lo, hi = context.get("data_interval_start"), context.get("data_interval_end")
    if lo is None or hi is None:
        raise InputError("this run has no data interval: trigger it with params start and end")
    return Interval(lo.date(), max(lo.date(), (hi - dt.timedelta(microseconds=1)).date()))


def interval_args(context: Mapping[str, Any]) -> list[str]:
    """The ``--start``/``--end`` arguments of a task's job: the run's interval (see ``run_interval``)."""
    interval = run_interval(context)
    return ["--start", str(interval.start), "--end", str(interval.end)]


def materialization_time(interval: Interval) -> str:
    """The as-of time of a run's materialization: the end of its last day (UTC), not the wall clock.

    Replaying an old interval then writes what was known at its end, as a nightly run would have.
    """
    return dt.datetime.combine(interval.end + dt.timedelta(days=1), dt.time()).isoformat()


def dbt_model_group(settings: Settings, model: str) -> str | None:
    """The model group (folder under ``dbt_project/models``) that holds ``<model>.sql``, if any."""
    models = settings.root / "dbt_project" / "models"
    return next((p.relative_to(models).parts[0] for p in models.rglob(f"{model}.sql")), None)


def default_args(settings: Settings) -> dict[str, Any]:
    """Owner, retries with exponential backoff and the task timeout, from ``conf/`` (``orchestration``), and the
    failure alert (a webhook POST when ``$FEATURELAKE_ALERT_WEBHOOK`` is set, see featurelake.monitoring.alerts)."""
    from featurelake.monitoring.alerts import alert_on_failure

    o = settings.orchestration
    return {
        "on_failure_callback": alert_on_failure,
        "owner": o.owner,
        "retries": o.retries,
        "retry_delay": parse_duration(o.retry_delay),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": parse_duration(o.max_retry_delay),
        "execution_timeout": parse_duration(o.task_timeout),
    }


def start_datetime(settings: Settings) -> dt.datetime:
    return dt.datetime.combine(settings.orchestration.start_date, dt.time(), tzinfo=dt.UTC)


def task_options(settings: Settings) -> dict[str, Any]:
    """Options of every command task: run from the repository root, with the worker's environment plus the root
    (``featurelake spark-submit`` sets the interpreter Spark's Python workers use)."""
    return {
        "cwd": str(settings.root),
        "env": {HOME_VAR: str(settings.root)},
        "append_env": True,
    }


def nightly_run_after(day: dt.date) -> dt.datetime:
    """When the nightly run covering flight date ``day`` runs: the end of its data interval."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def dag_log(settings: Settings, dag_id: str) -> Path:
    """The full output of the latest ``run_dag_test`` of ``dag_id``: Airflow's, its tasks' and their jobs' logs."""
    return settings.state_path / "logs" / f"{dag_id}.log"


def run_dag_test(
    settings: Settings,
    dag_id: str,
    run_after: dt.datetime,
    conf: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Run one DAG run through Airflow: ``airflow dags test --use-executor``, its tasks handed to LocalExecutor
    (``services.airflow.parallelism`` task processes at once, each reporting to the local Airflow API server).

    A scheduled DAG's run covers the data interval that ends at ``run_after``. Airflow's output goes to
    ``dag_log(settings, dag_id)``; each task attempt is reported as a progress step (featurelake.progress) as
    Airflow's metadata database shows it start and end. Returns the output; raises ``AirflowRunFailed`` when the
    run did not succeed, with the failed tasks' last lines of output, and ``ServiceDown`` when the API server is
    not running. A ``dags test`` still running ``EXIT_GRACE_S`` after its run ended is stopped (``_follow``), as is
    one this call is interrupted in, with its tasks.
    """
    from featurelake.services.airflow import airflow_bin, airflow_env, api_server, ensure_metadata
    from featurelake.services.process import end_group

    api_server(settings, environ).require(settings)
    ensure_metadata(settings, environ)
    env = airflow_env(settings, environ)
    cmd = [airflow_bin(), "dags", "test", dag_id, run_after.isoformat(), "--use-executor"]
    if conf:
        cmd += ["--conf", json.dumps(dict(conf), default=str)]
    log = dag_log(settings, dag_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    metadata = _Metadata(settings, dag_id)
    tasks = _TaskSteps(Path(env["AIRFLOW_HOME"]) / "logs" / f"dag_id={dag_id}")
    with log.open("w") as sink:
        proc = subprocess.Popen(
            cmd, env=env, cwd=settings.root, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            stopped = _follow(proc, metadata, tasks)
        finally:
            if proc.poll() is None:  # interrupted, or Airflow did not exit after the run ended
                end_group(proc)
        if stopped:
            sink.write(
                f"featurelake: airflow dags test had not exited {EXIT_GRACE_S} s after the DAG run ended "
                "(LocalExecutor's shutdown waiting on a worker): stopped it\n"
            )
    final = metadata.task_instances()
    tasks.update(final)
    with log.open("a") as sink:  # each task's own output after Airflow's, in the order they started
        for run_id, task, attempts, state, started, ended in final:
            for attempt in range(1, attempts + 1):
                sink.write(f"=== task {task} try {attempt}/{attempts} ({state}: {started} .. {ended})\n")
                sink.writelines(f"{line}\n" for line in tasks.output(run_id, task, attempt))
    output = log.read_text()
    if (proc.returncode != 0 and not stopped) or metadata.run_state() != "success":
        why = tasks.failure or f":\n{output[-4000:]}"
        raise AirflowRunFailed(f"DAG {dag_id} run after {run_after.isoformat()} failed{why}\nfull log: {log}")
    return output


def _follow(proc: subprocess.Popen, metadata: _Metadata, tasks: _TaskSteps) -> bool:
    """Report the run's task attempts until ``airflow dags test`` exits; True when it had not exited
    ``EXIT_GRACE_S`` after the run ended (Airflow's LocalExecutor can wait forever on a worker at shutdown) and
    is to be stopped."""
    ended_at = None
    while proc.poll() is None:
        tasks.update(metadata.task_instances())
        if ended_at is None and metadata.run_state() in {"success", "failed"}:
            ended_at = time.monotonic()
        if ended_at is not None and time.monotonic() - ended_at > EXIT_GRACE_S:
            return True
        time.sleep(1)
    return False


class _Metadata:
    """The task instances of the DAG run a ``run_dag_test`` call started, read from Airflow's metadata database
    (the runs created after this object)."""

    def __init__(self, settings: Settings, dag_id: str) -> None:
        from featurelake.services.postgres import HOST

        local = settings.services
        self.conninfo = (
            f"host={HOST} port={local.postgres.port} user={local.postgres.user} dbname={local.airflow.database}"
        )
        self.dag_id = dag_id
        (self.after,) = self._query("SELECT coalesce(max(id), 0) FROM dag_run WHERE dag_id = %s", dag_id)[0]

    def _query(self, sql: str, *args: Any) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.conninfo) as conn:
            return conn.execute(sql, args).fetchall()

    def task_instances(self) -> list[tuple[str, str, int, str | None, dt.datetime | None, dt.datetime | None]]:
        """(run_id, task_id, try_number, state, start, end) of the run's task instances, by start."""
        return self._query(
            "SELECT ti.run_id, ti.task_id, ti.try_number, ti.state, ti.start_date, ti.end_date FROM task_instance ti "
            "JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
            "WHERE dr.dag_id = %s AND dr.id > %s ORDER BY ti.start_date NULLS LAST, ti.task_id",
            self.dag_id,
            self.after,
        )

    def run_state(self) -> str | None:
        rows = self._query("SELECT state FROM dag_run WHERE dag_id = %s AND id > %s", self.dag_id, self.after)
        return rows[0][0] if len(rows) == 1 else None


class _TaskSteps:
    """Turns successive snapshots of a run's task instances into one progress step per task attempt; a failed
    attempt's last lines of output come from its Airflow log file (JSON lines under the DAG's ``logs_dir``)."""

    STARTED = {"queued", "running"}
    ENDED = {"success", "failed", "up_for_retry", "upstream_failed", "skipped"}
    NOISE = ("Tmp dir", "Running command", "Output:", "::group::", "::endgroup::")

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = logs_dir
        self.steps: dict[tuple[str, int], progress.Step] = {}
        self.ended: set[tuple[str, int]] = set()
        self.failure = ""

    def update(self, instances: list[tuple]) -> None:
        """Read one snapshot of (run_id, task_id, try_number, state, ...) rows."""
        for run_id, task, attempt, state, *_ in instances:
            key = (task, attempt)
            if key in self.ended or state is None:
                continue
            if key not in self.steps and (state in self.STARTED or state in {"success", "failed", "up_for_retry"}):
                self.steps[key] = progress.step(task if attempt <= 1 else f"{task} (try {attempt})")
            if state in self.ENDED and key in self.steps:
                self.ended.add(key)
                if state == "success":
                    self.steps[key].done()
                    continue
                self.steps[key].failed(state)
                if state != "failed":
                    continue
                lines = "\n  ".join(self.output(run_id, task, attempt)[-10:])
                self.failure += f" at task {task} ({state}); its last lines:\n  {lines}"

    def output(self, run_id: str, task: str, attempt: int) -> list[str]:
        """The lines of a task attempt's log (its command's output, Airflow's notes), without Airflow's framing."""
        log = self.logs_dir / f"run_id={run_id}" / f"task_id={task}" / f"attempt={max(attempt, 1)}.log"
        events = []
        for line in log.read_text(errors="replace").splitlines() if log.is_file() else []:
            try:
                event = str(json.loads(line).get("event", ""))
            except ValueError:
                event = line
            if event and not event.startswith(self.NOISE):
                events.append(event)
        return events
