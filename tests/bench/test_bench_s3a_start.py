"""Benchmark: what S3A on the classpath (hadoop-aws and its AWS SDK v2 modules in spark.jars) costs a local session's
start: wall time of `featurelake sql --local "select 1"` (a new driver JVM, Delta, the metastore's first connection)
with every JAR of spark.jars_dir vs the same folder without the S3A ones (symlinks to the rest).

RUNS runs of each, alternating, after one unrecorded run of each (the OS file cache). Results go to
bench/results/s3a_start.json and s3a_start.md.

    .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_s3a_start.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path

import pytest

from tests.bench.test_bench_online import machine
from tests.conftest import metastore_database, run_cli

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
COMMAND = ".venv/bin/python -m pytest -m bench -s tests/bench/test_bench_s3a_start.py"
RUNS = 6
# hadoop-aws, the AWS SDK v2 modules (all of the BOM's version) and what only they need (conf/jars.pom.xml).
S3A_PREFIXES = ("hadoop-aws-", "analyticsaccelerator-s3-", "wildfly-openssl-", "reactive-streams-")
SDK_VERSION = "-2.57.8.jar"


def is_s3a_jar(path: Path) -> bool:
    return path.name.startswith(S3A_PREFIXES) or path.name.endswith(SDK_VERSION)


def test_bench_s3a_start(tmp_path, postgres):
    jars = ROOT / ".state" / "jars"
    s3a = [p for p in jars.glob("*.jar") if is_s3a_jar(p)]
    assert any(p.name.startswith("hadoop-aws-") for p in s3a), "run `make setup`: no hadoop-aws in .state/jars"
    without = tmp_path / "jars-without-s3a"
    without.mkdir()
    for jar in jars.glob("*.jar"):
        if not is_s3a_jar(jar):
            (without / jar.name).symlink_to(jar)
    state = tmp_path / "state"
    postgres.ensure_database(metastore_database(state))
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load = os.getloadavg()
    variants = {"with_s3a": str(jars), "without_s3a": str(without)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for i in range(RUNS + 1):
            for name, jars_dir in variants.items():
                t0 = time.perf_counter()
                run_cli(state, "sql", "--local", "select 1", FEATURELAKE__SPARK__JARS_DIR=jars_dir)
                if i:  # the first run of each is a warm-up
                    times[name].append(time.perf_counter() - t0)
    finally:
        postgres.drop_database(metastore_database(state))
    summary = {name: {"p50_s": round(statistics.median(t), 2), "runs_s": [round(x, 2) for x in t]}
               for name, t in times.items()}  # fmt: skip
    cost = round(summary["with_s3a"]["p50_s"] - summary["without_s3a"]["p50_s"], 2)
    result = {
        "command": COMMAND,
        "started": started,
        "runs_each": RUNS,
        "s3a_jars": len(s3a),
        "s3a_jars_mib": round(sum(p.stat().st_size for p in s3a) / 2**20, 1),
        "machine": {**machine(), "load_avg_at_start": load},
        **summary,
        "cost_p50_s": cost,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "s3a_start.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "s3a_start.md").write_text(markdown(result))


def markdown(result: dict) -> str:
    """The result as bench/results/s3a_start.md (from the JSON the run wrote)."""
    m, load = result["machine"], result["machine"]["load_avg_at_start"]
    with_s3a, without = result["with_s3a"]["runs_s"], result["without_s3a"]["runs_s"]
    paired = [round(a - b, 1) for a, b in zip(with_s3a, without, strict=True)]
    lines = [
        "# S3A on the classpath: a local session's start",
        "",
        f"Command: `{result['command']}` (started {result['started']})",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, load average at start {load}",
        "",
        f'Wall time of `featurelake sql --local "select 1"` (a new driver JVM with Delta and the metastore), '
        f"{result['runs_each']} runs each, alternating, after one warm-up run each: with every JAR of .state/jars, "
        f"and without the {result['s3a_jars']} S3A JARs ({result['s3a_jars_mib']} MiB: hadoop-aws and its AWS SDK "
        "v2 modules).",
        "A load average above the core count means other processes shared the CPU: timings are then upper bounds.",
        "",
        "| classpath | p50 | runs |",
        "| --- | --- | --- |",
        *(
            f"| {name.replace('_', ' ')} | {result[name]['p50_s']:.2f} s | "
            f"{', '.join(f'{x:.1f}' for x in result[name]['runs_s'])} |"
            for name in ("with_s3a", "without_s3a")
        ),
        "",
        f"Difference of the p50s: {result['cost_p50_s']:+.2f} s; per alternating pair (with - without): "
        f"{', '.join(f'{d:+.1f}' for d in paired)} s. The pairs' spread is the load's, not the class path's: no "
        "start cost of the S3A JARs is visible at this noise level (the JARs are only opened when a class in them "
        "is loaded, i.e. on the first s3a:// path).",
    ]
    return "\n".join(lines) + "\n"
