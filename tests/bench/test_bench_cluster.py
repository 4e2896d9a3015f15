"""Benchmark: the full-year backfill of a window view on local[2] (the embedded defaults, tables on the local disk)
and on the two-worker Spark cluster with every table on the S3 server (the topology `make up` starts in
FEATURELAKE_ENV=cluster), side by side. On this 2-core machine it shows what the cluster path costs, not a speed-up.

Each state is prepared once, as a team's would be: `featurelake ingest` and `featurelake dbt-build --select
staging` over the year (their times are reported). Then `featurelake --spark-ui backfill` of the view over the year
runs on both in turn, the order alternating per pair; each run's Spark event log says where its time went: the
driver's start before the application, waiting for the first executor, Spark jobs (their tasks' run, deserialize
and GC time summed), and the driver's own work between jobs (planning, Delta's log and commits, records).
Results: bench/results/cluster.{json,md}.

`pytest -m bench -s tests/bench/test_bench_cluster.py`; BENCH_CLUSTER_VIEW (default carrier_departure_delays),
BENCH_CLUSTER_PAIRS (default 2).
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

from tests.conftest import CODEGEN_ENV, isolated_env, run_cli
from tests.support.topology import Topology

pytestmark = pytest.mark.bench

VIEW = os.environ.get("BENCH_CLUSTER_VIEW", "carrier_departure_delays")
PAIRS = int(os.environ.get("BENCH_CLUSTER_PAIRS", "2"))
YEAR = ("2013-01-01", "2013-12-31")
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
COMMAND = ".venv/bin/python -m pytest -m bench -s tests/bench/test_bench_cluster.py"
TIMEOUT_S = 4 * 3600


def event_log_lines(path: Path) -> list[str]:
    """The events of a Spark event log: one file, or a rolling log's folder of ``events_<n>_<app>[.zstd]`` parts
    (Spark 4 compresses them with zstd by default)."""
    import zstandard

    parts = sorted(path.glob("events_*"), key=lambda p: int(p.name.split("_")[1])) if path.is_dir() else [path]
    text = ""
    for part in parts:
        raw = part.read_bytes()
        text += (
            zstandard.ZstdDecompressor().stream_reader(raw).read().decode() if part.suffix == ".zstd" else raw.decode()
        )
    return [line for line in text.splitlines() if line.strip()]


def event_log_breakdown(path: Path) -> dict[str, float | int]:
    """Where an application's time went, from its Spark event log (times in seconds)."""
    events = [json.loads(line) for line in event_log_lines(path)]
    kind = [(e["Event"], e) for e in events]
    start = next(e["Timestamp"] for k, e in kind if k == "SparkListenerApplicationStart")
    end = next(e["Timestamp"] for k, e in kind if k == "SparkListenerApplicationEnd")
    executors = [e["Timestamp"] for k, e in kind if k == "SparkListenerExecutorAdded" and e["Executor ID"] != "driver"]
    jobs: dict[int, list[int]] = {}
    for k, e in kind:
        if k == "SparkListenerJobStart":
            jobs[e["Job ID"]] = [e["Submission Time"], e["Submission Time"]]
        elif k == "SparkListenerJobEnd":
            jobs[e["Job ID"]][1] = e["Completion Time"]
    busy, reach = 0, start  # the union of the jobs' spans
    for a, b in sorted(jobs.values()):
        busy += max(0, b - max(a, reach))
        reach = max(reach, b)
    metrics = [e.get("Task Metrics") or {} for k, e in kind if k == "SparkListenerTaskEnd"]
    return {
        "application_s": (end - start) / 1000,
        "to_first_executor_s": (min(executors) - start) / 1000 if executors else 0.0,
        "executors": len(executors),
        "jobs": len(jobs),
        "in_jobs_s": busy / 1000,
        "driver_between_jobs_s": (end - start - busy) / 1000,
        "tasks": len(metrics),
        "task_run_s": sum(m.get("Executor Run Time", 0) for m in metrics) / 1000,
        "task_deserialize_s": sum(m.get("Executor Deserialize Time", 0) for m in metrics) / 1000,
        "task_gc_s": sum(m.get("JVM GC Time", 0) for m in metrics) / 1000,
    }


