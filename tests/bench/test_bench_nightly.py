"""Benchmark: one demo day's nightly DAG run through Airflow (LocalExecutor), the window/transform views as one
task each side by side (``orchestration.task_per_view``, the default) vs one compute task for all of them.

Runs in pairs, the two variants in turn (the order alternates per pair), each on a fresh state folder with its own
catalog, Airflow database and API server; the time is the DAG run's (``run_dag_test``), not the services' start.
Results (JSON + markdown, with the machine and the command) go to bench/results/nightly.{json,md}.
Run with `make bench` (or `pytest -m bench -s tests/bench/test_bench_nightly.py`); BENCH_NIGHTLY_PAIRS sets the
number of pairs (default 2).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import isolated_env

pytestmark = pytest.mark.bench

DAY = dt.date(2013, 1, 1)
PAIRS = int(os.environ.get("BENCH_NIGHTLY_PAIRS", "2"))
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
COMMAND = "make bench  # = .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_nightly.py"
TASK = re.compile(r"=== task (\w+) try \d+/\d+ \((\w+): (.+?) \.\. (.+?)\)")


def task_seconds(output: str) -> dict[str, float]:
    """Each successful task's seconds, from a ``run_dag_test`` output."""
    return {
        task: round((dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds(), 1)
        for task, state, start, end in TASK.findall(output)
        if state == "success"
    }


def nightly(tmp_path_factory, per_view: bool) -> dict:
    """One nightly run of DAY on a fresh state folder: wall seconds and each task's seconds."""
    from featurelake.config import load_settings
    from featurelake.orchestration import nightly_run_after, run_dag_test
    from featurelake.services.airflow import api_server

    state = tmp_path_factory.mktemp("nightly")
    env = isolated_env(state, FEATURELAKE__ORCHESTRATION__TASK_PER_VIEW=str(per_view).lower())
    settings = load_settings(environ=env)
    server = api_server(settings, env)
    server.start(settings)
    try:
        started = time.monotonic()
        output = run_dag_test(settings, "feature_pipeline", nightly_run_after(DAY), environ=env)
        wall = time.monotonic() - started
    finally:
        server.stop(settings)
    tasks = task_seconds(output)
    computes = [s for t, s in tasks.items() if t.startswith("compute_")]
    return {
        "variant": "one task per view" if per_view else "one compute task",
        "wall_s": round(wall, 1),
        "compute_tasks": len(computes),
        "tasks_s": tasks,
        "load_average_at_start": os.getloadavg(),
    }


def test_bench_nightly_per_view_tasks_vs_one_compute_task(tmp_path_factory):
    from featurelake.config import load_settings

    settings = load_settings(environ=isolated_env(tmp_path_factory.mktemp("settings")))
    pairs = []
    for i in range(PAIRS):
        order = [True, False] if i % 2 == 0 else [False, True]
        runs = {per_view: nightly(tmp_path_factory, per_view) for per_view in order}
        ratio = runs[True]["wall_s"] / runs[False]["wall_s"]
        pairs.append({"per_view": runs[True], "one_task": runs[False], "ratio": ratio})
    info = {
        "command": COMMAND,
        "day": str(DAY),
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            "spark_master": settings.spark.master,
            "airflow_parallelism": settings.services.airflow.parallelism,
        },
        "pairs": pairs,
        "median_ratio_per_view_over_one_task": statistics.median(p["ratio"] for p in pairs),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "nightly.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    lines = [
        "# Nightly DAG run of one demo day: one task per view (side by side) vs one compute task",
        "",
        f"Command: `{COMMAND}`  ",
        f"Machine: {info['machine']}",
        "",
        "| pair | variant | wall s | compute tasks | compute task s (each) | load at start |",
        "| --- | --- | ---: | ---: | --- | --- |",
    ]
    for n, pair in enumerate(pairs, 1):
        for key in ("per_view", "one_task"):
            run = pair[key]
            each = ", ".join(f"{s:.0f}" for t, s in run["tasks_s"].items() if t.startswith("compute_"))
            load = ", ".join(f"{x:.1f}" for x in run["load_average_at_start"])
            lines.append(f"| {n} | {run['variant']} | {run['wall_s']:.0f} | {run['compute_tasks']} | {each} | {load} |")
        lines.append(f"| {n} | ratio per view / one task | {pair['ratio']:.2f} | | | |")
    lines += ["", f"Median ratio (per view / one task): {info['median_ratio_per_view_over_one_task']:.2f}"]
    (RESULTS / "nightly.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    assert all(p["per_view"]["compute_tasks"] >= 4 and p["one_task"]["compute_tasks"] == 1 for p in pairs)
