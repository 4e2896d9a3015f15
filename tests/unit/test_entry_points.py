"""One face for every entry point: jobs run the CLI's commands; a DAG run's task instances become task steps."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import typer

from featurelake import progress
from tests.conftest import REPO_ROOT, isolated_env, run_cli
from tests.support.servers import free_port

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


def task_log(logs_dir, run_id: str, task: str, attempt: int, output: list[str]) -> None:
    """An attempt's Airflow task log (JSON lines, as the task process writes it), with its command's output."""
    import json

    events = ["::group::Pre Execute", "Running command: ['/usr/bin/bash', '-c', 'featurelake x']", "Output:", *output]
    path = logs_dir / f"run_id={run_id}" / f"task_id={task}" / f"attempt={attempt}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"timestamp": "2026-12-01T00:00:00Z", "event": e}) + "\n" for e in events))


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


def test_task_instance_snapshots_become_one_step_per_task_attempt_with_its_outcome(tmp_path):
    from featurelake.orchestration import _TaskSteps

    run = "manual__2013-01-02T00:00:00+00:00"
    task_log(tmp_path, run, "compute_b", 2, ["12:00:01 WARN spark", "error: validation failed: view b"])
    snapshots = [
        [(run, "ingest", 1, "running"), (run, "compute_a", 0, None), (run, "compute_b", 0, None)],
        [(run, "ingest", 1, "success"), (run, "compute_a", 1, "queued"), (run, "compute_b", 1, "running")],
        [(run, "ingest", 1, "success"), (run, "compute_a", 1, "running"), (run, "compute_b", 1, "up_for_retry")],
        [(run, "ingest", 1, "success"), (run, "compute_a", 1, "success"), (run, "compute_b", 2, "running")],
        [(run, "ingest", 1, "success"), (run, "compute_a", 1, "success"), (run, "compute_b", 2, "failed")],
        [(run, "ingest", 1, "success"), (run, "compute_a", 1, "success"), (run, "compute_b", 2, "failed")],
    ]
    recorder, tasks = Recorder(), _TaskSteps(tmp_path)
    with progress.reporting(recorder):
        for snapshot in snapshots:
            tasks.update(snapshot)
    assert recorder.events == [
        ("start", "ingest"),
        ("done", "ingest"),
        ("start", "compute_a"),
        ("start", "compute_b"),
        ("up_for_retry", "compute_b"),
        ("done", "compute_a"),
        ("start", "compute_b (try 2)"),
        ("failed", "compute_b (try 2)"),
    ]
    assert tasks.failure.splitlines() == [
        " at task compute_b (failed); its last lines:",
        "  12:00:01 WARN spark",
        "  error: validation failed: view b",
    ]
    # with no reporter installed, steps go nowhere
    silent = _TaskSteps(tmp_path)
    for snapshot in snapshots:
        silent.update(snapshot)
    assert silent.failure == tasks.failure


def test_a_dag_run_with_the_airflow_api_server_down_is_one_line_naming_it_and_exit_2(tmp_path):
    port = free_port()
    proc = run_cli(tmp_path, "run-demo", check=False, FEATURELAKE__SERVICES__AIRFLOW__PORT=str(port))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        f"error: the Airflow API server on 127.0.0.1:{port} is not running: start it with "
        "`featurelake services start` (or `make up`)"
    )
    assert not (tmp_path / "airflow").exists()  # nothing written before the check


def test_promoting_a_view_that_is_not_defined_is_one_line_naming_the_known_views_and_exit_2(tmp_path):
    from featurelake.repo import load_repo

    proc = run_cli(tmp_path, "promote", "no_such_view", "--version", "1", check=False)
    known = ", ".join(sorted(load_repo(REPO_ROOT / "features").views))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: unknown feature view 'no_such_view' (known: {known})"]
    assert not (tmp_path / "online").exists()  # no store opened
