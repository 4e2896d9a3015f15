"""Benchmark: `featurelake sql "select count(*) from raw.weather"` through the SQL endpoint (PyHive, no JVM in the
client) vs in a local Spark session (`--local`: a JVM per command), wall time of the whole command.

A temporary state folder with the demo week ingested, a Thrift server started by `featurelake serve sql` on a free
port and warmed by WARM_QUERIES queries (a server in use has compiled its code paths); then RUNS runs of each,
alternating (endpoint, local, endpoint, ...), after one unrecorded run of each (the OS file cache). Both must print
the same table. Where the endpoint's time goes is measured beside each endpoint run: the CLI's start (a new Python
importing the command line) and the query itself (connect, run, fetch: `services.thrift.query` in this process).
Results go to bench/results/sql_endpoint.json and sql_endpoint.md; target: endpoint p50 under 1 s.

    .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_sql_endpoint.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.test_bench_online import machine
from tests.conftest import isolated_env, metastore_database, run_cli
from tests.support.servers import free_port

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
COMMAND = ".venv/bin/python -m pytest -m bench -s tests/bench/test_bench_sql_endpoint.py"
QUERY = "select count(*) from raw.weather"
RUNS = 10
WARM_QUERIES = 5


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def test_bench_sql_endpoint(tmp_path, postgres):
    state = tmp_path / "state"
    postgres.ensure_database(metastore_database(state))
    port = str(free_port())
    env = {"FEATURELAKE__SERVICES__THRIFT__PORT": port}
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load = os.getloadavg()
    run_cli(state, "ingest", "--start", "2013-01-01", "--end", "2013-01-07", **env)
    run_cli(state, "serve", "sql", **env)
    from featurelake.config import load_settings
    from featurelake.services.thrift import query

    settings = load_settings(environ=isolated_env(state, **env))
    for _ in range(WARM_QUERIES):
        query(settings, QUERY, 1)
    try:
        times: dict[str, list[float]] = {"endpoint": [], "local": [], "cli_start": [], "query": []}
        outputs: dict[str, set[str]] = {"endpoint": set(), "local": set()}
        for i in range(RUNS + 1):
            for kind, flag in (("endpoint", "--endpoint"), ("local", "--local")):
                t0 = time.perf_counter()
                out = run_cli(state, "sql", flag, QUERY, **env).stdout
                if i:  # the first run of each is a warm-up
                    times[kind].append(time.perf_counter() - t0)
                outputs[kind].add(out)
            if i:
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", "import featurelake.cli"], check=True)
                times["cli_start"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                query(settings, QUERY, 1)
                times["query"].append(time.perf_counter() - t0)
    finally:
        run_cli(state, "serve", "sql", "--stop", check=False, **env)
        postgres.drop_database(metastore_database(state))
    assert len(outputs["endpoint"]) == 1 and outputs["endpoint"] == outputs["local"]
    summary = {
        kind: {"p50_s": round(statistics.median(t), 3), "p90_s": round(percentile(t, 0.9), 3), "runs_s": t}
        for kind, t in times.items()
    }
    result = {
        "command": COMMAND,
        "started": started,
        "query": QUERY,
        "runs_each": RUNS,
        "warm_queries": WARM_QUERIES,
        "result": outputs["local"].pop().strip().splitlines()[-2],
        "machine": {**machine(), "load_avg_at_start": load},
        **summary,
        "speedup_p50": round(summary["local"]["p50_s"] / summary["endpoint"]["p50_s"], 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sql_endpoint.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        "# SQL endpoint benchmark",
        "",
        f"Command: `{COMMAND}` (started {started})",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, load average at start {load}",
        "",
        f'Wall time of the whole `featurelake sql "{QUERY}"` command (the demo week: one table of 3 airports x 168 '
        f"hours), {RUNS} runs each, alternating, after one warm-up run each and {WARM_QUERIES} queries that warm the "
        "server. Endpoint: through the Spark Thrift "
        "server (`featurelake serve sql`) with PyHive, no JVM in the client; local: `--local`, a Spark session "
        "started by the command. Both printed the same table.",
        "A load average above the core count means other processes shared the CPU: timings are then upper bounds.",
        "",
        "| path | p50 | p90 | target |",
        "| --- | --- | --- | --- |",
        f"| endpoint | {summary['endpoint']['p50_s']:.2f} s | {summary['endpoint']['p90_s']:.2f} s | p50 < 1 s |",
        f"| local session | {summary['local']['p50_s']:.2f} s | {summary['local']['p90_s']:.2f} s | |",
        "",
        "Where the endpoint's time goes (measured beside each endpoint run):",
        "",
        "| part | p50 | p90 |",
        "| --- | --- | --- |",
        f"| CLI start (`python -c 'import featurelake.cli'`) | {summary['cli_start']['p50_s']:.2f} s "
        f"| {summary['cli_start']['p90_s']:.2f} s |",
        f"| query (connect, run, fetch, in process) | {summary['query']['p50_s']:.2f} s "
        f"| {summary['query']['p90_s']:.2f} s |",
        "",
        f"Endpoint p50 is {result['speedup_p50']}x faster.",
    ]
    (RESULTS / "sql_endpoint.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result, indent=2))
