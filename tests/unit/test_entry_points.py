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


RETIRE_DEFS = """
from featurelake.repo.definitions import DeltaTableSource, Entity, Feature, FeatureService, FeatureView

driver = Entity(name="driver", join_keys=["driver_id"])
driver_stats = FeatureView(
    name="driver_stats", entities=[driver], version=3,
    source=DeltaTableSource(name="driver_src", table="features.t", timestamp_column="event_ts"),
    features=[Feature(name="trips", dtype="bigint")],
)
trained_on_v1 = FeatureService(name="trained_on_v1", features=[driver_stats.pin(1, ["trips"])])
also_v1 = FeatureService(name="also_v1", features=[driver_stats.pin(1)])
"""


def test_retire_refuses_the_served_and_the_pinned_versions_with_one_line_and_exit_2(tmp_path):
    """Refusals leave the store as it was (the SQLite store of the state folder, written here); without the pins
    the version goes."""
    import datetime as dt

    from featurelake.online.backends import open_store
    from featurelake.online.store import Record, StoreConfig, Watermark
    from featurelake.online.versions import promote, record_check

    features = tmp_path / "features"
    features.mkdir()
    (features / "defs.py").write_text(RETIRE_DEFS)
    config = StoreConfig("sqlite", str(tmp_path / "online" / "online.db"), "", 0, 0, "", None, "", 10)
    with open_store(config) as store:
        for version in (1, 2, 3):
            namespace = f"driver_stats.v{version}"
            store.write(namespace, [Record(f"[{d}]", 1, 0, f'{{"trips":{version * d}}}', None, None) for d in range(5)])
            watermark = Watermark("features.t", 1, dt.datetime(2013, 1, 8, tzinfo=dt.UTC), version, "full")
            store.set_watermark(namespace, watermark)
            record_check(store, namespace, watermark, 5)
        rows = store.conn.execute("SELECT * FROM feature_values ORDER BY view, k").fetchall()

    def retire(version: int) -> list[str]:
        proc = run_cli(tmp_path, "retire", "driver_stats", "--version", str(version), check=False,
                       FEATURELAKE__FEATURES_DIR=str(features))  # fmt: skip
        assert proc.returncode == 2, proc.stdout + proc.stderr
        return proc.stderr.strip().splitlines()

    assert retire(3) == [
        "error: driver_stats v3 is the version served (defined and never promoted): promote another version first"
    ]
    assert retire(1) == [
        "error: driver_stats v1 is pinned by feature service(s) also_v1, trained_on_v1: unpin it first"
    ]
    with open_store(config) as store:
        promote(store, "driver_stats", 2)
    assert retire(2) == ["error: driver_stats v2 is the version served (promoted): promote another version first"]
    assert retire(4) == [f"error: driver_stats v4 is not in sqlite:{config.sqlite_path}"]
    with open_store(config) as store:
        assert store.conn.execute("SELECT * FROM feature_values ORDER BY view, k").fetchall() == rows
        assert all(store.get_watermark(f"driver_stats.v{v}") for v in (1, 2, 3))

    (features / "defs.py").write_text(RETIRE_DEFS.split("trained_on_v1 =")[0])
    proc = run_cli(tmp_path, "retire", "driver_stats", "--version", "1", FEATURELAKE__FEATURES_DIR=str(features))
    assert f"driver_stats: v1 retired from sqlite:{config.sqlite_path} (5 keys removed)" in " ".join(
        proc.stdout.split()
    )
    with open_store(config) as store:
        left = store.conn.execute("SELECT * FROM feature_values ORDER BY view, k").fetchall()
        assert left == [r for r in rows if r[0] != "driver_stats.v1"] and store.get_watermark("driver_stats.v1") is None
