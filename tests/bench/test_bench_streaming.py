"""Benchmark: event-to-online latency of a streaming window view, and the highest rate the engine sustains.

One `featurelake stream run` process (its own JVM, `local[2]` as in CI, a 1 s trigger, the SQLite online store)
reads a 2-partition topic of the module's Kafka broker. A producer here sends events at a fixed rate, phase after
phase (the rates BENCH_STREAMING_RATES, default 1,000 to 10,000 a second, BENCH_STREAMING_SECONDS each), each event
stamped with its send time as its event time (``dep_ts``); after a phase it waits until the stream's checkpoint has
committed every offset sent (the backlog drained).

Latency of an event = the time its value is readable online minus its send time. Readable: the batch record's
``online_at`` is taken after the online write returned, i.e. after the Spark job whose tasks committed the
store writes finished, so the value is readable by then (an upper bound). Which batch makes an event's value
readable follows the point-in-time rule the store serves: the feature row holding an event is stamped at the end of
its tile (events before a boundary count), and a row goes online in the first batch at or after the event's own
whose as-of time (recorded per batch) reaches that stamp. With the 1 s tile below, that waits under 1 s for the
tile to close; "engine latency" leaves that wait out (readable minus max(send time, tile end)).

A phase's lag is bounded when the latency does not grow over the phase (slope of latency over send time under
MAX_SLOPE, over at least MIN_BATCHES batches) and the backlog drained within DRAIN_S. Results:
bench/results/streaming.json and streaming.md, with a baseline: the engine of another checkout run first in the
same run (BENCH_STREAMING_BASELINE_SRC: its ``src`` directory, e.g. a worktree of the commit before the latency
work; BENCH_STREAMING_BASELINE_LABEL names it in the results), else the baseline the results already hold.

    .venv/bin/python -m pytest -m bench -s tests/bench/test_bench_streaming.py
    git worktree add .state/baseline <commit> && \
      BENCH_STREAMING_BASELINE_SRC=$PWD/.state/baseline/src .venv/bin/python -m pytest -m bench -s tests/bench/...
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.bench.test_bench_online import machine
from tests.conftest import CODEGEN_ENV, REPO_ROOT, isolated_env, metastore_database
from tests.integration.test_streaming import create_topic, kafka  # noqa: F401  (the module's broker)

pytestmark = pytest.mark.bench

RESULTS = REPO_ROOT / "bench" / "results"
COMMAND = ".venv/bin/python -m pytest -m bench -s tests/bench/test_bench_streaming.py"
PHASE_S = int(os.environ.get("BENCH_STREAMING_SECONDS", "30"))
PHASES = [(int(r), PHASE_S) for r in os.environ.get("BENCH_STREAMING_RATES", "1000,2000,5000,10000").split(",")]
WARMUP = (100, 10)
DRAIN_S = int(os.environ.get("BENCH_STREAMING_DRAIN_S", "240"))
MAX_SLOPE = 0.05
MIN_BATCHES = 5  # fewer batches in a phase tell nothing about a trend
ORIGINS = ["ATL", "BOS", "CLT", "DCA", "DEN", "DFW", "DTW", "EWR", "FLL", "IAD",
           "IAH", "JFK", "LAS", "LAX", "LGA", "MCO", "MIA", "ORD", "SEA", "SFO"]  # fmt: skip
TILE = dt.timedelta(seconds=1)
BASELINE_SRC = os.environ.get("BENCH_STREAMING_BASELINE_SRC")
# What the baseline is, for the results' heading (e.g. "the engine of commit 1c83144").
BASELINE_LABEL = os.environ.get("BENCH_STREAMING_BASELINE_LABEL", "the engine of BENCH_STREAMING_BASELINE_SRC")


def write_repo(root: Path, tag: str) -> None:
    (root / "repo").mkdir(parents=True)
    (root / "repo" / "defs.py").write_text(
        textwrap.dedent(
            f"""
            from featurelake.repo.definitions import Aggregation, Entity, FeatureView, StreamSource, WindowComputation

            origin = Entity(name="origin_airport", join_keys=["origin"])
            departures = StreamSource(
                name="bench_events_{tag}", topic="bench_{tag}", table="raw.bench_events_{tag}",
                timestamp_column="dep_ts", allowed_lateness="1m",
                fields={{"flight_id": "bigint", "origin": "string", "dep_delay": "double", "dep_ts": "timestamp"}},
            )
            recent_departures = FeatureView(
                name="bench_departures_{tag}", entities=[origin], source=departures, ttl="1h",
                computation=WindowComputation(tile="1s", aggregations=[
                    Aggregation(column="dep_delay", function="mean", windows=["1m", "5m"]),
                    Aggregation(column="flight_id", function="count", windows=["1m"], name="departures"),
                ]),
            )
            """
        )
    )


def send(bootstrap: str, topic: str, rate: int, seconds: int, first_id: int) -> int:
    """Events ``first_id``.. at ``rate`` a second for ``seconds``, each stamped with its send time; the next id."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    rng = random.Random(first_id)
    total, started = rate * seconds, time.monotonic()
    for i in range(total):
        origin = rng.choice(ORIGINS)
        value = {"flight_id": first_id + i, "origin": origin, "dep_delay": float(rng.randrange(-10, 90)),
                 "dep_ts": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
        producer.produce(topic, json.dumps(value).encode(), key=origin.encode())
        ahead = (i + 1) / rate - (time.monotonic() - started)
        if ahead > 0.005:
            producer.poll(0)
            time.sleep(ahead)
    assert producer.flush(60) == 0
    return first_id + total


def committed(checkpoint: Path, topic: str) -> int:
    """Offsets the stream's last committed batch reached, summed over the topic's partitions."""
    done = [int(p.name) for p in (checkpoint / "commits").glob("[0-9]*")]
    if not done:
        return 0
    offsets = (checkpoint / "offsets" / str(max(done))).read_text().splitlines()[-1]
    return sum(json.loads(offsets).get(topic, {}).values())


def wait_drained(checkpoint: Path, topic: str, sent: int, proc: subprocess.Popen, limit: float) -> float | None:
    """Seconds until every event sent was committed by the stream; None after ``limit`` seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        assert proc.poll() is None, "the stream process ended"
        if committed(checkpoint, topic) >= sent:
            return time.monotonic() - t0
        time.sleep(0.5)
    return None


def latencies(events, batches):
    """Per event: readable online (s after send) and the engine's part (after the tile closed), as numpy arrays."""
    import numpy as np

    b = batches.dropna(subset=["as_of"]).sort_values("batch_id")
    ids, as_of = b.batch_id.to_numpy(), b.as_of.astype("int64").to_numpy()
    online = b.online_at.astype("int64").to_numpy()
    sent = events.dep_ts.astype("int64").to_numpy()  # ns
    tile_ns = int(TILE.total_seconds() * 1e9)
    tile_end = sent - sent % tile_ns + tile_ns
    first = np.maximum(np.searchsorted(ids, events._batch_id.to_numpy()), np.searchsorted(as_of, tile_end))
    ok = first < len(ids)
    readable = online[np.minimum(first, len(ids) - 1)]
    total = np.where(ok, (readable - sent) / 1e9, np.nan)
    engine = np.where(ok, (readable - np.maximum(sent, tile_end)) / 1e9, np.nan)
    return total, engine


def phase_result(rate: int, seconds: int, events, batches, drained: float | None) -> dict:
    import numpy as np

    total, engine = latencies(events, batches)
    sent = (events.dep_ts.astype("int64").to_numpy() - events.dep_ts.astype("int64").min()) / 1e9
    seen = ~np.isnan(total)
    slope = float(np.polyfit(sent[seen], total[seen], 1)[0]) if seen.sum() > 10 else float("nan")
    mine = batches[batches.batch_id.isin(set(events._batch_id))]
    steps: dict[str, list[float]] = {}
    for record in mine.step_seconds.dropna():
        for step, secs in dict(record).items():
            steps.setdefault(step, []).append(secs)
    # A batch's whole cycle: from one batch's values online to the next one's (the steps above overlap).
    online_at = mine.sort_values("batch_id").online_at.dropna().astype("int64").to_numpy()
    if len(online_at) > 1:
        steps["cycle"] = list(np.diff(online_at) / 1e9)

    def q(a, p: float) -> float:
        return round(float(np.nanpercentile(a, p)), 2)

    return {
        "rate": rate,
        "seconds": seconds,
        "events": len(events),
        "online": int(seen.sum()),
        "p50_s": q(total, 50),
        "p99_s": q(total, 99),
        "max_s": q(total, 100),
        "engine_p50_s": q(engine, 50),
        "engine_p99_s": q(engine, 99),
        "slope": round(slope, 3),
        "drained_after_s": None if drained is None else round(drained, 1),
        "bounded": bool(drained is not None and slope < MAX_SLOPE and len(mine) >= MIN_BATCHES),
        "batches": len(mine),
        "events_per_batch": round(float(mine.events.mean()), 0),
        "step_median_s": {k: round(float(np.median(v)), 2) for k, v in steps.items()},
    }


def run_engine(kafka: str, spark, postgres, root: Path, pythonpath: str | None) -> tuple[list[dict], str, tuple]:  # noqa: F811
    """One `featurelake stream run` through the warm-up and the phases (its package from ``pythonpath`` when set):
    the phases' results, when it started, the load average then."""
    import pandas as pd

    state = root / "state"
    postgres.ensure_database(metastore_database(state))
    tag = uuid.uuid4().hex[:8]
    write_repo(root, tag)
    topic, source = f"bench_{tag}", f"bench_events_{tag}"
    create_topic(kafka, topic, 2)
    load = os.getloadavg()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    env = {**CODEGEN_ENV, "FEATURELAKE__STREAMING__BOOTSTRAP_SERVERS": kafka, "FEATURELAKE__STREAMING__TRIGGER_S": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    checkpoint = state / "warehouse" / "_streams" / source
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "featurelake"), "stream", "run", "--repo", str(root / "repo")],
        env=isolated_env(state, **env),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "stream.log", "w"),  # noqa: SIM115  (closed with the process)
        start_new_session=True,
    )
    spans: list[tuple[int, int, int, int, float | None]] = []  # rate, seconds, first id, end id, drained after
    try:
        next_id = send(kafka, topic, *WARMUP, 0)
        assert wait_drained(checkpoint, topic, next_id, proc, 900) is not None, "warm-up not processed"
        for rate, seconds in PHASES:
            first, next_id = next_id, send(kafka, topic, rate, seconds, next_id)
            drained = wait_drained(checkpoint, topic, next_id, proc, DRAIN_S)
            spans.append((rate, seconds, first, next_id, drained))
            if drained is None:  # the backlog did not clear: higher rates only pile on
                break
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(180)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def table(name: str):
        database, _, table_name = name.partition(".")
        return spark.read.format("delta").load(str(state / "warehouse" / f"{database}.db" / table_name))

    try:
        events = table(f"raw.bench_events_{tag}").select("flight_id", "dep_ts", "_batch_id").toPandas()
        batches = table("monitoring.stream_batches").where(f"source = '{source}'").toPandas()
    finally:
        postgres.drop_database(metastore_database(state))
    for col in ("dep_ts",):
        events[col] = pd.to_datetime(events[col], utc=True)
    for col in ("as_of", "online_at"):
        batches[col] = pd.to_datetime(batches[col], utc=True)
    # A batch the stop interrupted (after a phase that did not drain) may have appended its events unrecorded.
    events = events[events._batch_id.isin(set(batches.batch_id))]
    assert events.flight_id.is_unique and len(events) == batches.events.sum()
    phases = []
    for rate, seconds, first, end, drained in spans:
        mine = events[(events.flight_id >= first) & (events.flight_id < end)]
        if drained is not None:
            assert len(mine) == end - first, f"{rate}/s: {len(mine)} of {end - first} events landed"
        phases.append(phase_result(rate, seconds, mine, batches, drained))
    return phases, started, load


