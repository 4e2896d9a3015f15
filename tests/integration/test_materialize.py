"""Materialization end to end on small synthetic Delta tables (with change data feed) and a tiny feature repo.

Expected online values come from a brute-force pandas point-in-time reference, never from the code under test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import textwrap
import uuid

import pandas as pd
import pytest

from featurelake.online.backends import open_store
from featurelake.online.client import OnlineClient
from featurelake.online.materialize import materialize_views
from featurelake.repo import load_repo
from tests.conftest import DUMMY_AWS
from tests.integration.test_online_stores import store_config
from tests.support.servers import start_dynamodb, start_redis

pytestmark = pytest.mark.integration

UTC = dt.UTC
T0 = dt.datetime(2013, 1, 1, tzinfo=UTC)
DRIVER_FEATURES = ["trips", "rating", "name", "last_trip", "active"]
ROUTE_FEATURES = ["avg_delay", "n"]


def write_repo(root, driver_table: str, route_table: str):
    (root / "features").mkdir()
    (root / "features" / "defs.py").write_text(
        textwrap.dedent(
            f"""
            from featurelake.repo.definitions import DeltaTableSource, Entity, Feature, FeatureService, FeatureView

            driver = Entity(name="driver", join_keys=["driver_id"])
            route = Entity(name="route", join_keys=["origin", "dest"])
            driver_stats = FeatureView(
                name="driver_stats", entities=[driver], ttl="2d",
                source=DeltaTableSource(name="driver_src", table="{driver_table}", timestamp_column="event_ts",
                                        created_timestamp_column="created_ts", date_partition_column="event_date"),
                features=[Feature(name="trips", dtype="bigint"), Feature(name="rating", dtype="double"),
                          Feature(name="name", dtype="string"), Feature(name="last_trip", dtype="timestamp"),
                          Feature(name="active", dtype="boolean")],
            )
            route_stats = FeatureView(
                name="route_stats", entities=[route],
                source=DeltaTableSource(name="route_src", table="{route_table}", timestamp_column="event_ts"),
                features=[Feature(name="avg_delay", dtype="double"), Feature(name="n", dtype="int")],
            )
            both = FeatureService(name="both", features=[driver_stats, route_stats])
            """
        )
    )
    return load_repo(root / "features")


def driver_rows(rng: random.Random, n: int, keys: int, start: dt.datetime, days: int) -> pd.DataFrame:
    rows = []
    for _ in range(n):
        ts = start + dt.timedelta(minutes=rng.randrange(days * 24 * 60))
        rows.append(
            {
                "driver_id": rng.randrange(keys),
                "event_ts": ts,
                "created_ts": ts + dt.timedelta(minutes=rng.choice([0, 5, 60])),
                "event_date": ts.date(),
                "trips": rng.randrange(1000),
                "rating": rng.choice([None, rng.random() * 5, 1 / 3]),
                "name": rng.choice(["ann", "bø", 'q"t', None]),
                "last_trip": ts - dt.timedelta(microseconds=rng.randrange(10**9)),
                "active": rng.random() < 0.5,
            }
        )
    return pd.DataFrame(rows)


def route_rows(rng: random.Random, n: int, start: dt.datetime) -> pd.DataFrame:
    airports = ["EWR", "JFK", "LGA", "A:B", "LAX"]
    stamps = rng.sample(range(10 * 24 * 60), n)  # unique per table: no created timestamp to break ties
    rows = [
        {
            "origin": rng.choice(airports),
            "dest": rng.choice(airports),
            "event_ts": start + dt.timedelta(minutes=m),
            "avg_delay": rng.gauss(5, 20),
            "n": rng.randrange(100),
        }
        for m in stamps
    ]
    return pd.DataFrame(rows)


def append(spark, pdf: pd.DataFrame, table: str, schema: str, partition: str | None = None) -> None:
    df = spark.createDataFrame(pdf.astype(object).where(pdf.notna(), None), schema)
    writer = df.write.format("delta").mode("append").option("delta.enableChangeDataFeed", "true")
    if partition:
        writer = writer.partitionBy(partition)
    writer.saveAsTable(table)


DRIVER_SCHEMA = (
    "driver_id int, event_ts timestamp, created_ts timestamp, event_date date, trips bigint, rating double, "
    "name string, last_trip timestamp, active boolean"
)
ROUTE_SCHEMA = "origin string, dest string, event_ts timestamp, avg_delay double, n int"


def latest_rows(pdf: pd.DataFrame, keys: list[str], features: list[str], as_of, ttl, created=None) -> dict:
    """Brute force PIT at ``as_of``: per key (event time, features) of the row with ts <= as_of (>= as_of - ttl),
    max ts, then max created."""
    out: dict = {}
    for _, r in pdf.iterrows():
        ts = r["event_ts"].to_pydatetime()
        if ts > as_of or (ttl is not None and ts < as_of - ttl):
            continue
        k = tuple(r[c] for c in keys)
        rank = (ts, r[created] if created else 0)
        if k not in out or rank > out[k][0]:
            out[k] = (rank, {f: r[f] for f in features})
    return {k: (rank[0], values) for k, (rank, values) in out.items()}


def reference(pdf: pd.DataFrame, keys: list[str], features: list[str], as_of, ttl, created=None) -> dict:
    """Per key the features of :func:`latest_rows`."""
    return {k: values for k, (_, values) in latest_rows(pdf, keys, features, as_of, ttl, created).items()}


def norm(v):
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return None
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    return v.item() if hasattr(v, "item") else v


def assert_online_matches(client, ref_driver: dict, ref_route: dict, driver_keys, route_keys) -> None:
    rows = [{"driver_id": d, "origin": o, "dest": t} for d, (o, t) in zip(driver_keys, route_keys, strict=True)]
    got = client.get_online_features(rows, service="both")
    for row in got:
        want_d = ref_driver.get((row["driver_id"],), dict.fromkeys(DRIVER_FEATURES))
        want_r = ref_route.get((row["origin"], row["dest"]), dict.fromkeys(ROUTE_FEATURES))
        for f in DRIVER_FEATURES:
            assert row[f"driver_stats__{f}"] == norm(want_d[f]), (row, f)
        for f in ROUTE_FEATURES:
            assert row[f"route_stats__{f}"] == norm(want_r[f]), (row, f)
        for f in ("trips", "last_trip"):
            value = row[f"driver_stats__{f}"]
            assert value is None or isinstance(value, int if f == "trips" else dt.datetime)


@pytest.fixture(scope="module")
def servers(redis_cluster):
    saved = {k: os.environ.get(k) for k in DUMMY_AWS}
    os.environ.update(DUMMY_AWS)
    redis_server, dynamo_server = start_redis(), start_dynamodb()
    yield {"redis": redis_server.port, "dynamodb": dynamo_server.port, "sqlite": 0, "redis_cluster": redis_cluster}
    redis_server.stop()
    dynamo_server.stop()
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture
def setup(spark, tmp_path, servers, request):
    kind = getattr(request, "param", "sqlite")
    spark.sparkContext.pythonExec = sys.executable  # executors import featurelake to write the store
    if kind == "dynamodb":  # dummy credentials reach the Python workers through the SparkContext environment
        spark.sparkContext.environment.update(DUMMY_AWS)
    suffix = uuid.uuid4().hex[:8]
    driver_table, route_table = f"features.ol_driver_{suffix}", f"features.ol_route_{suffix}"
    repo = write_repo(tmp_path, driver_table, route_table)
    if kind == "redis_cluster":
        config = store_config("redis", tmp_path, batch_size=50, cluster_nodes=tuple(servers[kind].nodes))
    else:
        config = store_config(kind, tmp_path, servers[kind], batch_size=50)
    yield spark, repo, config, driver_table, route_table
    spark.sql(f"DROP TABLE IF EXISTS {driver_table}")
    spark.sql(f"DROP TABLE IF EXISTS {route_table}")


ALL_DRIVERS = list(range(42))  # 40 exist, 40 and 41 never do
ALL_ROUTES = [(o, d) for o in ["EWR", "JFK", "LGA", "A:B", "LAX"] for d in ["EWR", "JFK", "A:B", "LAX"]] * 3


def run_both(spark, repo, config, as_of, **kw):
    views = [repo.view(v) for v in ("driver_stats", "route_stats")]
    return materialize_views(spark, repo, views, config, as_of=as_of, **kw)


@pytest.mark.parametrize("setup", ["sqlite", "redis", "redis_cluster", "dynamodb"], indirect=True)
def test_full_then_incremental_match_the_pit_reference(setup):
    spark, repo, config, driver_table, route_table = setup
    rng = random.Random(11)
    d1, r1 = driver_rows(rng, 400, 40, T0, 8), route_rows(rng, 120, T0)
    append(spark, d1, driver_table, DRIVER_SCHEMA, "event_date")
    append(spark, r1, route_table, ROUTE_SCHEMA)
    as_of1 = T0 + dt.timedelta(days=5, hours=3)
    results = run_both(spark, repo, config, as_of1)
    assert [r.mode for r in results] == ["full", "full"]
    client = OnlineClient(repo, open_store(config))
    keys_d, keys_r = ALL_DRIVERS, ALL_ROUTES[: len(ALL_DRIVERS)]
    ttl = dt.timedelta(days=2)
    assert_online_matches(
        client,
        reference(d1, ["driver_id"], DRIVER_FEATURES, as_of1, ttl, "created_ts"),
        reference(r1, ["origin", "dest"], ROUTE_FEATURES, as_of1, None),
        keys_d,
        keys_r,
    )

    # a new version touching a few keys, some rows older than what is online (out of order), then a later as-of
    d2 = driver_rows(rng, 30, 5, T0 + dt.timedelta(days=3), 4)
    r2 = route_rows(random.Random(5), 20, T0)
    append(spark, d2, driver_table, DRIVER_SCHEMA, "event_date")
    append(spark, r2, route_table, ROUTE_SCHEMA)
    as_of2 = as_of1 + dt.timedelta(hours=30)
    results = run_both(spark, repo, config, as_of2)
    assert [r.mode for r in results] == ["incremental", "incremental"]
    assert [r.from_version for r in results] == [0, 0] and [r.to_version for r in results] == [1, 1]
    all_d, all_r = pd.concat([d1, d2]), pd.concat([r1, r2])
    ref_d = reference(all_d, ["driver_id"], DRIVER_FEATURES, as_of2, ttl, "created_ts")
    ref_r = reference(all_r, ["origin", "dest"], ROUTE_FEATURES, as_of2, None)
    assert_online_matches(client, ref_d, ref_r, keys_d, keys_r)

    # nothing changed and the same as-of time: nothing is read or written
    results = run_both(spark, repo, config, as_of2)
    counts = [(r.mode, r.from_version, r.written, r.deleted, r.skipped) for r in results]
    assert counts == [("incremental", 1, 0, 0, 0)] * 2
    assert_online_matches(client, ref_d, ref_r, keys_d, keys_r)

    # replaying older runs (full and incremental) never regresses a value nor brings back an expired one
    run_both(spark, repo, config, as_of1, full=True)
    run_both(spark, repo, config, as_of1)
    assert_online_matches(client, ref_d, ref_r, keys_d, keys_r)
    client.close()


def test_crash_midway_then_rerun_converges(setup):
    spark, repo, config, driver_table, route_table = setup
    rng = random.Random(3)
    d1 = driver_rows(rng, 300, 40, T0, 8)
    append(spark, d1, driver_table, DRIVER_SCHEMA, "event_date")
    append(spark, route_rows(rng, 10, T0), route_table, ROUTE_SCHEMA)
    view = repo.view("driver_stats")
    as_of1 = T0 + dt.timedelta(days=4)
    materialize_views(spark, repo, [view], config, as_of=as_of1)
    d2 = driver_rows(rng, 200, 40, T0 + dt.timedelta(days=3), 3)
    append(spark, d2, driver_table, DRIVER_SCHEMA, "event_date")
    as_of2 = as_of1 + dt.timedelta(days=1)
    with pytest.raises(Exception, match="injected failure"):
        materialize_views(spark, repo, [view], config, as_of=as_of2, fail_after_partitions=1)
    with open_store(config) as store:
        wm = store.get_watermark("driver_stats.v1")
    assert (wm.version, wm.as_of) == (0, as_of1)  # not advanced by the failed run
    result = materialize_views(spark, repo, [view], config, as_of=as_of2)[0]
    assert (result.mode, result.from_version, result.to_version) == ("incremental", 0, 1)
    ref = reference(pd.concat([d1, d2]), ["driver_id"], DRIVER_FEATURES, as_of2, dt.timedelta(days=2), "created_ts")
    client = OnlineClient(repo, open_store(config))
    rows = client.get_online_features([{"driver_id": d} for d in ALL_DRIVERS], features=["driver_stats"])
    for row in rows:
        want = ref.get((row["driver_id"],), dict.fromkeys(DRIVER_FEATURES))
        assert {f: row[f"driver_stats__{f}"] for f in DRIVER_FEATURES} == {f: norm(want[f]) for f in DRIVER_FEATURES}
    client.close()


def test_table_without_change_data_falls_back_to_full(setup):
    spark, repo, config, driver_table, route_table = setup
    rng = random.Random(9)
    r1 = route_rows(rng, 40, T0)
    spark.createDataFrame(r1, ROUTE_SCHEMA).write.format("delta").saveAsTable(route_table)
    view = repo.view("route_stats")
    as_of = T0 + dt.timedelta(days=20)
    assert materialize_views(spark, repo, [view], config, as_of=as_of)[0].mode == "full"
    r2 = route_rows(random.Random(1), 10, T0 + dt.timedelta(days=1))
    spark.createDataFrame(r2, ROUTE_SCHEMA).write.format("delta").mode("append").saveAsTable(route_table)
    result = materialize_views(spark, repo, [view], config, as_of=as_of)[0]
    assert result.mode == "full" and "change data feed is off" in result.reason
    ref = reference(pd.concat([r1, r2]), ["origin", "dest"], ROUTE_FEATURES, as_of, None)
    client = OnlineClient(repo, open_store(config))
    got = client.get_online_features([{"origin": o, "dest": d} for o, d in ALL_ROUTES[:20]], features=["route_stats"])
    for row in got:
        want = ref.get((row["origin"], row["dest"]), dict.fromkeys(ROUTE_FEATURES))
        assert [row[f"route_stats__{f}"] for f in ROUTE_FEATURES] == [norm(want[f]) for f in ROUTE_FEATURES]
    client.close()


def test_cli_materialize_get_and_check(setup, monkeypatch, settings, state_dir):
    """The commands in-process on the test session (no second JVM to start)."""
    from typer.testing import CliRunner

    from featurelake.cli import app
    from featurelake.config import get_settings
    from tests.conftest import isolated_env

    spark, repo, config, driver_table, route_table = setup
    rng = random.Random(4)
    d1 = driver_rows(rng, 200, 40, T0, 6)
    append(spark, d1, driver_table, DRIVER_SCHEMA, "event_date")
    append(spark, route_rows(rng, 30, T0), route_table, ROUTE_SCHEMA)
    for k, v in isolated_env(state_dir).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FEATURELAKE__ONLINE_STORE__SQLITE_PATH", config.sqlite_path)
    get_settings.cache_clear()
    runner, repo_dir = CliRunner(), str(repo.root)
    as_of = "2013-01-05T12:00:00"
    out = runner.invoke(app, ["materialize", "--all", "--as-of", as_of, "--repo", repo_dir])
    assert out.exit_code == 0, out.output
    with open_store(config) as store:
        assert {v: store.get_watermark(f"{v}.v1").mode for v in ("driver_stats", "route_stats")} == dict.fromkeys(
            ("driver_stats", "route_stats"), "full"
        )
    out = runner.invoke(app, ["online", "get", "--service", "both", "--key", "driver_id=7", "--key", "origin=EWR",
                              "--key", "dest=LAX", "--repo", repo_dir])  # fmt: skip
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    ref = reference(d1, ["driver_id"], DRIVER_FEATURES, dt.datetime(2013, 1, 5, 12, tzinfo=UTC),
                    dt.timedelta(days=2), "created_ts").get((7,), dict.fromkeys(DRIVER_FEATURES))  # fmt: skip
    assert got["driver_stats__trips"] == norm(ref["trips"]) and got["driver_stats__name"] == norm(ref["name"])
    for view in ("driver_stats", "route_stats"):
        out = runner.invoke(app, ["online", "check", "--view", view, "--sample", "100", "--repo", repo_dir])
        assert out.exit_code == 0, out.output
        assert "0 mismatches" in out.output
    # tamper with one online value: the check must notice
    with open_store(config) as store:
        from featurelake.online.encoding import encode_key
        from featurelake.online.store import Record

        key = next(k for k in range(40) if (k,) in reference(d1, ["driver_id"], DRIVER_FEATURES,
                   dt.datetime(2013, 1, 5, 12, tzinfo=UTC), dt.timedelta(days=2), "created_ts"))  # fmt: skip
        store.write("driver_stats.v1", [Record(encode_key([key]), 2**52, 0, json.dumps({"trips": -1}), None, None)])
    out = runner.invoke(app, ["online", "check", "--view", "driver_stats", "--sample", "100", "--repo", repo_dir])
    assert out.exit_code == 1 and "1 mismatches" in out.output, out.output
    # a value that expired within the last ttl but is still served: the check samples such keys too
    at, ttl = dt.datetime(2013, 1, 5, 12, tzinfo=UTC), dt.timedelta(days=2)
    latest = d1[d1["event_ts"] <= at].groupby("driver_id")["event_ts"].max()
    expired = next(int(k) for k, ts in latest.items() if at - 2 * ttl <= ts < at - ttl)
    with open_store(config) as store:
        store.write("driver_stats.v1", [Record(encode_key([expired]), 2**52, 0, json.dumps({"trips": 1}), None, None)])
    out = runner.invoke(app, ["online", "check", "--view", "driver_stats", "--sample", "100", "--repo", repo_dir])
    assert out.exit_code == 1 and "2 mismatches" in out.output, out.output
    get_settings.cache_clear()
