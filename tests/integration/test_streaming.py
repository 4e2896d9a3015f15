"""Streaming window views end to end with a real Kafka broker: events produced to a topic, ``start_stream`` run over
them (available-now triggers: every event there, then stop; a second run continues from the checkpoint), and the
results compared with values computed independently: the feature rows with a brute-force pandas computation of the
windows from the events sent, the tiles and rows with the batch engine over the stream's events table, the online
values with the feature table's latest row at the materialization time; refused and late events in the dead-letter
table with their reasons."""

from __future__ import annotations

import datetime as dt
import json
import random
import textwrap
import uuid

import pandas as pd
import pytest

from tests.conftest import isolated_env
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

UTC = dt.UTC
ORIGINS = ["EWR", "JFK", "LGA"]
WINDOWS = {"30m": dt.timedelta(minutes=30), "1h": dt.timedelta(hours=1)}
LATENESS = dt.timedelta(minutes=20)


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    """The module's own Kafka broker on free ports; stopped by its pid at the end."""
    from featurelake.config import load_settings
    from featurelake.services.kafka import kafka_server

    state = tmp_path_factory.mktemp("kafka-state")
    settings = load_settings(
        environ=isolated_env(
            state,
            FEATURELAKE__SERVICES__KAFKA__PORT=str(free_port()),
            FEATURELAKE__SERVICES__KAFKA__CONTROLLER_PORT=str(free_port()),
            FEATURELAKE__SERVICES__KAFKA__DATA_DIR=str(state / "kafka-data"),
        )
    )
    server = kafka_server(settings)
    server.start(settings)
    yield server.bootstrap_servers
    server.stop(settings)


def write_repo(root, tag: str):
    """A feature repository with a stream source on the topic ``departures_<tag>`` and a window view over it."""
    from featurelake.repo import load_repo

    (root / "features").mkdir()
    (root / "features" / "defs.py").write_text(
        textwrap.dedent(
            f"""
            from featurelake.repo.definitions import Aggregation, Entity, FeatureView, StreamSource, WindowComputation

            origin = Entity(name="origin_airport", join_keys=["origin"])
            departures = StreamSource(
                name="departure_events_{tag}", topic="departures_{tag}", table="raw.departure_events_{tag}",
                timestamp_column="dep_ts", allowed_lateness="{int(LATENESS.total_seconds() // 60)}m",
                fields={{"flight_id": "bigint", "origin": "string", "dep_delay": "double", "dep_ts": "timestamp"}},
            )
            recent_departures = FeatureView(
                name="recent_departures_{tag}", entities=[origin], source=departures, ttl="1h",
                computation=WindowComputation(tile="5m", aggregations=[
                    Aggregation(column="dep_delay", function="mean", windows=["30m", "1h"]),
                    Aggregation(column="flight_id", function="count", windows=["30m"], name="departures"),
                ]),
            )
            """
        )
    )
    repo = load_repo(root / "features")
    return repo, repo.view(f"recent_departures_{tag}")


@pytest.fixture(scope="module")
def stream_setup(kafka, settings, tmp_path_factory):
    """The repository of ``write_repo``; settings whose streaming reads the module's broker and whose online store
    is a SQLite file of the module's."""
    from featurelake.config import OnlineStoreSettings, StreamingSettings

    root = tmp_path_factory.mktemp("stream-repo")
    repo, view = write_repo(root, uuid.uuid4().hex[:8])
    stream_settings = settings.model_copy(
        update={
            "streaming": StreamingSettings(bootstrap_servers=kafka, max_events_per_batch=250),
            "online_store": OnlineStoreSettings(type="sqlite", sqlite_path=str(root / "online.db")),
        }
    )
    return stream_settings, repo, view


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the topic exists
    (future,) = admin.create_topics([NewTopic(topic, partitions, 1)]).values()
    future.result(30)


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0


def event(i: int, origin: str, delay: float | None, ts: dt.datetime) -> dict:
    return {"flight_id": i, "origin": origin, "dep_delay": delay, "dep_ts": ts.isoformat()}


