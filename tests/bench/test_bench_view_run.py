"""Benchmark: the fixed cost of a view's run. Each featurelake-computed view of the demo repository recomputes one
day (2013-01-07) on top of the six days before it, in a warm driver (its first run, which pays the imports and
the first Spark plans, is a warm-up): what a nightly pays per view whatever the day's size (its computation
alone is 0.7-1.2 s of it: bench/results/compute.md). Then the nightly's own path, all the views of the day
through ``compute_views`` (``compute.parallel_views`` at once): what a nightly of these views takes, and per
view, with its records committed behind the views (``holding_records(behind=True)``) and, in turn in the same
driver, per view (each view's run commits its own, as before that: ``holding_records`` taken out).

With BENCH_VIEW_RUN_BASELINE_SRC (another checkout's ``src``, e.g. a worktree of the commit before a change) the
two engines run in turn on the same state, the order alternating per pair, each in a driver process of its own;
the baseline sets that state up (its tables as the baseline makes them: the current engine runs on them as after
an upgrade).
Results: bench/results/view_run.{json,md}.

    .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_view_run.py
    git worktree add .state/baseline <commit> && BENCH_VIEW_RUN_BASELINE_SRC=$PWD/.state/baseline/src \\
      .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_view_run.py

BENCH_VIEW_RUN_PAIRS (default 2), BENCH_VIEW_RUN_REPS (timed runs per view and driver, default 3).
BENCH_VIEW_RUN_BASELINE_ENV: a JSON object of environment variables of the baseline's driver; with
BENCH_VIEW_RUN_BASELINE_SRC=$PWD/src it compares settings of the same engine, e.g. Spark's code generation (the
ci configuration turns it off) or JVM options:

    BENCH_VIEW_RUN_BASELINE_SRC=$PWD/src BENCH_VIEW_RUN_BASELINE_ENV='{"FEATURELAKE__SPARK__CODEGEN": "true"}' ...
    BENCH_VIEW_RUN_BASELINE_ENV='{"JDK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1"}' ...
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.bench

DAY = dt.date(2013, 1, 7)
PAIRS = int(os.environ.get("BENCH_VIEW_RUN_PAIRS", "2"))
REPS = int(os.environ.get("BENCH_VIEW_RUN_REPS", "3"))
BASELINE_SRC = os.environ.get("BENCH_VIEW_RUN_BASELINE_SRC")
BASELINE_ENV: dict[str, str] = json.loads(os.environ.get("BENCH_VIEW_RUN_BASELINE_ENV", "{}"))
REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results"
COMMAND = ".venv/bin/python -m pytest -m bench -s tests/bench/test_bench_view_run.py"
RECORD_POLICIES = ["records behind the views", "records per view"]


def time_view_runs(day: dt.date, reps: int) -> dict[str, Any]:
    """In this process: each computed view's run of ``day``, once to warm up, then ``reps`` times; then the
    nightly's path over all of them (``compute_views``: ``compute.parallel_views`` at once), ``reps`` times per
    record policy, in turn (seconds)."""
    from featurelake.compute import pipeline
    from featurelake.compute.pipeline import compute_one, compute_views, computed_views
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo
    from featurelake.runs import Interval
    from featurelake.spark import get_spark

    settings = get_settings()
    spark, repo = get_spark(settings), feature_repo(settings)
    views = computed_views(repo)
    seconds: dict[str, list[float]] = {}
    for view in views:
        compute_one(spark, settings, repo, view, Interval(day, day))
        seconds[view] = []
        for _ in range(reps):
            started = time.monotonic()
            compute_one(spark, settings, repo, view, Interval(day, day))
            seconds[view].append(round(time.monotonic() - started, 2))
    # the nightly's path in turn with its records committed behind the views (as it runs) and per view (each
    # view's run commits its own at its end: ``holding_records`` taken out of ``compute_views``)
    nightly: dict[str, list[float]] = {policy: [] for policy in RECORD_POLICIES}
    behind = pipeline.__dict__.get("holding_records")
    for i in range(reps):
        for policy in RECORD_POLICIES if i % 2 == 0 else RECORD_POLICIES[::-1]:
            pipeline.holding_records = behind if policy == RECORD_POLICIES[0] else _no_holding
            started = time.monotonic()
            compute_views(spark, settings, repo, views, Interval(day, day), run_id=f"bench-nightly-{i}")
            nightly[policy].append(round(time.monotonic() - started, 2))
    return {"views": seconds, "nightly": nightly, "parallel_views": settings.compute.parallel_views}


@contextmanager
def _no_holding(spark: Any, *, behind: bool = False) -> Iterator[None]:
    yield


def driver(state: Path, extra: dict[str, str]) -> dict:
    """One driver process timing every view, with ``extra`` in its environment (an engine's ``PYTHONPATH``, JVM
    options in ``JDK_JAVA_OPTIONS``)."""
    from tests.conftest import isolated_env

    load = os.getloadavg()
    proc = subprocess.run(
        [sys.executable, __file__, str(DAY), str(REPS)],
        env=isolated_env(state, **extra),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load_at_start": load}


def test_bench_view_run(tmp_path_factory, postgres):
    from tests.conftest import metastore_database, run_cli

    state = tmp_path_factory.mktemp("view_run") / "state"
    postgres.ensure_database(metastore_database(state))
    engines: dict[str, dict[str, str]] = {"current": {}}
    if BASELINE_SRC:
        engines["baseline"] = {"PYTHONPATH": BASELINE_SRC, **BASELINE_ENV}
    setup = engines.get("baseline", {})
    run_cli(state, "ingest", "--start", "2013-01-01", "--end", str(DAY), **setup)
    run_cli(state, "compute", "--start", "2013-01-01", "--end", str(DAY - dt.timedelta(days=1)), **setup)
    pairs = []
    for i in range(PAIRS):
        order = list(engines) if i % 2 == 0 else list(engines)[::-1]
        pairs.append({name: driver(state, engines[name]) for name in order})
    views = sorted(pairs[0]["current"]["views"])
    median = {
        name: {v: statistics.median(s for p in pairs for s in p[name]["views"][v]) for v in views} for name in engines
    }
    nightly = {
        name: {
            policy: statistics.median(s for p in pairs for s in p[name]["nightly"][policy])
            for policy in RECORD_POLICIES
        }
        for name in engines
    }
    # per view / behind, pair by pair within each driver (the two policies run in turn in one process)
    nightly_ratio = {
        name: statistics.median(
            b / a
            for p in pairs
            for a, b in zip(*(p[name]["nightly"][policy] for policy in RECORD_POLICIES), strict=True)
        )
        for name in engines
    }
    info = {
        "command": COMMAND + (" (BENCH_VIEW_RUN_BASELINE_SRC set)" if BASELINE_SRC else ""),
        "measured": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpu_count": os.cpu_count()},
        "day": str(DAY),
        "reps": REPS,
        "engines": engines,
        "pairs": pairs,
        "median_s": median,
        "nightly_median_s": nightly,
        "nightly_ratio_per_view_to_behind": nightly_ratio,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "view_run.json").write_text(json.dumps(info, indent=2) + "\n")
    names = list(engines)
    lines = [
        f"# One view's run of one day ({DAY}, on the six days before it), warm driver",
        "",
        f"Command: `{info['command']}`  ",
        f"Machine: {info['machine']}; measured {info['measured']}",
        "",
        "Median seconds per run over "
        + f"{PAIRS} pair(s) x {REPS} runs"
        + (f", the engines in turn (baseline: {engines['baseline']})" if BASELINE_SRC else ""),
        "",
        "| view | " + " | ".join(names) + (" | baseline / current |" if BASELINE_SRC else ""),
        "| --- | " + " | ".join("---:" for _ in names) + (" | ---: |" if BASELINE_SRC else ""),
    ]
    for v in views + ["mean"]:
        values = {n: statistics.mean(median[n].values()) if v == "mean" else median[n][v] for n in names}
        ratio = f" | {values['baseline'] / values['current']:.2f} |" if BASELINE_SRC else ""
        lines.append(f"| {v} | " + " | ".join(f"{values[n]:.2f}" for n in names) + ratio)
    parallel = pairs[0]["current"]["parallel_views"]
    lines += [
        "",
        f"The nightly's path over the {len(views)} views (`compute_views`, {parallel} at once), its records committed "
        + "behind the views or per view, in turn in each driver: median seconds over "
        + f"{PAIRS} pair(s) x {REPS} runs (per view: divided by {len(views)})",
        "",
        "| | " + " | ".join(f"{n} | {n} per view" for n in names) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in names) + " |",
    ]
    for policy in RECORD_POLICIES:
        cells = " | ".join(f"{nightly[n][policy]:.2f} | {nightly[n][policy] / len(views):.2f}" for n in names)
        lines.append(f"| {policy} | {cells} |")
    lines.append(
        "| per view / behind (median pair by pair) | " + " | ".join(f"{nightly_ratio[n]:.2f} | " for n in names)
    )
    lines += ["", "Load average at each driver's start: "]
    lines += [f"- pair {i + 1}: " + "; ".join(f"{n} {p[n]['load_at_start']}" for n in p) for i, p in enumerate(pairs)]
    (RESULTS / "view_run.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    assert all(
        len(s) == REPS for p in pairs for run in p.values() for s in [*run["views"].values(), *run["nightly"].values()]
    )


if __name__ == "__main__":
    print(json.dumps(time_view_runs(dt.date.fromisoformat(sys.argv[1]), int(sys.argv[2]))))
