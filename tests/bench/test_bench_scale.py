"""Benchmark: the throughput of each stage of a night at three sizes of its events, the measurements behind
bench/results/scale.md (the cluster a team needs for a billion events a day).

Each size is one 28-day interval of synthetic flights (features/flights/synthetic.py) landed on top of the
previous ones, run stage by stage in one Spark driver (``local[2]``, code generation on, 8 shuffle partitions):
``ingest`` (CSV to raw Delta tables), ``staging`` (the dbt build of the interval: models merged, data tests,
the dbt-computed view through its gate), ``features`` (every featurelake-computed view: tiles, roll-ups, the gate,
publish, statistics), ``gate raw.flights`` and ``gate views`` (the suites run again on the published interval,
check mode), ``training set`` (the demo service's training set of the interval's arrived flights: the
point-in-time join of 6 views and the request view). A warm-up interval first (reported, not a size). Then
``materialization`` at three sizes of its own (the online benchmark's two views, full into Redis), since the
flights views have a few hundred keys whatever the events. For each stage: wall seconds, the executors' task
seconds (summed over the 2 cores), bytes read, shuffled and spilled, and the files it added to the warehouse
(each one a PUT on an object store). Results: bench/results/scale.json and scale_stages.md.

    .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_scale.py

BENCH_SCALE_EVENTS (default "2000000,10000000,50000000") and BENCH_SCALE_ONLINE_ROWS (rows per view, default
"1000000,5000000,25000000") change the sizes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
COMMAND = ".venv/bin/python -m pytest -m bench -s tests/bench/test_bench_scale.py"
EVENTS = [int(n) for n in os.environ.get("BENCH_SCALE_EVENTS", "2000000,10000000,50000000").split(",")]
ONLINE_ROWS = [int(n) for n in os.environ.get("BENCH_SCALE_ONLINE_ROWS", "1000000,5000000,25000000").split(",")]
WARM_UP_EVENTS = 100_000
DAYS = 28  # each size's interval
FIRST_DAY = dt.date(2014, 1, 1)  # the warm-up's; the sizes follow, one interval after the other
ROWS_PER_KEY = 19  # the online benchmark's shape: 2.1M rows per view, 110,000 keys
DRIVER_MEMORY = "12g"


@pytest.mark.bench
def test_bench_scale(tmp_path):
    from tests.conftest import CODEGEN_ENV, isolated_env

    env = isolated_env(
        tmp_path / "state",
        **CODEGEN_ENV,
        **{
            "FEATURELAKE__SPARK__MASTER": "local[2]",
            "FEATURELAKE__SPARK__SHUFFLE_PARTITIONS": "8",
            "FEATURELAKE__SPARK__CONF__SPARK.DRIVER.MEMORY": DRIVER_MEMORY,
            "FEATURELAKE__SPARK__CONF__SPARK.UI.RETAINEDSTAGES": "100000",
            "FEATURELAKE__SPARK__CONF__SPARK.UI.RETAINEDJOBS": "100000",
        },
    )
    log = tmp_path / "scale.log"  # each stage's seconds as it ends: `tail -f` it
    print(f"progress: {log}", flush=True)
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, __file__, str(tmp_path)], env=env, cwd=ROOT, timeout=4 * 3600,
                              stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    assert proc.returncode == 0, log.read_text()[-4000:]
    result = json.loads((RESULTS / "scale.json").read_text())
    print((RESULTS / "scale_stages.md").read_text())
    assert [n["events"] for n in result["nights"][1:]] == [per_day(n) * DAYS for n in EVENTS]


def per_day(events: int) -> int:
    """Flights a day of a night of at least ``events`` flights."""
    return -(-events // DAYS)


def warehouse_files(warehouse: Path) -> dict[str, int]:
    """Every file under the warehouse and its size."""
    return {
        os.path.join(folder, name): os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(warehouse)
        for name in names
    }


def measured(spark, warehouse: Path, fn: Callable[[], Any]) -> tuple[Any, dict]:
    """``fn()``'s result and what it cost: wall seconds, the Spark stages' metrics, the warehouse files it added."""
    from tests.support.stages import metrics_since, stage_ids

    files, stages, load = warehouse_files(warehouse), stage_ids(spark), os.getloadavg()
    started = time.monotonic()
    result = fn()
    wall = time.monotonic() - started
    added = {path: size for path, size in warehouse_files(warehouse).items() if path not in files}
    return result, {
        "wall_s": round(wall, 2),
        **{name: round(value, 2) for name, value in metrics_since(spark, stages).items()},
        "files_added": len(added),
        "log_files_added": sum("/_delta_log/" in path for path in added),
        "bytes_added": sum(added.values()),
        "load_at_start": [round(x, 2) for x in load],
    }


def night(spark, settings, repo, root: Path, interval, events: int) -> dict:
    """One interval of ``events`` synthetic flights through every stage; each stage's measurements."""
    from featurelake.compute.dbt import run_dbt_build
    from featurelake.compute.pipeline import compute_views, computed_views
    from featurelake.offline.training_set import build_training_set
    from featurelake.validation.gate import validate
    from features.flights.ingest import ingest
    from features.flights.synthetic import generate
    from features.flights.training_sets import flight_delay_demo

    source = root / f"source_{interval.start}"
    started = time.monotonic()
    written = generate(source, interval.start, interval.end, per_day(events))
    generate_s = round(time.monotonic() - started, 1)
    settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"source_dir": str(source)})})
    warehouse, run_id, names = Path(settings.path(settings.storage.warehouse)), uuid.uuid4().hex, computed_views(repo)
    entities = f"{flight_delay_demo.entities} AND flight_date BETWEEN '{interval.start}' AND '{interval.end}'"
    steps: dict[str, Callable[[], Any]] = {
        "ingest": lambda: ingest(spark, settings, interval),
        "staging": lambda: run_dbt_build(spark, settings, interval, run_id, repo=repo),
        "features": lambda: compute_views(spark, settings, repo, names, interval, run_id=run_id),
        "gate raw.flights": lambda: validate(spark, settings, "raw.flights", interval, repo=repo),
        "gate views": lambda: [validate(spark, settings, name, interval, repo=repo) for name in names],
        "training set": lambda: build_training_set(
            spark,
            repo,
            name="scale",
            entities=entities,
            service=flight_delay_demo.service,
            full_feature_names=True,
            overwrite=True,
        ),
    }
    stages, results = {}, {}
    for stage, step in steps.items():
        results[stage], stages[stage] = measured(spark, warehouse, step)
        print(f"{interval} {events:,} events: {stage} {stages[stage]['wall_s']} s", flush=True)
    report, views = results["ingest"], results["features"]
    stages["ingest"]["rows_in"] = written["flights.csv"] + written["weather.csv"]
    landed = report.rows["raw.flights"] + report.rows["raw.weather"]
    stages["staging"]["rows_in"] = stages["features"]["rows_in"] = landed
    stages["features"]["rows_out"] = sum(v.features.rows_written or 0 for v in views)
    stages["features"]["tile_rows_out"] = sum(v.tiles.rows_written or 0 for v in views if v.tiles)
    stages["gate raw.flights"]["rows_in"] = results["gate raw.flights"].row_count
    stages["gate views"]["rows_in"] = sum(r.row_count or 0 for r in results["gate views"])
    # a failed suite runs twice (the second pass collects the failing rows): its cost is not a passing night's
    stages["gate raw.flights"]["passed"] = results["gate raw.flights"].success
    stages["gate views"]["passed"] = all(r.success for r in results["gate views"])
    counts = results["training set"].rows  # the manifest's: entity rows in, training rows out
    stages["training set"]["rows_in"], stages["training set"]["rows_out"] = counts.entities, counts.output
    return {
        "interval": [str(interval.start), str(interval.end)],
        "events": written["flights.csv"],
        "landed": report.rows,
        "rejected": report.rejects,
        "generate_s": generate_s,
        "stages": stages,
    }


