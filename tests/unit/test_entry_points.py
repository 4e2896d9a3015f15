"""One face for every entry point: jobs run the CLI's commands; `airflow dags test` output becomes task steps."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import typer

from featurelake import progress
from tests.conftest import REPO_ROOT, isolated_env, run_cli

JOBS = sorted((REPO_ROOT / "jobs").glob("*.py"))


def job_command(script) -> list[str]:
    """The command a jobs/ script runs: the arguments of its run_job(...) call."""
    calls = [n for n in ast.walk(ast.parse(script.read_text())) if isinstance(n, ast.Call)]
    (call,) = [c for c in calls if getattr(c.func, "id", None) == "run_job"]
    return [ast.literal_eval(a) for a in call.args]


@pytest.mark.parametrize("script", JOBS, ids=lambda p: p.name)
def test_every_job_runs_a_command_of_the_cli(script):
    from featurelake.cli import app

    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    command = group
    for name in job_command(script):
        command = command.get_command(ctx, name)
        assert command is not None, (script.name, name)


def test_a_job_refuses_bad_input_as_the_cli_does_with_one_line_and_exit_2(tmp_path):
    args = ["--start", "2013-13-01", "--end", "2013-01-02"]
    job = [sys.executable, str(REPO_ROOT / "jobs" / "compute_features.py"), *args]
    by_job = subprocess.run(job, env=isolated_env(tmp_path), capture_output=True, text=True, timeout=120)
    by_cli = run_cli(tmp_path, "compute", *args, check=False)
    for proc in (by_job, by_cli):
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == "error: '2013-13-01' is not a date (expected YYYY-MM-DD)"


def airflow_line(message: str, logger: str = "airflow.sdk.definitions.dag", fields: str = "loc=x.py:1") -> str:
    """A line as ``airflow dags test`` prints it (structlog): time, level, message, logger, key=value fields."""
    return f"2026-12-01T22:33:07.524040Z [info     ] {message:<30} [{logger}] {fields}\n"


HOOK = "airflow.task.hooks.airflow.providers.standard.hooks.subprocess.SubprocessHook"
STATE = "airflow.api_fastapi.execution_api.routes.task_instances"


def attempt(task: str, output: list[str], state: str) -> list[str]:
    return [
        airflow_line(f"[DAG TEST] starting task_id={task} map_index=-1"),
        airflow_line("Running command: ['/usr/bin/bash', '-c', 'featurelake spark-submit x.py']", HOOK),
        airflow_line("Output:", HOOK),
        *(airflow_line(line, HOOK) for line in output),
        airflow_line("Task instance state updated", STATE, f"correlation_id=1 loc=x.py:485 new_state={state}"),
        airflow_line(f"[DAG TEST] end task task_id={task} map_index=-1"),
    ]


class Recorder:
    def __init__(self):
        self.events: list[tuple[str, str]] = []

    def start(self, label: str) -> Recorder.Step:
        self.events.append(("start", label))
        return Recorder.Step(self, label)

    class Step:
        def __init__(self, recorder: Recorder, label: str):
            self.recorder, self.label = recorder, label

        def done(self, rows: int | None = None) -> None:
            self.recorder.events.append(("done", self.label))

        def failed(self, outcome: str) -> None:
            self.recorder.events.append((outcome, self.label))


def test_dag_test_output_becomes_one_step_per_task_attempt_with_its_outcome():
    from featurelake.orchestration import _TaskSteps

    lines = [
        airflow_line("Created dag run."),
        *attempt("ingest", ["ingested 2013-01-01..2013-01-01"], "success"),
        *attempt("compute_views", ["error: validation failed"], "up_for_retry"),
        *attempt("compute_views", ["12:00:01 WARN spark", "error: validation failed: view x"], "failed"),
    ]
    recorder, tasks = Recorder(), _TaskSteps()
    with progress.reporting(recorder):
        for line in lines:
            tasks.read(line)
    assert recorder.events == [
        ("start", "ingest"),
        ("done", "ingest"),
        ("start", "compute_views"),
        ("up_for_retry", "compute_views"),
        ("start", "compute_views (try 2)"),
        ("failed", "compute_views (try 2)"),
    ]
    assert tasks.failure.splitlines() == [
        " at task compute_views (failed); its last lines:",
        "  12:00:01 WARN spark",
        "  error: validation failed: view x",
    ]
    # with no reporter installed, steps go nowhere
    silent = _TaskSteps()
    for line in lines:
        silent.read(line)
    assert silent.failure == tasks.failure
