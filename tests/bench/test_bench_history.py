"""Benchmark: does a nightly run grow with the day or with the history? The nightly DAG run (through Airflow) of one
day on top of 1 year and on top of 4 years of synthetic history (features/flights/synthetic.py), side by side.

Each history is built once, on a state folder of its own, as a team would backfill it: `featurelake ingest` and
`featurelake compute` over the history's days (their times are reported too). The day after the history is then
run as the nightly DAG on both states in turn, the order alternating per pair; its source folder holds that day
only (a daily drop), so the ingest reads the same file in both. The first nightly of each state (its first
materialization) is a warm-up, reported and left out of the ratio. Results: bench/results/history.{json,md}.

`pytest -m bench -s tests/bench/test_bench_history.py`; BENCH_HISTORY_FLIGHTS_PER_DAY (default 1000; the real
data has ~920), BENCH_HISTORY_YEARS (default "1,4"), BENCH_HISTORY_PAIRS (default 2).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import pytest

from tests.bench.test_bench_nightly import task_seconds
from tests.conftest import CODEGEN_ENV, isolated_env, run_cli

pytestmark = pytest.mark.bench

FLIGHTS_PER_DAY = int(os.environ.get("BENCH_HISTORY_FLIGHTS_PER_DAY", "1000"))
YEARS = [int(y) for y in os.environ.get("BENCH_HISTORY_YEARS", "1,4").split(",")]
PAIRS = int(os.environ.get("BENCH_HISTORY_PAIRS", "2"))
DAY = dt.date(2014, 1, 1)  # the nightly's day: the history ends the day before
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
COMMAND = ".venv/bin/python -m pytest -m bench -s tests/bench/test_bench_history.py"


class HistoryState:
    """A state folder holding ``years`` years of history before DAY, its Airflow API server, and its nightly runs."""

    def __init__(self, root: Path, years: int, day_source: Path):
        from featurelake.config import load_settings
        from features.flights.synthetic import generate

        self.years, self.state = years, root / f"state_{years}y"
        history = root / f"source_{years}y"
        first = dt.date(DAY.year - years, 1, 1)
        generate(history, first, DAY - dt.timedelta(days=1), FLIGHTS_PER_DAY)
        self.build_s = {}
        for step in (["ingest"], ["compute"]):
            started = time.monotonic()
            run_cli(self.state, *step, "--start", str(first), "--end", str(DAY - dt.timedelta(days=1)),
                    timeout=4 * 3600, FEATURELAKE__INGEST__SOURCE_DIR=str(history), **CODEGEN_ENV)  # fmt: skip
            self.build_s[step[0]] = round(time.monotonic() - started, 1)
        self.env = isolated_env(self.state, FEATURELAKE__INGEST__SOURCE_DIR=str(day_source), **CODEGEN_ENV)
        self.settings = load_settings(environ=self.env)

    def nightly(self) -> dict:
        """One nightly DAG run of DAY: wall seconds and each task's."""
        from featurelake.orchestration import nightly_run_after, run_dag_test
        from featurelake.services.airflow import api_server

        server = api_server(self.settings, self.env)
        server.start(self.settings)
        try:
            load = os.getloadavg()
            started = time.monotonic()
            output = run_dag_test(self.settings, "feature_pipeline", nightly_run_after(DAY), environ=self.env)
            wall = time.monotonic() - started
        finally:
            server.stop(self.settings)
        return {"years": self.years, "wall_s": round(wall, 1), "tasks_s": task_seconds(output), "load_at_start": load}


def test_bench_nightly_on_one_and_four_years_of_history(tmp_path_factory):
    from features.flights.synthetic import generate

    root = tmp_path_factory.mktemp("history")
    generate(root / "day", DAY, DAY, FLIGHTS_PER_DAY)
    states = [HistoryState(root, years, root / "day") for years in YEARS]
    warm_up = [s.nightly() for s in states]
    pairs = []
    for i in range(PAIRS):
        runs = {s.years: s.nightly() for s in (states if i % 2 == 0 else states[::-1])}
        pairs.append({"runs": runs, "ratio": runs[YEARS[-1]]["wall_s"] / runs[YEARS[0]]["wall_s"]})
    info = {
        "command": COMMAND,
        "day": str(DAY),
        "flights_per_day": FLIGHTS_PER_DAY,
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            "spark_master": states[0].settings.spark.master,
        },
        "history_build_s": {s.years: s.build_s for s in states},
        "warm_up": warm_up,
        "pairs": pairs,
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "history.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    tasks = list(warm_up[0]["tasks_s"])
    lines = [
        f"# The nightly DAG run of {DAY} on {' and '.join(f'{y} year(s)' for y in YEARS)} of history "
        f"({FLIGHTS_PER_DAY:,} flights a day)",
        "",
        f"Command: `{COMMAND}`  ",
        f"Machine: {info['machine']}",
        "",
        "History built with `featurelake ingest` then `featurelake compute` over its days (s): "
        + "; ".join(
            f"{s.years} y: ingest {s.build_s['ingest']:.0f}, compute {s.build_s['compute']:.0f}" for s in states
        ),
        "",
        "| run | history | wall s | " + " | ".join(tasks) + " | load at start |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in tasks) + " | --- |",
    ]

    def row(label: str, run: dict) -> str:
        each = " | ".join(f"{run['tasks_s'].get(t, float('nan')):.0f}" for t in tasks)
        load = ", ".join(f"{x:.1f}" for x in run["load_at_start"])
        return f"| {label} | {run['years']} y | {run['wall_s']:.0f} | {each} | {load} |"

    lines += [row("warm-up", run) for run in warm_up]
    for n, pair in enumerate(pairs, 1):
        lines += [row(f"pair {n}", pair["runs"][y]) for y in YEARS]
        lines.append(
            f"| pair {n} | ratio {YEARS[-1]} y / {YEARS[0]} y | {pair['ratio']:.2f} |" + " |" * (len(tasks) + 1)
        )
    lines += ["", f"Median ratio ({YEARS[-1]} y / {YEARS[0]} y): {info['median_ratio']:.2f} (target: at most 1.1)"]
    (RESULTS / "history.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    assert all(set(p["runs"][y]["tasks_s"]) == set(tasks) for p in pairs for y in YEARS)