def materialization(spark, warehouse: Path, root: Path, rows_per_view: int, redis_port: int) -> dict:
    """Full materialization into Redis of the online benchmark's two views at ``rows_per_view`` rows each."""
    import redis

    from featurelake.online.materialize import materialize_views
    from featurelake.repo import load_repo
    from tests.bench.test_bench_online import AS_OF, T0, config, generate, write_repo

    keys = rows_per_view // ROWS_PER_KEY
    for name, seed in (("view_a", 1), ("view_b", 100)):
        spark.sql(f"DROP TABLE IF EXISTS features.bench_online_{name}")
        generate(spark, name, seed, rows_per_view, T0, 19, keys=keys)
    write_repo(root)
    repo = load_repo(root / "features")
    views = [repo.view(v) for v in ("view_a", "view_b")]
    store = config("redis", root, redis_port)
    redis.Redis(port=redis_port).flushall()

    results, stage = measured(
        spark, warehouse, lambda: materialize_views(spark, repo, views, store, as_of=AS_OF, full=True)
    )
    written = sum(r.written for r in results)
    assert written == 2 * keys, (written, keys)
    return {"rows_in": 2 * rows_per_view, "keys_per_view": keys, "records_written": written, **stage}


def main(root: Path) -> None:
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo
    from featurelake.runs import Interval
    from featurelake.spark import get_spark
    from tests.support.servers import start_redis

    settings = get_settings()
    spark = get_spark(settings)
    repo = feature_repo(settings)
    info: dict[str, Any] = {
        "command": COMMAND,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "spark": spark.version,
            "spark_master": spark.conf.get("spark.master"),
            "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
            "driver_memory": DRIVER_MEMORY,
        },
        "days_per_interval": DAYS,
    }
    nights, start = [], FIRST_DAY
    for events in [WARM_UP_EVENTS, *EVENTS]:
        interval = Interval(start, start + dt.timedelta(days=DAYS - 1))
        nights.append(night(spark, settings, repo, root, interval, events))
        start = interval.end + dt.timedelta(days=1)
    info["nights"] = nights
    server = start_redis()
    try:
        warehouse = Path(settings.path(settings.storage.warehouse))
        info["materialization"] = [
            materialization(spark, warehouse, root / "online", n, server.port) for n in ONLINE_ROWS
        ]
    finally:
        server.stop()
    info["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    (RESULTS / "scale_stages.md").write_text(markdown(info))


def _mb(value: float) -> str:
    return f"{value / 1e6:.0f}"


def _per_executor_second(stage: dict) -> str:
    return f"{stage['rows_in'] / stage['executor_s']:,.0f}" if stage["executor_s"] else "nan"


# the measures of a stage's row: (header, cell)
COLUMNS: list[tuple[str, Callable[[dict], str]]] = [
    ("rows in", lambda s: f"{s['rows_in']:,.0f}"),
    ("wall s", lambda s: f"{s['wall_s']:.1f}"),
    ("executor s", lambda s: f"{s['executor_s']:.1f}"),
    ("rows / executor s", _per_executor_second),
    ("stages", lambda s: f"{s['stages']:.0f}"),
    ("tasks", lambda s: f"{s['tasks']:.0f}"),
    ("input MB", lambda s: _mb(s["input_bytes"])),
    ("shuffle write MB", lambda s: _mb(s["shuffle_write_bytes"])),
    ("spill disk MB", lambda s: _mb(s["spilled_disk_bytes"])),
    ("files added (log)", lambda s: f"{s['files_added']} ({s['log_files_added']})"),
    ("MB added", lambda s: _mb(s["bytes_added"])),
    ("load at start", lambda s: ", ".join(f"{x:.1f}" for x in s["load_at_start"])),
]


def cells(stage: dict, columns: list[tuple[str, Callable[[dict], str]]] = COLUMNS) -> str:
    return " | ".join(cell(stage) for _, cell in columns)


def headers(columns: list[tuple[str, Callable[[dict], str]]]) -> tuple[str, str]:
    """A markdown table's header row and alignment row for ``columns`` (numbers, right-aligned)."""
    return " | ".join(h for h, _ in columns) + " |", " | ".join("---:" for _ in columns) + " |"


def markdown(info: dict) -> str:
    m = info["machine"]
    lines = [
        f"# Each stage of a night at {len(info['nights']) - 1} sizes, and materialization at "
        f"{len(info['materialization'])}",
        "",
        f"Command: `{info['command']}` (started {info['started']}, finished {info['finished']})  ",
        f"Machine: {m['platform']}, {m['cpu_count']} cores, {m['memory_gib']} GiB; Spark {m['spark']} "
        f"`{m['spark_master']}`, {m['shuffle_partitions']} shuffle partitions, driver memory {m['driver_memory']}",
        "",
        f"Each night: {info['days_per_interval']} days of synthetic flights (and their weather) landed on top of the "
        "previous nights. Executor s: the Spark tasks' run time summed over the cores. Files added: new files in the "
        "warehouse (Delta data and, in brackets, log files): each is a PUT on an object store.",
        "",
        "| night | events | stage | " + headers(COLUMNS)[0],
        "| --- | ---: | --- | " + headers(COLUMNS)[1],
    ]
    for n, night_ in enumerate(info["nights"]):
        label = "warm-up" if n == 0 else f"{night_['interval'][0]}..{night_['interval'][1]}"
        for stage, values in night_["stages"].items():
            failed = "" if values.get("passed", True) else " (suite failed: two passes)"
            lines.append(f"| {label} | {night_['events']:,} | {stage}{failed} | {cells(values)} |")
    lines += [
        "",
        "Materialization, full, into Redis (the online benchmark's 2 views, 5 doubles each, 19 rows per key):",
        "",
        "| rows in | keys per view | records written | " + headers(COLUMNS[1:])[0],
        "| ---: | ---: | ---: | " + headers(COLUMNS[1:])[1],
    ]
    for stage in info["materialization"]:
        lines.append(
            f"| {stage['rows_in']:,} | {stage['keys_per_view']:,} | {stage['records_written']:,} | "
            + cells(stage, COLUMNS[1:])
            + " |"
        )
    small, large = info["nights"][-2], info["nights"][-1]
    lines += [
        "",
        f"Growth between the two largest nights ({small['events']:,} and {large['events']:,} events; materialization: "
        "its two largest runs, per million rows in): what each further million costs, and the part of a night that "
        "does not grow (wall s at zero events, the line through both):",
        "",
        "| stage | executor s per M | wall s per M | fixed wall s | shuffle MB per M | MB added per M "
        "| files added per M |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    pairs = [
        (stage, small["stages"][stage], large["stages"][stage], small["events"], large["events"])
        for stage in large["stages"]
    ]
    a, b = info["materialization"][-2:]
    pairs.append(("materialization", a, b, a["rows_in"], b["rows_in"]))
    for stage, x, y, nx, ny in pairs:
        g = growth(x, y, nx, ny)
        lines.append(
            f"| {stage} | {g['executor_s']:.2f} | {g['wall_s']:.2f} | {g['fixed_wall_s']:.1f} | "
            f"{g['shuffle_write_bytes'] / 1e6:.1f} | {g['bytes_added'] / 1e6:.1f} | {g['files_added']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def growth(small: dict, large: dict, n_small: int, n_large: int) -> dict[str, float]:
    """Per million units more (events, rows): each measure's slope between two runs, and the wall seconds the line
    through them gives at zero (a run's fixed part)."""
    millions = (n_large - n_small) / 1e6
    keys = ("wall_s", "executor_s", "shuffle_write_bytes", "bytes_added", "files_added")
    slopes = {k: (large[k] - small[k]) / millions for k in keys}
    return {**slopes, "fixed_wall_s": small["wall_s"] - slopes["wall_s"] * n_small / 1e6}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(Path(sys.argv[1]))
