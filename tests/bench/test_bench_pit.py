"""Benchmark: the point-in-time join against a lower bound on the same Spark, and its growth with entity rows.

Workload (issue 5): 1,000,000 entity rows; view A 100,000 users x 30 daily rows, view B 10,000 merchants x 120
rows (every 6 hours); 5 double features each; ttl 7 d and 2 d; created timestamps; output written as a Delta
table. The lower bound is a hash join of the latest row per key with no time condition, also written as a
table. Data is generated with Spark into Delta first; only join + write is timed. The run happens in a child
process with its own state folder and driver memory; results go to bench/results/pit.json and pit.md.

    .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_pit.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
COMMAND = ".venv/bin/python -m pytest -m bench -s tests/bench/test_bench_pit.py"
START = dt.datetime(2024, 1, 1)
DAYS = 30
SIZES = [250_000, 500_000, 1_000_000, 2_000_000, 4_000_000]
SHUFFLE_PARTITIONS = 8
FEATURES = [f"f{i}" for i in range(5)]


@pytest.mark.bench
def test_bench_pit(tmp_path):
    from tests.conftest import CODEGEN_ENV, isolated_env

    env = isolated_env(
        tmp_path / "state",
        **CODEGEN_ENV,
        **{
            "FEATURELAKE__SPARK__MASTER": "local[2]",
            "FEATURELAKE__SPARK__SHUFFLE_PARTITIONS": str(SHUFFLE_PARTITIONS),
            "FEATURELAKE__SPARK__CONF__SPARK.DRIVER.MEMORY": "8g",
            "FEATURELAKE__SPARK__CONF__SPARK.SQL.ADAPTIVE.ENABLED": "true",
        },
    )
    proc = subprocess.run([sys.executable, __file__], env=env, cwd=ROOT, timeout=3600, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads((RESULTS / "pit.json").read_text())
    print(json.dumps(result, indent=2))
    assert result["ratio_1m"] > 0


def generate(spark, n_entities: int, seed: int = 7):
    """Entity rows: uniform users/merchants and event times over the 30 days (Spark, no driver data)."""
    from pyspark.sql import functions as F

    span_s = DAYS * 86400
    start_s = int((START - dt.datetime(1970, 1, 1)).total_seconds())
    return spark.range(n_entities).select(
        (F.rand(seed) * 100_000).cast("long").alias("user_id"),
        (F.rand(seed + 1) * 10_000).cast("long").alias("merchant_id"),
        F.timestamp_seconds(F.lit(start_s) + (F.rand(seed + 2) * span_s).cast("long")).alias("event_timestamp"),
        (F.rand(seed + 3) > 0.5).cast("int").alias("label"),
    )


def feature_table(spark, n_keys: int, per_key: int, step_s: int, key: str):
    from pyspark.sql import functions as F

    start_s = int((START - dt.datetime(1970, 1, 1)).total_seconds())
    ts = F.timestamp_seconds(
        F.lit(start_s) + (F.col("id") % per_key) * step_s + (F.rand(11) * min(step_s, 3600)).cast("long")
    )
    return (
        spark.range(n_keys * per_key)
        .select((F.col("id") / per_key).cast("long").alias(key), ts.alias("event_timestamp"), F.col("id"))
        .select(
            key,
            "event_timestamp",
            (F.col("event_timestamp") + F.expr("INTERVAL 5 MINUTES")).alias("created_timestamp"),
            F.to_date("event_timestamp").alias("event_date"),
            *[F.rand(20 + i).alias(f) for i, f in enumerate(FEATURES)],
        )
    )


def lower_bound(spark, entities, a, b):
    """Latest row per key (no time condition) hash-joined to the entity rows."""
    from pyspark.sql import functions as F

    def latest(df, key):
        best = F.max_by(F.struct(*FEATURES), F.struct("event_timestamp", "created_timestamp"))
        return df.groupBy(key).agg(best.alias("s")).select(key, *[F.col("s").getField(f).alias(f) for f in FEATURES])

    la = latest(a, "user_id").toDF("user_id", *[f"a_{f}" for f in FEATURES])
    lb = latest(b, "merchant_id").toDF("merchant_id", *[f"b_{f}" for f in FEATURES])
    return entities.join(la, "user_id", "left").join(lb, "merchant_id", "left")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return round(time.perf_counter() - t0, 2)


def main() -> None:
    from featurelake.config import get_settings
    from featurelake.offline.pit import ViewInput, point_in_time_join
    from featurelake.spark import get_spark

    settings = get_settings()
    spark = get_spark(settings)

    def save(df, name):
        df.write.format("delta").mode("overwrite").saveAsTable(name)

    load_at_start = [round(x, 1) for x in os.getloadavg()]
    t0 = time.perf_counter()
    save(feature_table(spark, 100_000, 30, 86400, "user_id"), "features.bench_users")
    save(feature_table(spark, 10_000, 120, 6 * 3600, "merchant_id"), "features.bench_merchants")
    for n in SIZES:
        save(generate(spark, n), f"training.bench_entities_{n}")
    gen_s = round(time.perf_counter() - t0, 1)

    a, b = spark.table("features.bench_users"), spark.table("features.bench_merchants")
    views = [
        ViewInput(
            "users",
            a,
            ["user_id"],
            FEATURES,
            "event_timestamp",
            "created_timestamp",
            "event_date",
            dt.timedelta(days=7),
        ),
        ViewInput(
            "merchants",
            b,
            ["merchant_id"],
            FEATURES,
            "event_timestamp",
            "created_timestamp",
            "event_date",
            dt.timedelta(days=2),
        ),
    ]

    def ours(n):
        out = point_in_time_join(spark.table(f"training.bench_entities_{n}"), views, full_feature_names=True)
        save(out, "training.bench_pit_out")

    def bound(n):
        save(lower_bound(spark, spark.table(f"training.bench_entities_{n}"), a, b), "training.bench_lower_out")

    ours(250_000)  # warm-up: JIT, Delta log caches
    bound(250_000)
    pairs = []
    for _ in range(2):  # alternate to share the machine's noise fairly; keep the best of each
        pairs.append((timed(lambda: bound(1_000_000)), timed(lambda: ours(1_000_000))))
    lb_s, ours_s = min(p[0] for p in pairs), min(p[1] for p in pairs)
    growth = {n: (ours_s if n == 1_000_000 else timed(lambda n=n: ours(n))) for n in SIZES}
    rows_out = spark.table("training.bench_pit_out").count()

    result = {
        "workload": "1M entity rows; A 100k users x 30 daily rows, B 10k merchants x 120 rows; 5 doubles each; "
        "ttl 7d / 2d; created timestamps; output to Delta",
        "lower_bound_s_1m": lb_s,
        "pit_join_s_1m": ours_s,
        "ratio_1m": round(ours_s / lb_s, 3),
        "runs_1m": [{"lower_bound_s": p[0], "pit_join_s": p[1]} for p in pairs],
        "growth_s": {str(n): s for n, s in growth.items()},
        "growth_s_per_million": {str(n): round(s / n * 1e6, 2) for n, s in growth.items()},
        "rows_out_last": rows_out,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "load_average_start": load_at_start,
        "data_generation_s": gen_s,
        "spark": {
            "version": spark.version,
            "master": spark.sparkContext.master,
            "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
            "driver_memory": spark.conf.get("spark.driver.memory", "default"),
            "aqe": spark.conf.get("spark.sql.adaptive.enabled"),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        },
        "command": COMMAND,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pit.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Point-in-time join benchmark",
        "",
        f"Workload: {result['workload']}. Only join + write is timed (best of 2 alternating runs at 1M).",
        "",
        "| | seconds |",
        "| --- | --- |",
        f"| lower bound (latest row per key, hash join, no time condition) | {lb_s} |",
        f"| featurelake point-in-time join | {ours_s} |",
        f"| **ratio** (target <= 1.3) | **{result['ratio_1m']}** |",
        "",
        "Each alternating pair (lower bound s, join s, ratio): "
        + "; ".join(f"{p[0]}, {p[1]}, {round(p[1] / p[0], 2)}" for p in pairs)
        + f". Load average at the end: {result['load_average']}.",
        "",
        "Growth with entity rows (same feature tables):",
        "",
        "| entity rows | seconds | seconds per million |",
        "| --- | --- | --- |",
        *[f"| {n:,} | {s} | {result['growth_s_per_million'][str(n)]} |" for n, s in growth.items()],
        "",
        f"Machine: {result['machine']['cpus']} CPUs, {result['machine']['memory_gib']} GiB, "
        f"{result['machine']['platform']}; Spark {spark.version} {result['spark']['master']}, "
        f"{result['spark']['shuffle_partitions']} shuffle partitions, AQE {result['spark']['aqe']}, "
        f"driver memory {result['spark']['driver_memory']}. Measured {result['measured_at']}; load average at the "
        f"start {result['load_average_start']} (a value above the core count means other processes shared the CPU).",
        "",
        f"Command: `{COMMAND}`",
    ]
    (RESULTS / "pit.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