def run_available(spark, settings, repo) -> None:
    from featurelake.streaming.engine import start_stream, stream_plans

    (plan,) = stream_plans(repo, None)
    query = start_stream(spark, settings, repo, plan, available_now=True)
    # a progress deadline, not a timing check: on a loaded machine a batch takes minutes, and a query still running
    # at the deadline would leave the tables half-written for the assertions that follow
    finished = query.awaitTermination(1800)
    if not finished:
        query.stop()
    assert finished, "the available-now query had not consumed the topic after 30 minutes"
    assert query.exception() is None, query.exception()


def brute_force(events: pd.DataFrame, boundaries: pd.DataFrame) -> pd.DataFrame:
    """The windows at each (origin, boundary) straight from the definition: events with b - w <= ts < b."""
    out = []
    for origin, b in boundaries.itertuples(index=False):
        mine = events[events.origin == origin]
        row = {"origin": origin, "event_timestamp": b}
        for name, width in WINDOWS.items():
            inside = mine[(mine.dep_ts >= b - width) & (mine.dep_ts < b)]
            delays = inside.dep_delay.dropna()
            row[f"dep_delay_mean_{name}"] = delays.mean() if len(delays) else None
            if name == "30m":
                row["departures_30m"] = int(inside.flight_id.notna().sum())
        out.append(row)
    return pd.DataFrame(out)