class BenchState:
    """A state folder with the year's raw and staging tables, and its backfill runs."""

    def __init__(self, label: str, env: dict[str, str]):
        self.label, self.env = label, {**env, "FEATURELAKE__SPARK__UI": "true"}  # event logs
        self.state = Path(env["FEATURELAKE__STATE_DIR"])
        self.prepare_s = {}
        for step in (["ingest"], ["dbt-build", "--select", "staging"]):
            started = time.monotonic()
            self.cli(*step, "--start", YEAR[0], "--end", YEAR[1])
            self.prepare_s[step[0]] = round(time.monotonic() - started, 1)

    def cli(self, *args: str) -> None:
        extra = {k: v for k, v in self.env.items() if k.startswith("FEATURELAKE") or k == "JAVA_TOOL_OPTIONS"}
        run_cli(self.state, *args, timeout=TIMEOUT_S, **extra)

    def backfill(self) -> dict:
        logs = self.state / "spark-events"
        before = set(logs.glob("*")) if logs.is_dir() else set()
        load = os.getloadavg()
        started = time.monotonic()
        self.cli("backfill", "--view", VIEW, "--start", YEAR[0], "--end", YEAR[1])
        wall = time.monotonic() - started
        (log,) = set(logs.glob("*")) - before
        spark = event_log_breakdown(log)
        return {"wall_s": round(wall, 1), "outside_application_s": round(wall - spark["application_s"], 1),
                **{k: round(v, 1) for k, v in spark.items()}, "load_at_start": load}  # fmt: skip


def test_bench_full_year_backfill_local_vs_cluster(tmp_path_factory):
    cluster = Topology(tmp_path_factory.mktemp("cluster"), jvm_options="")  # JVM defaults, as local[2] here
    try:
        cluster.up()
        states = [
            BenchState("local[2]", isolated_env(tmp_path_factory.mktemp("local"), **CODEGEN_ENV)),
            BenchState("cluster + S3", cluster.env),
        ]
        warm_up = [s.backfill() for s in states]
        pairs: list[dict] = []
        for i in range(PAIRS):
            runs = {s.label: s.backfill() for s in (states if i % 2 == 0 else states[::-1])}
            pairs.append({"runs": runs, "ratio": runs["cluster + S3"]["wall_s"] / runs["local[2]"]["wall_s"]})
            write_results(states, warm_up, pairs)  # each pair as it ends: a run cut short keeps what it measured
    finally:
        left = cluster.down()
    assert left == [] and len(pairs) == PAIRS


def write_results(states: list[BenchState], warm_up: list[dict], pairs: list[dict]) -> None:
    info = {
        "command": COMMAND,
        "view": VIEW,
        "interval": YEAR,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpu_count": os.cpu_count()},
        "prepare_s": {s.label: s.prepare_s for s in states},
        "warm_up": dict(zip([s.label for s in states], warm_up, strict=True)),
        "pairs": pairs,
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(info, indent=2) + "\n")
    columns = [k for k in warm_up[0] if k != "load_at_start"]
    lines = [
        f"# The full-year backfill of {VIEW}: local[2] vs the 2-worker cluster with tables on S3",
        "",
        f"Command: `{COMMAND}`  ",
        f"Machine: {info['machine']}; finished {info['finished']}",
        "",
        "Preparation (s, once per state): "
        + "; ".join(f"{s.label}: " + ", ".join(f"{k} {v:.0f}" for k, v in s.prepare_s.items()) for s in states),
        "",
        "| run | where | " + " | ".join(columns) + " | load at start |",
        "| --- | --- | " + " | ".join("---:" for _ in columns) + " | --- |",
    ]

    def row(label: str, where: str, run: dict) -> str:
        load = ", ".join(f"{x:.1f}" for x in run["load_at_start"])
        return f"| {label} | {where} | " + " | ".join(str(run[c]) for c in columns) + f" | {load} |"

    lines += [row("warm-up", s.label, run) for s, run in zip(states, warm_up, strict=True)]
    for n, pair in enumerate(pairs, 1):
        lines += [row(f"pair {n}", where, run) for where, run in pair["runs"].items()]
        lines.append(f"| pair {n} | ratio cluster / local | {pair['ratio']:.2f} |" + " |" * len(columns))
    lines += ["", f"Median ratio (cluster + S3 / local[2], wall): {info['median_ratio']:.2f}"]
    (RESULTS / "cluster.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
