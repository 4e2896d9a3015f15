"""Benchmark: every window feature over the full year of flights, tiled vs direct, backfill vs nightly increment.

Results (JSON + markdown, with the machine and the command) go to bench/results/compute.{json,md}.
Run with `make bench` (or `pytest -m bench tests/bench/test_bench_compute.py -s`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import pytest

from featurelake.compute.aggregations import TILE_DATE, WindowPlan, rollup
from featurelake.compute.dbt import run_dbt_build
from featurelake.compute.pipeline import backfill, compute, computed_views
from featurelake.compute.publish import read_source
from featurelake.compute.windows import SLACK_AFTER, compute_view, interval_tiles, rollup_end, tiles_table
from featurelake.repo import feature_repo
from featurelake.runs import Interval
from tests.support.direct import direct
from tests.support.stages import metrics_since, stage_ids

pytestmark = pytest.mark.bench

YEAR = Interval(dt.date(2013, 1, 1), dt.date(2013, 12, 31))
NIGHTLY_DAY = dt.date(2013, 12, 31)  # the newest day: what a nightly run computes after the backfill
NIGHTLY = Interval(NIGHTLY_DAY, NIGHTLY_DAY)
DIRECT_SAMPLE_DAYS = [dt.date(2013, 6, 3), dt.date(2013, 9, 17), dt.date(2013, 12, 15)]
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
COMMAND = "make bench  # = .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_compute.py"


def machine(spark) -> dict:
    mem = None
    if Path("/proc/meminfo").is_file():
        first = Path("/proc/meminfo").read_text().splitlines()[0].split()
        mem = f"{int(first[1]) / 1024 / 1024:.1f} GiB"
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "memory": mem,
        "spark": spark.version,
        "spark_master": spark.conf.get("spark.master"),
        "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
        "load_average_at_start": os.getloadavg(),
    }


def timed(spark, fn, *args, **kwargs):
    """(result, wall seconds, executor seconds) of ``fn(*args, **kwargs)``: the executor time is the run time of
    the tasks of every Spark stage it ran (the compute it used, summed over cores)."""
    before, t = stage_ids(spark), time.monotonic()
    result = fn(*args, **kwargs)
    wall = time.monotonic() - t
    return result, wall, metrics_since(spark, before)["executor_s"]


def direct_day(spark, view, keys, day: dt.date) -> int:
    """Recompute every window of one day straight from the events (no tiles); rows produced."""
    from pyspark.sql import functions as F

    plan = WindowPlan.from_view(view, keys)
    lo = day - dt.timedelta(days=plan.max_window.days + 1)
    src = read_source(spark, view).where(F.col(view.source.date_partition_column).between(lo - SLACK_AFTER, day))
    rows = direct(
        src,
        plan=plan,
        start=dt.datetime.combine(day, dt.time()),
        end=dt.datetime.combine(day, dt.time()) + dt.timedelta(days=1),
    )
    return rows.count()


def compute_alone(spark, view, keys, interval: Interval) -> None:
    """What ``compute_view`` computes for the interval, into Spark's noop sink: the interval's tiles, then the
    feature rows rolled up from the stored tiles. No Delta commit, validation gate or records."""
    from pyspark.sql import functions as F

    plan = WindowPlan.from_view(view, keys)
    affected = interval_tiles(spark, view, plan, interval)
    affected.tiles.write.format("noop").mode("overwrite").save()
    out_hi = rollup_end(spark, tiles_table(view), affected)
    table = spark.table(tiles_table(view))
    stored = table.where(F.col(TILE_DATE).between(F.lit(affected.read_lo), F.lit(out_hi))).persist()
    try:
        rows = rollup(stored, plan=plan, start=affected.tile_lo, end=out_hi + dt.timedelta(days=1))
        rows.write.format("noop").mode("overwrite").save()
    finally:
        stored.unpersist()


@pytest.mark.usefixtures("codegen")
def test_bench_window_features_full_year(spark, settings):
    from features.flights.ingest import ingest

    # The 2013 weather ends 2013-12-30 23:00 UTC: a day of slack keeps the year's freshness check of the
    # weather view on the data gap it is, not on what is measured here.
    settings = settings.model_copy(
        update={"validation": settings.validation.model_copy(update={"freshness_slack": "1d"})}
    )

    info = {"command": COMMAND, "machine": machine(spark), "generated_at": dt.datetime.now(dt.UTC).isoformat()}
    t = time.monotonic()
    ingest(spark, settings, YEAR)
    info["ingest_year_s"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    run_dbt_build(spark, settings, YEAR, run_id="bench")
    info["dbt_build_year_s"] = round(time.monotonic() - t, 1)
    info["flights"] = spark.table("staging.stg_nycflights__flights").count()

    repo = feature_repo(settings)
    views = {}
    for name in computed_views(repo):
        view, keys = repo.view(name), repo.join_keys(repo.view(name))
        full, backfill_s, backfill_exec = timed(spark, backfill, spark, settings, name, YEAR, repo=repo)
        nightly, nightly_s, nightly_exec = timed(spark, compute_view, spark, settings, view, keys, NIGHTLY)
        _, alone_year_s, alone_year_exec = timed(spark, compute_alone, spark, view, keys, YEAR)
        _, alone_day_s, alone_day_exec = timed(spark, compute_alone, spark, view, keys, NIGHTLY)
        per_day = [timed(spark, direct_day, spark, view, keys, day)[1] for day in DIRECT_SAMPLE_DAYS]
        direct_day_s = sum(per_day) / len(per_day)
        views[name] = {
            "features": len(view.feature_names),
            "tile": str(view.computation.tile),
            "max_window": str(WindowPlan.from_view(view, keys).max_window),
            "rows": full.features.rows_written,
            "tiles": full.tiles.rows_written,
            "tiled_backfill_year_s": round(backfill_s, 1),
            "tiled_nightly_day_s": round(nightly_s, 1),
            "nightly_fraction_of_backfill": round(nightly_s / backfill_s, 3),
            "tiled_backfill_year_executor_s": round(backfill_exec, 1),
            "tiled_nightly_day_executor_s": round(nightly_exec, 1),
            "nightly_executor_fraction_of_backfill": round(nightly_exec / backfill_exec, 3),
            "compute_alone_year_s": round(alone_year_s, 1),
            "compute_alone_day_s": round(alone_day_s, 1),
            "compute_alone_year_executor_s": round(alone_year_exec, 1),
            "compute_alone_day_executor_s": round(alone_day_exec, 1),
            "direct_per_day_s": round(direct_day_s, 1),
            "direct_every_day_of_year_s_extrapolated": round(direct_day_s * 365, 1),
            "direct_sample_days": [d.isoformat() for d in DIRECT_SAMPLE_DAYS],
        }
        assert full.features.rows_written and full.features.rows_written > 0
        assert nightly.features.rows_written and nightly.features.rows_written > 0
    info["views"] = views
    totals = {
        k: round(sum(v[k] for v in views.values()), 1)
        for k in (
            "tiled_backfill_year_s",
            "tiled_nightly_day_s",
            "tiled_backfill_year_executor_s",
            "tiled_nightly_day_executor_s",
            "compute_alone_year_s",
            "compute_alone_day_s",
            "compute_alone_year_executor_s",
            "compute_alone_day_executor_s",
            "direct_every_day_of_year_s_extrapolated",
        )
    }
    info["totals"] = totals
    # The nightly path as `featurelake compute --skip-dbt` runs it: every view of the day, compute.parallel_views
    # of them at once (the per-view rows above ran one view at a time).
    report, path_s, path_exec = timed(spark, compute, spark, settings, NIGHTLY, dbt=False, repo=repo)
    assert sorted(v.view for v in report.views) == sorted(views)
    info["nightly_path"] = {
        "parallel_views": settings.compute.parallel_views,
        "wall_s": round(path_s, 1),
        "executor_s": round(path_exec, 1),
        "fraction_of_backfill": round(path_s / totals["tiled_backfill_year_s"], 3),
        "executor_fraction_of_backfill": round(path_exec / totals["tiled_backfill_year_executor_s"], 3),
    }
    path = info["nightly_path"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compute.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    lines = [
        "# Window features, full year of flights",
        "",
        f"Command: `{COMMAND}`  ",
        f"Machine: {info['machine']['platform']}, {info['machine']['cpu_count']} CPUs, {info['machine']['memory']}, "
        f"Spark {info['machine']['spark']} `{info['machine']['spark_master']}`, "
        f"load average at start {info['machine']['load_average_at_start']}  ",
        f"Generated: {info['generated_at']}; {info['flights']:,} flights; ingest {info['ingest_year_s']} s, "
        f"dbt build {info['dbt_build_year_s']} s",
        "",
        "| view | features | tile | rows | tiled backfill (year) s | tiled nightly (1 day) s | nightly / backfill "
        "| executor s backfill / nightly | executor nightly / backfill | direct per day s "
        "| direct every day (x365) s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, v in views.items():
        lines.append(
            f"| {name} | {v['features']} | {v['tile']} | {v['rows']:,} | {v['tiled_backfill_year_s']} | "
            f"{v['tiled_nightly_day_s']} | {v['nightly_fraction_of_backfill']} | "
            f"{v['tiled_backfill_year_executor_s']} / {v['tiled_nightly_day_executor_s']} | "
            f"{v['nightly_executor_fraction_of_backfill']} | {v['direct_per_day_s']} | "
            f"{v['direct_every_day_of_year_s_extrapolated']} |"
        )
    lines += [
        f"| **total** | | | | {totals['tiled_backfill_year_s']} | {totals['tiled_nightly_day_s']} | "
        f"{round(totals['tiled_nightly_day_s'] / totals['tiled_backfill_year_s'], 3)} | "
        f"{totals['tiled_backfill_year_executor_s']} / {totals['tiled_nightly_day_executor_s']} | "
        f"{round(totals['tiled_nightly_day_executor_s'] / totals['tiled_backfill_year_executor_s'], 3)} | | "
        f"{totals['direct_every_day_of_year_s_extrapolated']} |",
        "",
        f"**Nightly path** (`featurelake compute` of {NIGHTLY_DAY} for the {len(views)} views, "
        f"{path['parallel_views']} at once): {path['wall_s']} s wall / {path['executor_s']} executor-s, "
        f"**{path['fraction_of_backfill']}** of the year's backfill in wall time, "
        f"{path['executor_fraction_of_backfill']} in executor time.",
        "",
        "**Compute alone** (the same tiles and roll-ups into Spark's noop sink: no Delta commit, no validation, "
        "no records), wall s / executor s:",
        "",
        "| view | year | one day | day / year (wall) | day / year (executor) |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {name} | {v['compute_alone_year_s']} / {v['compute_alone_year_executor_s']} | "
            f"{v['compute_alone_day_s']} / {v['compute_alone_day_executor_s']} | "
            f"{round(v['compute_alone_day_s'] / v['compute_alone_year_s'], 3)} | "
            f"{round(v['compute_alone_day_executor_s'] / v['compute_alone_year_executor_s'], 3)} |"
            for name, v in views.items()
        ],
        f"| **total** | {totals['compute_alone_year_s']} / {totals['compute_alone_year_executor_s']} | "
        f"{totals['compute_alone_day_s']} / {totals['compute_alone_day_executor_s']} | "
        f"{round(totals['compute_alone_day_s'] / totals['compute_alone_year_s'], 3)} | "
        f"{round(totals['compute_alone_day_executor_s'] / totals['compute_alone_year_executor_s'], 3)} |",
        "",
        f"Of the views' nightly runs ({totals['tiled_nightly_day_s']} s in turn), {totals['compute_alone_day_s']} s "
        "is their computation; the rest is the fixed cost of a run, whatever its size: the Delta commits of the "
        "tiles and of the feature rows, the gate's audit commit and GE validation, the statistics, the run and "
        "validation records.",
        "",
        "Wall seconds include the validation gate (GE), the Delta commits and the monitoring records of each run. "
        "Executor seconds are the run time of the Spark tasks each run started (summed over the 2 cores): the "
        "compute it used.",
        "Direct = every window of a day recomputed from the raw events of that day and its largest window "
        f"(mean over {', '.join(d.isoformat() for d in DIRECT_SAMPLE_DAYS)}, times 365).",
    ]
    (RESULTS / "compute.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