def test_stream_rows_equal_the_brute_force_and_the_batch_engine_and_refuse_bad_and_late_events(
    spark, stream_setup, kafka
):
    from pyspark.sql import functions as F

    from featurelake.compute.aggregations import WindowPlan, rollup, tile_partials
    from featurelake.compute.windows import tiles_table
    from featurelake.online.backends import open_store
    from featurelake.online.store import StoreConfig
    from featurelake.streaming.engine import DEAD_LETTERS

    settings, repo, view = stream_setup
    source = view.source
    create_topic(kafka, source.topic, 1)  # one partition: the watermark is the newest event time before a batch
    rng = random.Random(21)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    # Three hours of departures in time order, each up to 5 minutes out of order (within the allowed lateness).
    start = now - dt.timedelta(hours=3)
    first = [
        event(
            i,
            rng.choice(ORIGINS),
            rng.choice([None, *range(-10, 90)]),
            start + dt.timedelta(seconds=i * 15 - rng.randrange(300)),
        )
        for i in range(600)
    ]
    late_enough = (start + dt.timedelta(hours=2)).isoformat()
    bad = [b"not json", json.dumps({"flight_id": "x1", "origin": "EWR", "dep_ts": late_enough}).encode(),
           json.dumps({"flight_id": 7, "dep_ts": late_enough}).encode()]  # fmt: skip
    produce(kafka, source.topic, [json.dumps(e).encode() for e in first] + bad)
    run_available(spark, settings, repo)

    newest = max(dt.datetime.fromisoformat(e["dep_ts"]) for e in first)
    second = [
        event(
            1000 + i,
            rng.choice(ORIGINS),
            float(rng.randrange(0, 60)),
            now - dt.timedelta(seconds=rng.randrange(0, 600)),
        )
        for i in range(150)
    ]
    too_late = event(5000, "JFK", 12.0, newest - LATENESS - dt.timedelta(minutes=1))
    in_time = event(5001, "JFK", 14.0, newest - LATENESS + dt.timedelta(minutes=1))
    produce(kafka, source.topic, [json.dumps(e).encode() for e in [*second, too_late, in_time]])
    run_available(spark, settings, repo)  # continues from the checkpoint

    # Every accepted event landed once; the refused and the late one are dead letters with their reasons.
    accepted = [*first, *second, in_time]
    landed = spark.table(source.table).select("flight_id").toPandas()
    assert sorted(landed.flight_id) == sorted(e["flight_id"] for e in accepted)
    dead = spark.table(DEAD_LETTERS).where(F.col("source") == source.name).toPandas()
    reasons = sorted(dead.reason)
    assert len(reasons) == 4, reasons
    assert reasons[0] == "field flight_id: x1 is not a bigint"
    assert reasons[1].startswith("late: before the watermark")
    assert reasons[2:] == ["no origin", "not a JSON object"]
    assert json.loads(dead[dead.reason.str.startswith("late")].value.iloc[0])["flight_id"] == 5000

    # The feature rows equal the windows computed from the events sent, by brute force...
    keys = ["origin"]
    table = spark.table(view.offline_table).toPandas()
    events = pd.DataFrame(accepted)
    events["dep_ts"] = pd.to_datetime(events.dep_ts, utc=True)
    expected = brute_force(events, table[["origin", "event_timestamp"]].assign(
        event_timestamp=pd.to_datetime(table.event_timestamp, utc=True)))  # fmt: skip
    got = table.assign(event_timestamp=pd.to_datetime(table.event_timestamp, utc=True))
    merged = got.merge(expected, on=["origin", "event_timestamp"], suffixes=("", "_ref"))
    assert len(merged) == len(got) == len(expected) > 0
    for feature in ["dep_delay_mean_30m", "dep_delay_mean_1h", "departures_30m"]:
        a, b = merged[feature].astype(float), merged[f"{feature}_ref"].astype(float)
        assert ((a - b).abs() < 1e-9).where(a.notna() & b.notna(), a.isna() == b.isna()).all(), feature
    # ...every boundary where a window changes is there (a tile end of each origin's events, and each expiry)...
    tile = dt.timedelta(minutes=5)
    grid = set()
    for e in events.itertuples():
        end = e.dep_ts.floor("5min") + tile
        grid |= {(e.origin, end), *((e.origin, end + w) for w in WINDOWS.values())}
    assert set(zip(got.origin, got.event_timestamp, strict=True)) == grid
    # ...and the tiles and rows equal the batch engine's over the stream's events table.
    plan = WindowPlan.from_view(view, keys)
    batch_tiles = tile_partials(spark.table(source.table), plan=plan)
    stream_tiles = spark.table(tiles_table(view))
    assert batch_tiles.exceptAll(stream_tiles).count() == 0 and stream_tiles.exceptAll(batch_tiles).count() == 0
    batch_rows = rollup(batch_tiles, plan=plan)
    stream_rows = spark.table(view.offline_table).select(*batch_rows.columns)
    assert batch_rows.exceptAll(stream_rows).count() == 0 and stream_rows.exceptAll(batch_rows).count() == 0

    # Online: each origin's latest row at the last materialization's time.
    with open_store(StoreConfig.from_settings(settings)) as store:
        as_of = pd.Timestamp(store.get_watermark(view.online_namespace).as_of)
        entries = store.read_entries(
            [(view.online_namespace, [json.dumps([o], separators=(",", ":")) for o in ORIGINS])]
        )[0]
    for origin, entry in zip(ORIGINS, entries, strict=True):
        mine = got[(got.origin == origin) & (got.event_timestamp <= as_of)]
        latest = mine.loc[mine.event_timestamp.idxmax()]
        assert entry is not None and entry.ts == int(latest.event_timestamp.timestamp() * 1_000_000)
        # the values rolled up in the stream's memory are the feature table's, bit for bit
        features = ["dep_delay_mean_30m", "dep_delay_mean_1h", "departures_30m"]
        assert json.loads(entry.payload) == {f: latest[f] for f in features if pd.notna(latest[f])}


