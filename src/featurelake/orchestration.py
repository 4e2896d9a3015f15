"""What the Airflow DAGs in ``dags/`` share, kept light: no Spark, dbt or GE imports (DAG files parse fast).

A task's work is a ``featurelake spark-submit <job> -- <args>`` command (master, JARs and resources from
``conf/``; the job runs the ``featurelake`` command of those arguments), run from the repository root with the
task's environment (``FEATURELAKE_ENV``, overrides).
Its interval is the run's data interval as inclusive flight dates, or the ``start``/``end`` params when a run
is triggered for a range (a backfill in one run: every job covers the range in one Spark job).
``run_dag_test`` runs a DAG through Airflow itself (``airflow dags test``) with ``AIRFLOW_HOME`` under the
state folder, its output in a log file and its tasks reported as progress steps: what ``make run`` and the DAG
tests do.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
from collections import Counter, deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featurelake import progress
from featurelake.config import HOME_VAR, Settings, parse_duration
from featurelake.errors import FeaturelakeError, InputError
from featurelake.runs import Interval

PARAM_DATE_SCHEMA: dict[str, Any] = {"type": ["null", "string"], "format": "date"}


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


def airflow_env(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running Airflow locally: home under the state folder, this repo's dags/, no examples."""
    env = dict(os.environ if environ is None else environ)
    home = settings.state_path / "airflow"
    env.setdefault("AIRFLOW_HOME", str(home))
    env[HOME_VAR] = str(settings.root)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(settings.root / "dags")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    env.setdefault("NO_COLOR", "1")
    return env


def _airflow_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("airflow")), *args]


def _airflow(settings: Settings, *args: str, environ: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    env = airflow_env(settings, environ)
    return subprocess.run(
        _airflow_command(*args), env=env, cwd=settings.root, check=False, capture_output=True, text=True
    )


def ensure_airflow_db(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Create or migrate the local Airflow metadata database (SQLite under the state folder); idempotent."""
    proc = _airflow(settings, "db", "migrate", environ=environ)
    if proc.returncode != 0:
        raise AirflowRunFailed(f"`airflow db migrate` failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


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
    """Run one DAG run through Airflow (``airflow dags test``: every task in turn, in this machine's Airflow).

    A scheduled DAG's run covers the data interval that ends at ``run_after``. Its output goes to
    ``dag_log(settings, dag_id)``, and each task attempt is reported as a progress step (featurelake.progress)
    as it starts and ends. Returns the output; raises ``AirflowRunFailed`` when the run did not succeed, with
    the failed task's last lines of output.
    """
    ensure_airflow_db(settings, environ)
    cmd = _airflow_command("dags", "test", dag_id, run_after.isoformat())
    if conf:
        cmd += ["--conf", json.dumps(dict(conf), default=str)]
    log = dag_log(settings, dag_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    tasks = _TaskSteps()
    env = airflow_env(settings, environ)
    with (
        log.open("w") as sink,
        subprocess.Popen(
            cmd, env=env, cwd=settings.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc,
    ):
        for line in proc.stdout or ():
            sink.write(line)
            tasks.read(line)
    output = log.read_text()
    if proc.returncode != 0 or not _run_succeeded(settings, dag_id, environ):
        why = tasks.failure or f":\n{output[-4000:]}"
        raise AirflowRunFailed(f"DAG {dag_id} run after {run_after.isoformat()} failed{why}\nfull log: {log}")
    return output


class _TaskSteps:
    """Reads ``airflow dags test`` output line by line and reports each task attempt as a progress step."""

    STARTED = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
    ENDED = re.compile(r"\[DAG TEST\] end task task_id=")
    STATE = re.compile(r"Task instance state updated .* new_state=(\w+)")
    OUTPUT = re.compile(r"^\S+ \[\w+\s*\] (.*?)\s+\[airflow\.task\.hooks\.\S+SubprocessHook\]")

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.task, self.state = "", ""
        self.step: progress.Step | None = None
        self.output: deque[str] = deque(maxlen=10)  # the task's command's last lines
        self.failure = ""

    def read(self, line: str) -> None:
        if m := self.STARTED.search(line):
            self.task, self.state = m[1], ""
            self.attempts[self.task] += 1
            attempt = self.attempts[self.task]
            self.step = progress.step(self.task if attempt == 1 else f"{self.task} (try {attempt})")
            self.output.clear()
        elif self.step is not None and self.ENDED.search(line):
            if self.state == "success":
                self.step.done()
            else:
                self.step.failed(self.state or "failed")
                lines = "\n  ".join(self.output)
                self.failure = f" at task {self.task} ({self.state or 'failed'}); its last lines:\n  {lines}"
            self.step = None
        elif m := self.STATE.search(line):
            self.state = m[1]
        elif (
            (m := self.OUTPUT.match(line)) and m[1] != "Output:" and not m[1].startswith(("Tmp dir", "Running command"))
        ):
            self.output.append(m[1])


def _run_succeeded(settings: Settings, dag_id: str, environ: Mapping[str, str] | None) -> bool:
    """Whether the DAG's latest run succeeded (``airflow dags test`` can exit 0 after a failed task)."""
    proc = _airflow(settings, "dags", "list-runs", dag_id, "--output", "json", environ=environ)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("[{") or line == "[]":
            runs = json.loads(line)
            latest = max(runs, key=lambda r: r.get("run_after") or "", default=None)
            return latest is not None and latest.get("state") == "success"
    return False
