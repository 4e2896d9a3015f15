"""How ``run_dag_test`` follows an ``airflow dags test`` process (orchestration._follow) against a metadata database
stand-in: it returns when the process exits, and gives up on a process that outlives its ended run by
``EXIT_GRACE_S`` (Airflow 3's LocalExecutor can wait forever on a worker at shutdown)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from featurelake import orchestration


class RunState:
    """The metadata database as ``_follow`` reads it: no task instances, the run's state from a list per read."""

    def __init__(self, *states: str | None) -> None:
        self.states = list(states)

    def task_instances(self) -> list[tuple]:
        return []

    def run_state(self) -> str | None:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


class NoSteps:
    def update(self, instances: list[tuple]) -> None:
        assert instances == []


@pytest.fixture
def grace(monkeypatch):
    monkeypatch.setattr(orchestration, "EXIT_GRACE_S", 2)
    return 2


def test_a_process_that_exits_is_followed_to_its_end(grace):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    started = time.monotonic()
    assert orchestration._follow(proc, RunState(None, None, "success"), NoSteps()) is False
    assert proc.returncode == 0 and time.monotonic() - started >= 3


def test_a_process_that_outlives_its_ended_run_is_given_up_after_the_grace(grace):
    from featurelake.services.process import end_group

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        started = time.monotonic()
        assert orchestration._follow(proc, RunState("running", "running", "success"), NoSteps()) is True
        waited = time.monotonic() - started
        assert proc.poll() is None and 2 + grace <= waited < 2 + grace + 10  # two polls running, then the grace
    finally:
        end_group(proc)


def test_a_process_still_running_its_run_is_not_given_up(grace):  # it runs longer than the grace
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(7)"])
    assert orchestration._follow(proc, RunState("running"), NoSteps()) is False
    assert proc.returncode == 0