def test_stream_run_killed_and_restarted_counts_every_event_once(kafka, postgres, spark, tmp_path):
    """`featurelake stream run` as its own process, killed with SIGKILL (with its JVM) while it works through the
    topic (three partitions, read unevenly: the watermark waits for the slowest), then run again until idle: every
    event is in the events table once, each batch recorded once, and the feature rows equal the brute force over
    the events sent."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.conftest import REPO_ROOT, metastore_database, run_cli

    state = tmp_path / "state"
    state.mkdir()
    postgres.ensure_database(metastore_database(state))
    tag = uuid.uuid4().hex[:8]
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    _, view = write_repo(repo_dir, tag)
    rng = random.Random(7)
    start = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    sent = [event(i, rng.choice(ORIGINS), float(rng.randrange(-5, 60)), start + dt.timedelta(seconds=2 * i))
            for i in range(3000)]  # fmt: skip
    create_topic(kafka, view.source.topic, 3)
    produce(kafka, view.source.topic, [json.dumps(e).encode() for e in sent[:2500]])
    env = {
        "FEATURELAKE__STREAMING__BOOTSTRAP_SERVERS": kafka,
        "FEATURELAKE__STREAMING__MAX_EVENTS_PER_BATCH": "500",
        "FEATURELAKE__STREAMING__TABLES_EVERY_S": "3600",
    }  # killed with batches not merged into the tables yet
    args = ["stream", "run", "--repo", str(repo_dir / "features")]
    commits = Path(state / "warehouse" / "_streams" / f"departure_events_{tag}" / "commits")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "featurelake"), *args],
        env=isolated_env(state, **env),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 900  # the first batch alone took 3.5 min at a load average of 27
        while len(list(commits.glob("[0-9]*"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert proc.poll() is None and len(list(commits.glob("[0-9]*"))) >= 2
        time.sleep(rng.uniform(1, 4))  # somewhere in a later batch
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    produce(kafka, view.source.topic, [json.dumps(e).encode() for e in sent[2500:]])
    run_cli(state, *args, "--until-idle", **env)

    def table(name: str):  # the process's tables, read by path here (its catalog is another metastore database)
        database, _, table_name = name.partition(".")
        return spark.read.format("delta").load(str(state / "warehouse" / f"{database}.db" / table_name))

    landed = table(f"raw.departure_events_{tag}").select("flight_id").toPandas()
    assert sorted(landed.flight_id) == list(range(3000))
    batches = table("monitoring.stream_batches").where(f"source = 'departure_events_{tag}'").toPandas()
    assert len(batches) == batches.batch_id.nunique() >= 6 and batches.events.sum() == 3000
    rows = table(view.offline_table).toPandas()
    rows["event_timestamp"] = pd.to_datetime(rows.event_timestamp, utc=True)
    events = pd.DataFrame(sent).assign(dep_ts=lambda d: pd.to_datetime(d.dep_ts, utc=True))
    expected = brute_force(events, rows[["origin", "event_timestamp"]])
    merged = rows.merge(expected, on=["origin", "event_timestamp"], suffixes=("", "_ref"))
    assert len(merged) == len(rows) == len(expected)
    assert (merged.departures_30m == merged.departures_30m_ref).all()
    assert ((merged.dep_delay_mean_1h - merged.dep_delay_mean_1h_ref).abs().fillna(0) < 1e-9).all()


def test_a_runs_first_batch_is_appended_once_whether_or_not_a_killed_run_wrote_it(spark):
    """Spark replays the last batch a killed run did not commit as the next run's first: it lands once whether the
    killed run appended it or not; the batches after it are new."""
    from pyspark.sql import functions as F

    from featurelake.streaming.engine import StreamState, _append_once

    spark.sql("CREATE DATABASE IF NOT EXISTS monitoring")
    table = f"monitoring.replays_{uuid.uuid4().hex[:8]}"

    def append(state: StreamState, n: int) -> None:
        rows = spark.createDataFrame([(n, i) for i in range(3)], "_batch_id bigint, v int")
        _append_once(state, rows, table, F.col("_batch_id") == n, n, None)

    killed = StreamState(first_batch=0)
    append(killed, 0)
    append(killed, 1)  # appended, then killed before Spark committed batch 1
    replayed = StreamState(first_batch=1)
    append(replayed, 1)
    append(replayed, 2)  # appended, killed before it committed: the next run replays it
    append(StreamState(first_batch=3), 3)  # killed before appending batch 3: the next run appends it
    counts = {r[0]: r[1] for r in spark.table(table).groupBy("_batch_id").count().collect()}
    assert counts == {0: 3, 1: 3, 2: 3, 3: 3}
    append(StreamState(first_batch=2), 2)
    assert spark.table(table).count() == 12
    spark.sql(f"DROP TABLE {table}")


def test_the_stream_checkpoints_the_tables_it_appends_to_off_the_batches_path(spark):
    """A run's appends set the table's checkpoint interval far out (no checkpoint in the commit of the 10th version,
    where Delta's default writes one) and checkpoint every CHECKPOINT_EVERY commits in a thread of their own; the
    table reads the same from its checkpoint."""
    import time
    from pathlib import Path

    from pyspark.sql import functions as F

    from featurelake.streaming.engine import CHECKPOINT_EVERY, StreamState, _append_once

    spark.sql("CREATE DATABASE IF NOT EXISTS monitoring")
    table = f"monitoring.checkpoints_{uuid.uuid4().hex[:8]}"
    state = StreamState(first_batch=0)
    for n in range(CHECKPOINT_EVERY + 1):  # created by name (version 0), interval set (1), then 20 appends (2-21)
        rows = spark.createDataFrame([(n, i) for i in range(2)], "_batch_id bigint, v int")
        _append_once(state, rows, table, F.col("_batch_id") == n, n, None)
    log_dir = Path(state.locations[table].removeprefix("file:")) / "_delta_log"
    deadline = time.monotonic() + 300  # a progress deadline for the checkpoint's thread, not a timing check
    while not list(log_dir.glob("*.checkpoint.parquet")) and time.monotonic() < deadline:
        time.sleep(0.5)
    versions = sorted(int(f.name.split(".")[0]) for f in log_dir.glob("*.checkpoint.parquet"))
    assert versions == [CHECKPOINT_EVERY + 1]
    detail = spark.sql(f"DESCRIBE DETAIL {table}").first()
    assert detail["properties"]["delta.checkpointInterval"] == "1000"
    for json_file in log_dir.glob("*.json"):  # the table's state from the checkpoint alone
        if int(json_file.name.split(".")[0]) < CHECKPOINT_EVERY + 1:  # the commits before it
            json_file.unlink()
    spark.sparkContext._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    counts = spark.read.format("delta").load(state.locations[table]).groupBy("_batch_id").count().collect()
    assert {r[0]: r[1] for r in counts} == {n: 2 for n in range(CHECKPOINT_EVERY + 1)}
    spark.sql(f"DROP TABLE {table}")


def test_status_shows_each_streaming_views_lag_from_the_batch_records(spark, cli, tmp_path):
    """Batch records written by hand: the lag is the last batch with events' newest event to its online time, the
    idle time runs from the last batch (events or not), both at the as-of time."""
    from featurelake.streaming.engine import BATCH_SCHEMA, BATCHES
    from featurelake.streaming.lag import view_lags

    tag = uuid.uuid4().hex[:8]
    repo, view = write_repo(tmp_path, tag)
    t = dt.datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    s = dt.timedelta(seconds=1)
    records = [  # source, batch, events, refused, late, newest event, oldest event, online at, per partition, as of
        (f"departure_events_{tag}", 0, 10, 0, 1, t, t - 60 * s, t + 4 * s, {0: t}, t + 3 * s),
        (f"departure_events_{tag}", 1, 5, 1, 0, t + 9 * s, t + 5 * s, t + 12.5 * s, {0: t + 9 * s}, t + 11 * s),
        (f"departure_events_{tag}", 2, 0, 2, 0, None, None, t + 20 * s, {}, t + 19 * s),
    ]
    records = [(*r, {"parse": 0.5}) for r in records]  # seconds per step: not part of the lag
    spark.createDataFrame(records, BATCH_SCHEMA).write.format("delta").mode("append").saveAsTable(BATCHES)
    naive = t.replace(tzinfo=None)

    def lag_at(seconds: float):
        (lag,) = view_lags(spark, repo, naive + seconds * s)
        return lag

    at_60 = lag_at(60)
    assert (at_60.view, at_60.source) == (view.name, f"departure_events_{tag}")
    assert at_60.lag is not None
    assert (at_60.lag.batches, at_60.lag.events, at_60.lag.refused, at_60.lag.late) == (3, 15, 3, 1)
    assert (at_60.lag.lag, at_60.lag.idle(naive + 60 * s)) == (3.5 * s, 40 * s)
    at_15 = lag_at(15).lag  # batch 2 not recorded yet
    assert at_15 is not None and (at_15.batches, at_15.lag, at_15.idle(naive + 15 * s)) == (2, 3.5 * s, 2.5 * s)
    at_10 = lag_at(10).lag
    assert at_10 is not None and (at_10.batches, at_10.lag) == (1, 4 * s)
    assert lag_at(3).lag is None

    out = cli("status", "--as-of", (naive + 60 * s).isoformat(), "--repo", str(tmp_path / "features")).output
    cells = table_row(out, view.name, f"departure_events_{tag}")
    assert cells[0] == view.name and cells[2] == "3" and cells[-2:] == ["3.5", "40.0"], out
    stream_out = cli("stream", "status", "--repo", str(tmp_path / "features")).output
    cells = table_row(stream_out, f"departure_events_{tag}")
    assert cells[2:6] == ["3", "15", "3", "1"] and cells[-1] == "3.5", stream_out


def table_row(output: str, *words: str) -> list[str]:
    """The cells of the first table row holding every one of ``words``."""
    line = next(x for x in output.splitlines() if all(w in x for w in words))
    return [c.strip() for c in line.strip().strip("│┃").split("│")]


@pytest.mark.slow  # two stream runs, a backfill through the gate and a training set: ~5 minutes on 2 loaded cores
def test_a_new_view_backfilled_by_the_batch_engine_then_streamed_has_no_gap_and_no_double_count(
    spark, stream_setup, kafka, tmp_path
):
    """Part 1 streamed into the events table; a new window view over the source (another tile) defined and
    backfilled by the batch engine from that table; part 2 streamed (its first events in tiles part 1 filled): the
    new view's rows equal the brute force over all events, on exactly the boundaries where a window changes, and a
    training set through the point-in-time join equals the brute force at its entity rows."""
    from featurelake.compute.pipeline import backfill
    from featurelake.offline.training_set import build_training_set
    from featurelake.repo import load_repo
    from featurelake.runs import Interval

    settings, _, _ = stream_setup
    tag = uuid.uuid4().hex[:8]
    repo1, _ = write_repo(tmp_path, tag)
    source = repo1.sources[f"departure_events_{tag}"]
    create_topic(kafka, source.topic, 1)
    rng = random.Random(5)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    start = now - dt.timedelta(hours=4)
    part1 = [event(i, rng.choice(ORIGINS), rng.choice([None, *range(-10, 60)]), start + dt.timedelta(seconds=30 * i))
             for i in range(300)]  # fmt: skip
    produce(kafka, source.topic, [json.dumps(e).encode() for e in part1])
    run_available(spark, settings, repo1)

    # The new view: same aggregations, 10-minute tiles, its own tables; a feature service for its training set.
    name = f"backfilled_{tag}"
    defs = tmp_path / "features" / "defs.py"
    defs.write_text(
        defs.read_text()
        + textwrap.dedent(
            f"""
            from featurelake.repo.definitions import FeatureService

            backfilled = FeatureView(
                name="{name}", entities=[origin], source=departures, ttl="1h", validation_policy="warn",
                computation=WindowComputation(tile="10m", aggregations=[
                    Aggregation(column="dep_delay", function="mean", windows=["30m", "1h"]),
                    Aggregation(column="flight_id", function="count", windows=["30m"], name="departures"),
                ]),
            )
            backfilled_service = FeatureService(name="{name}_service", features=[backfilled])
            """
        )
    )
    repo2 = load_repo(tmp_path / "features")
    first_day = min(dt.datetime.fromisoformat(e["dep_ts"]) for e in part1).date()
    backfill(spark, settings, name, Interval(first_day, now.date()), repo=repo2)
    backfilled = spark.table(f"features.{name}_v1").count()
    assert backfilled > 0

    newest = max(dt.datetime.fromisoformat(e["dep_ts"]) for e in part1)
    part2 = [event(1000 + i, rng.choice(ORIGINS), float(rng.randrange(-5, 60)),
                   newest - dt.timedelta(minutes=10) + dt.timedelta(seconds=20 * i)) for i in range(200)]  # fmt: skip
    produce(kafka, source.topic, [json.dumps(e).encode() for e in part2])
    run_available(spark, settings, repo2)  # the source's query continues from its checkpoint, now with both views

    events = pd.DataFrame([*part1, *part2]).assign(dep_ts=lambda d: pd.to_datetime(d.dep_ts, utc=True))
    rows = spark.table(f"features.{name}_v1").toPandas()
    rows["event_timestamp"] = pd.to_datetime(rows.event_timestamp, utc=True)
    assert not rows.duplicated(["origin", "event_timestamp"]).any()
    grid = set()
    for e in events.itertuples():
        end = e.dep_ts.floor("10min") + dt.timedelta(minutes=10)
        grid |= {(e.origin, end), *((e.origin, end + w) for w in WINDOWS.values())}
    assert set(zip(rows.origin, rows.event_timestamp, strict=True)) == grid  # no gap, nothing extra
    expected = brute_force(events, rows[["origin", "event_timestamp"]])
    merged = rows.merge(expected, on=["origin", "event_timestamp"], suffixes=("", "_ref"))
    assert len(merged) == len(rows) == len(expected) > backfilled
    assert_same(merged, ["dep_delay_mean_30m", "dep_delay_mean_1h", "departures_30m"])

    # A training set at random times over both parts (each with an event in its last 30 minutes: a row in the ttl).
    times = []
    while len(times) < 40:
        o, t = (
            rng.choice(ORIGINS),
            start + dt.timedelta(seconds=rng.randrange(1800, int((now - start).total_seconds()))),
        )
        recent = events[(events.origin == o) & (events.dep_ts >= pd.Timestamp(t) - pd.Timedelta("20min"))
                        & (events.dep_ts < pd.Timestamp(t).floor("10min"))]  # fmt: skip
        if len(recent):
            times.append((o, t))
    entities = pd.DataFrame(times, columns=["origin", "event_timestamp"])
    spark.createDataFrame(entities).write.format("delta").saveAsTable(f"raw.entities_{tag}")
    build_training_set(spark, repo2, name=f"continuity_{tag}", entities=f"raw.entities_{tag}",
                       service=f"{name}_service")  # fmt: skip
    got = spark.table(f"training.continuity_{tag}").toPandas()
    got["event_timestamp"] = pd.to_datetime(got.event_timestamp, utc=True)
    # PIT: the row at the last boundary at or before t holds the windows ending there (rows exist wherever they change)
    floors = got[["origin"]].assign(event_timestamp=got.event_timestamp.dt.floor("10min"))
    want = brute_force(events, floors)
    assert len(got) == len(want) == 40
    paired = pd.concat([got.reset_index(drop=True), want.add_suffix("_ref").reset_index(drop=True)], axis=1)
    assert_same(paired, ["dep_delay_mean_30m", "dep_delay_mean_1h", "departures_30m"])


def assert_same(merged: pd.DataFrame, features: list[str]) -> None:
    """Each feature equals its ``_ref`` column (floats within 1e-9, nulls in the same places)."""
    for feature in features:
        a, b = merged[feature].astype(float), merged[f"{feature}_ref"].astype(float)
        assert (a.isna() == b.isna()).all(), feature
        assert ((a - b).abs() < 1e-9).where(a.notna(), True).all(), feature