def test_bench_streaming(kafka, postgres, spark, tmp_path):  # noqa: F811
    """The current engine; with BENCH_STREAMING_BASELINE_SRC (another checkout's ``src``, e.g. of the commit before
    the latency work) that engine first, in the same run: the baseline kept in the results."""
    baseline = None
    if BASELINE_SRC:
        phases, started, load = run_engine(kafka, spark, postgres, tmp_path / "baseline", BASELINE_SRC)
        baseline = {"command": COMMAND, "started": started, "machine": {**machine(), "load_avg_at_start": load},
                    "engine": BASELINE_SRC, "label": BASELINE_LABEL, "phases": phases}  # fmt: skip
    phases, started, load = run_engine(kafka, spark, postgres, tmp_path / "now", None)
    write_results(phases, started, load, baseline)


def write_results(phases: list[dict], started: str, load: tuple[float, ...], baseline: dict | None = None) -> None:
    path = RESULTS / "streaming.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    run = {"command": COMMAND, "started": started, "machine": {**machine(), "load_avg_at_start": load},
           "phases": phases}  # fmt: skip
    result = {**run, "baseline": baseline or previous.get("baseline", run)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")

    def table(r: dict) -> list[str]:
        out = ["| events/s | events | p50 | p99 | max | engine p50 | engine p99 | lag slope | drained after | "
               "bounded | batches | events/batch |", "| " + " | ".join(["---"] * 12) + " |"]  # fmt: skip
        for p in r["phases"]:
            drained = "-" if p["drained_after_s"] is None else f"{p['drained_after_s']} s"
            out.append(f"| {p['rate']:,} | {p['events']:,} | {p['p50_s']} s | {p['p99_s']} s | {p['max_s']} s | "
                       f"{p['engine_p50_s']} s | {p['engine_p99_s']} s | {p['slope']} | {drained} | "
                       f"{'yes' if p['bounded'] else 'no'} | {p['batches']} | {p['events_per_batch']:.0f} |")  # fmt: skip  # noqa: E501
        steps = list(dict.fromkeys(s for p in r["phases"] for s in p["step_median_s"]))
        if not steps:
            return [*out, "", "No batch recorded."]
        out += ["", "Median seconds per step of a batch (`cycle`: from one batch's values online to the next's):", ""]
        names = [s.rpartition(": ")[2] for s in steps]  # a view's steps without the view's name
        out += ["| events/s | " + " | ".join(names) + " |", "| " + " | ".join(["---"] * (len(steps) + 1)) + " |"]
        for p in r["phases"]:
            out.append(f"| {p['rate']:,} | " + " | ".join(str(p["step_median_s"].get(s, "-")) for s in steps) + " |")
        bounded = [p["rate"] for p in r["phases"] if p["bounded"]]
        out += ["", f"Highest sustained rate tested: {max(bounded):,} events/s" if bounded else
                "No rate tested was sustained."]  # fmt: skip
        return out

    m = run["machine"]
    lines = [
        "# Streaming benchmark: event to online",
        "",
        f"Command: `{COMMAND}` (started {started})",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, load average at start {load}",
        "",
        "One `featurelake stream run` process (local[2], 1 s trigger, SQLite online store) on a 2-partition topic; "
        "a view of 20 keys, 1 s tiles, windows 1m/5m (mean, count). Each phase sends at a fixed rate for "
        f"{PHASES[0][1]} s, events stamped with their send time, then waits until the stream committed them all. "
        "Latency = when the event's value is readable online (the batch's `online_at`, after the store writes "
        "finished; the first batch whose as-of time reaches the event's tile end) minus its send time; engine "
        "latency leaves out the wait for the 1 s tile to close. Bounded: latency does not grow over the phase "
        f"(slope < {MAX_SLOPE}, at least {MIN_BATCHES} batches) and the backlog drained. Target: p99 < 5 s at 1,000 "
        "events/s.",
        "A load average above the core count means other processes shared the CPU: timings are then upper bounds.",
        "",
        "## Now",
        "",
        *table(run),
    ]
    if result["baseline"] is not run:
        b = result["baseline"]
        label = b.get("label", "the engine before the latency work")
        lines += ["", f"## Baseline ({label}, started {b['started']}, load average "
                  f"{b['machine']['load_avg_at_start']})", "", *table(b)]  # fmt: skip
    (RESULTS / "streaming.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
