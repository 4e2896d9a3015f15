"""The HTTP feature server as a real process (uvicorn started by `featurelake serve online` on a free port) over
SQLite and Redis stores materialized from small Delta tables. Expected values come from the brute-force pandas
point-in-time reference of test_materialize, never from the code under test."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import sys
import time
import uuid

import httpx
import pytest
from pyspark.sql import functions as F

from featurelake.errors import InputError
from featurelake.online.backends import open_store
from featurelake.online.encoding import encode_key
from featurelake.online.materialize import materialize_views
from featurelake.online.store import Record
from featurelake.online.versions import record_registry
from featurelake.repo import load_repo
from featurelake.repo.specs import definitions_fingerprint, serialize
from tests.conftest import run_cli
from tests.integration.test_materialize import (
    DRIVER_FEATURES,
    DRIVER_SCHEMA,
    ROUTE_FEATURES,
    ROUTE_SCHEMA,
    T0,
    append,
    driver_rows,
    latest_rows,
    norm,
    route_rows,
    write_repo,
)
from tests.integration.test_online_stores import store_config
from tests.support.servers import free_port, start_redis

pytestmark = pytest.mark.integration

AS_OF = T0 + dt.timedelta(days=5, hours=3)
TTL = dt.timedelta(days=2)
DRIVERS = list(range(42))  # 40 exist, 40 and 41 never do
ROUTES = [(o, d) for o in ["EWR", "JFK", "LGA", "A:B", "LAX"] for d in ["EWR", "JFK", "A:B", "LAX"]]
STALE_DRIVER = 99  # written straight into the store with an expiry in the past


REQUEST_VIEW = """
from featurelake.repo.definitions import RequestFeatureView


def _score(row):
    trips, tip = row["trips"], row["tip"]
    return {
        "tip_per_trip": None if not trips or tip is None else tip / trips,
        "tip_vs_delay": None if row["avg_delay"] is None else tip - row["avg_delay"],
        "tag": None if row["name"] is None else f"{row['name']}@{row['city']}",
        "rated_high": None if row["rating"] is None else row["rating"] > 2.5,
    }


scored = RequestFeatureView(
    name="scored", request={"tip": "double", "city": "string"},
    sources=[driver_stats[["trips", "rating", "name"]], route_stats[["avg_delay"]]],
    features=[Feature(name="tip_per_trip", dtype="double"), Feature(name="tip_vs_delay", dtype="double"),
              Feature(name="tag", dtype="string"), Feature(name="rated_high", dtype="boolean")],
    function=_score,
)
scored_trips = FeatureService(name="scored_trips", features=[driver_stats[["trips"]], scored])
"""


def scored_by_hand(driver: dict, route: dict, tip: float, city: str) -> dict:
    """The request view's values written out again, from the reference's latest values (None: not found)."""
    return {
        "tip_per_trip": tip / driver["trips"] if driver.get("trips") else None,
        "tip_vs_delay": None if route.get("avg_delay") is None else tip - route["avg_delay"],
        "tag": None if driver.get("name") is None else driver["name"] + "@" + city,
        "rated_high": None if driver.get("rating") is None else driver["rating"] > 2.5,
    }


def start_server(state_dir, features_dir, kind: str, redis_port: int, cluster_nodes=()) -> tuple[str, dict]:
    env = {
        "FEATURELAKE__FEATURES_DIR": str(features_dir),
        "FEATURELAKE__ONLINE_STORE__TYPE": kind,
        "FEATURELAKE__ONLINE_STORE__REDIS_PORT": str(redis_port),
        "FEATURELAKE__ONLINE__MAX_ENTITIES": "60",
    }
    if cluster_nodes:
        env["FEATURELAKE__ONLINE_STORE__REDIS_CLUSTER"] = "true"
        env["FEATURELAKE__ONLINE_STORE__REDIS_CLUSTER_NODES"] = json.dumps(list(cluster_nodes))
    port = free_port()
    run_cli(state_dir, "serve", "online", "--port", str(port), **env)
    return f"http://127.0.0.1:{port}", env


@pytest.fixture(scope="module")
def data(spark, tmp_path_factory):
    """Two small Delta tables, a repository over them, and the pandas reference at AS_OF."""
    spark.sparkContext.pythonExec = sys.executable  # executors import featurelake to write the store
    root = tmp_path_factory.mktemp("serve_repo")
    suffix = uuid.uuid4().hex[:8]
    driver_table, route_table = f"features.srv_driver_{suffix}", f"features.srv_route_{suffix}"
    rng = random.Random(20)
    drivers, routes = driver_rows(rng, 300, 40, T0, 8), route_rows(rng, 120, T0)
    append(spark, drivers, driver_table, DRIVER_SCHEMA, "event_date")
    append(spark, routes, route_table, ROUTE_SCHEMA)
    write_repo(root, driver_table, route_table)
    with (root / "features" / "defs.py").open("a") as defs:
        defs.write(REQUEST_VIEW)
    repo = load_repo(root / "features")
    yield {
        "repo": repo,
        "features_dir": root / "features",
        "driver": latest_rows(drivers, ["driver_id"], DRIVER_FEATURES, AS_OF, TTL, "created_ts"),
        "route": latest_rows(routes, ["origin", "dest"], ROUTE_FEATURES, AS_OF, None),
    }
    spark.sql(f"DROP TABLE IF EXISTS {driver_table}")
    spark.sql(f"DROP TABLE IF EXISTS {route_table}")


@pytest.fixture(scope="module", params=["sqlite", "redis", "redis_cluster"])
def served(request, spark, data, redis_server, tmp_path_factory):
    """A feature server process over a store materialized at AS_OF (plus one stale value)."""
    state = tmp_path_factory.mktemp(f"serve_{request.param}")
    nodes = tuple(request.getfixturevalue("redis_cluster").nodes) if request.param == "redis_cluster" else ()
    kind = "redis" if nodes else request.param
    config = store_config(kind, state / "online", redis_server.port, batch_size=50, cluster_nodes=nodes)
    repo = data["repo"]
    materialize_views(spark, repo, [repo.view("driver_stats"), repo.view("route_stats")], config, as_of=AS_OF)
    with open_store(config) as store:
        stale = json.dumps({"trips": 1})
        store.write(
            "driver_stats.v1", [Record(encode_key([STALE_DRIVER]), 1, 0, stale, int(time.time() * 1000) - 1, None)]
        )
    url, env = start_server(state, data["features_dir"], kind, redis_server.port, nodes)
    with httpx.Client(base_url=url, timeout=30) as client:
        yield kind, client
    run_cli(state, "serve", "online", "--stop", **env)


def post(client: httpx.Client, body) -> httpx.Response:
    return client.post("/get-online-features", content=body if isinstance(body, str | bytes) else json.dumps(body))


def columns(resp: httpx.Response) -> dict[str, dict]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return dict(zip(body["metadata"]["feature_names"], body["results"], strict=True))


def parse(value, feature: str):
    return dt.datetime.fromisoformat(value) if feature == "last_trip" and value is not None else value


def test_responses_equal_the_offline_latest_values(served, data):
    _, client = served
    routes = (ROUTES * 3)[: len(DRIVERS)]
    entities = {"driver_id": DRIVERS, "origin": [o for o, _ in routes], "dest": [d for _, d in routes]}
    cols = columns(post(client, {"feature_service": "both", "entities": entities, "full_feature_names": True}))
    assert list(cols)[:3] == ["driver_id", "origin", "dest"]
    assert cols["driver_id"]["values"] == DRIVERS and set(cols["origin"]["statuses"]) == {"PRESENT"}
    for view, features, keys, ref in [
        ("driver_stats", DRIVER_FEATURES, [(d,) for d in DRIVERS], data["driver"]),
        ("route_stats", ROUTE_FEATURES, routes, data["route"]),
    ]:
        for i, key in enumerate(keys):
            ts, want = ref.get(tuple(key), (None, dict.fromkeys(features)))
            for f in features:
                col = cols[f"{view}__{f}"]
                assert parse(col["values"][i], f) == norm(want[f]), (view, key, f)
                assert col["statuses"][i] == ("NOT_FOUND" if ts is None else "PRESENT"), (view, key)
                stamp = dt.datetime.fromisoformat(col["event_timestamps"][i])
                assert stamp == (ts if ts is not None else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)), (view, key)
    found = sum(1 for s in cols["driver_stats__trips"]["statuses"] if s == "PRESENT")
    assert 0 < found < 40  # some keys have no value within the ttl, so NOT_FOUND is exercised too


def test_feature_list_short_names_and_a_stale_value(served, data):
    kind, client = served
    body = {"features": ["driver_stats:trips", "driver_stats:rating"], "entities": {"driver_id": [STALE_DRIVER, 3]}}
    cols = columns(post(client, body))
    assert list(cols) == ["driver_id", "trips", "rating"]
    # SQLite keeps a value past its expiry until the next purge: OUTSIDE_MAX_AGE, not served; Redis drops it itself
    assert cols["trips"]["statuses"][0] == ("OUTSIDE_MAX_AGE" if kind == "sqlite" else "NOT_FOUND")
    assert cols["trips"]["values"][0] is None
    ts, want = data["driver"].get((3,), (None, {"trips": None}))
    assert cols["trips"]["values"][1] == norm(want["trips"])


BAD = [
    ("{not json", 400, "request body is not JSON"),
    ({"features": ["driver_stats:nope"], "entities": {"driver_id": [1]}}, 404, "has no feature(s) nope"),
    ({"features": ["ghost:x"], "entities": {"driver_id": [1]}}, 404, "unknown feature view 'ghost'"),
    ({"feature_service": "ghost", "entities": {"driver_id": [1]}}, 404, "unknown feature service 'ghost'"),
    ({"features": ["driver_stats:trips"], "entities": {"driver_id": [[1]]}}, 400, "is not a string, integer or"),
    ({"features": ["driver_stats:trips"], "entities": {"driver_id": [1.5]}}, 400, "is not a string, integer or"),
    ({"features": ["driver_stats:trips"], "entities": {"driver": [1]}}, 400, "no column for join key(s) driver_id"),
    ({"features": ["driver_stats:trips"], "entities": {"driver_id": list(range(61))}}, 400, "online.max_entities"),
    ({"features": ["driver_stats:trips"], "entities": {"driver_id": [None]}}, 400, "'driver_id' is null in entity 0"),
    ({"entities": {"driver_id": [1]}}, 400, "give either features"),
    ({"features": "driver_stats:trips", "entities": {"driver_id": [1]}}, 400, "invalid request: features"),
    ([1, 2], 400, "invalid request"),
]


@pytest.mark.parametrize("served", ["sqlite"], indirect=True)  # request checks do not depend on the store
@pytest.mark.parametrize(("body", "status", "message"), BAD)
def test_bad_input_is_a_4xx_with_one_line(served, body, status, message):
    _, client = served
    resp = post(client, body)
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert message in detail and "\n" not in detail and "Traceback" not in detail


@pytest.mark.parametrize("served", ["redis"], indirect=True)  # one store: request views do not depend on it
def test_request_features_served_equal_the_training_sets_and_the_hand_computed(served, data, spark, tmp_path):
    """The same entities and request data through the server and through a training set as of AS_OF (where the
    point-in-time values are the materialized ones): equal to each other and to the formula written by hand.
    Half the inputs are read only for the request view (rating, name, route_stats), not selected."""
    from featurelake.offline.training_set import build_training_set, rebuild

    kind, client = served
    rng = random.Random(7)
    n = 50
    drivers = [rng.choice(DRIVERS) for _ in range(n)]
    routes = [rng.choice(ROUTES) for _ in range(n)]
    tips = [rng.choice([0.0, 2.5, rng.uniform(-10, 10), 1e-9]) for _ in range(n)]
    cities = [rng.choice(["NYC", "bø", ""]) for _ in range(n)]
    body = {
        "feature_service": "scored_trips",
        "entities": {"driver_id": drivers, "origin": [o for o, _ in routes], "dest": [d for _, d in routes]},
        "request_context": {"tip": tips, "city": cities},
    }
    served_cols = columns(post(client, body))
    assert list(served_cols) == ["driver_id", "origin", "dest", "trips", "tip_per_trip", "tip_vs_delay", "tag",
                                 "rated_high"]  # fmt: skip
    assert set(served_cols["tag"]["statuses"]) == {"PRESENT"}

    table = f"features.srv_entities_{kind}_{uuid.uuid4().hex[:6]}"
    entity_rows = [(d, o, de, AS_OF, t, c) for d, (o, de), t, c in zip(drivers, routes, tips, cities, strict=True)]
    spark.createDataFrame(
        entity_rows, "driver_id int, origin string, dest string, event_timestamp timestamp, tip double, city string"
    ).withColumn("row", F.monotonically_increasing_id()).write.format("delta").saveAsTable(table)
    name = f"srv_scored_{kind}"
    manifest = build_training_set(spark, data["repo"], name=name, entities=table, service="scored_trips",
                                  overwrite=True)  # fmt: skip
    assert [(r.name, r.inputs) for r in manifest.request_views] == [
        ("scored", {"driver_stats": ["trips", "rating", "name"], "route_stats": ["avg_delay"]})
    ]
    assert {v.name: v.inputs_only for v in manifest.views} == {"driver_stats": ["rating", "name"],
                                                               "route_stats": ["avg_delay"]}  # fmt: skip
    trained = manifest.read_table(spark).orderBy("row").collect()
    assert trained[0].__fields__ == ["driver_id", "origin", "dest", "event_timestamp", "tip", "city", "row", "trips",
                                     "tip_per_trip", "tip_vs_delay", "tag", "rated_high"]  # fmt: skip
    for i, row in enumerate(trained):
        driver = data["driver"].get((drivers[i],), (None, {}))[1]
        route = {f: norm(v) for f, v in data["route"].get(routes[i], (None, {}))[1].items()}
        want = scored_by_hand({f: norm(v) for f, v in driver.items()}, route, tips[i], cities[i])
        for feature, value in want.items():
            assert row[feature] == value, (i, feature, row[feature], value)
            assert served_cols[feature]["values"][i] == value, (i, feature)
    assert sum(r["tip_per_trip"] is not None for r in trained) > n // 4  # most drivers have values
    assert sum(r["tag"] is None for r in trained) > 0  # and some have none: the function sees None

    again = rebuild(spark, manifest.model_dump(mode="json"), name=f"{name}_again", repo=data["repo"])
    assert again.read_table(spark).exceptAll(manifest.read_table(spark)).count() == 0
    changed = tmp_path / "changed"
    shutil.copytree(data["features_dir"], changed / "features")
    defs = changed / "features" / "defs.py"
    assert 'row["rating"] > 2.5' in defs.read_text()
    defs.write_text(defs.read_text().replace('row["rating"] > 2.5', 'row["rating"] > 3'))
    with pytest.raises(InputError, match="request feature view 'scored': its function changed since the manifest"):
        rebuild(spark, manifest.model_dump(mode="json"), name=f"{name}_bad", repo=load_repo(changed / "features"))
    spark.sql(f"DROP TABLE IF EXISTS {table}")


REQUEST_BAD = [
    ({"request_context": {"tip": ["x"], "city": ["c"]}}, "request field 'tip' of entity row 0: 'x' is not a double"),
    ({"request_context": {"tip": [1.0]}}, "entity row 0 has no request field 'city' (string)"),
    ({"request_context": {"tip": [True], "city": ["c"]}}, "request field 'tip' of entity row 0: True is not a double"),
]


@pytest.mark.parametrize("served", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("extra", "message"), REQUEST_BAD)
def test_bad_request_data_is_a_400_naming_the_field(served, extra, message):
    _, client = served
    body = {"feature_service": "scored_trips", "entities": {"driver_id": [1], "origin": ["EWR"], "dest": ["JFK"]}}
    resp = post(client, {**body, **extra})
    assert resp.status_code == 400 and resp.json()["detail"] == message, resp.text


def test_health_and_metrics(served):
    kind, client = served
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["store"].startswith(kind)
    assert len(health.json()["registry"]) == 16
    post(client, {"feature_service": "ghost", "entities": {"driver_id": [1]}})
    text = client.get("/metrics").text
    assert 'featurelake_online_requests_total{path="/get-online-features",status="404"}' in text
    assert 'featurelake_online_request_seconds_bucket{path="/health",le="+Inf"}' in text
    assert "featurelake_online_store_errors_total 0" in text


def test_store_down_is_a_503_naming_the_store(tmp_path, data):
    """Health first says which applied registry version holds the served definitions; then the store goes down."""
    redis = start_redis()
    url, env = start_server(tmp_path, data["features_dir"], "redis", redis.port)
    served = definitions_fingerprint(serialize(data["repo"]))  # the definitions the server loaded
    try:
        with (
            httpx.Client(base_url=url, timeout=30) as client,
            open_store(store_config("redis", tmp_path, redis.port)) as s,
        ):
            health = client.get("/health").json()
            assert (health["registry"], health["registry_version"], health["registry_applied_version"]) == (
                served, None, None  # nothing applied yet
            )  # fmt: skip
            record_registry(s, 7, served)
            assert client.get("/health").json()["registry_version"] == 7
            record_registry(s, 8, "0123456789abcdef")  # an apply of other definitions: restart the server
            health = client.get("/health").json()
            assert (health["registry_version"], health["registry_applied_version"]) == (None, 8)
            redis.stop()
            body = {"features": ["driver_stats:trips"], "entities": {"driver_id": [1]}}
            for resp in (post(client, body), client.get("/health")):
                assert resp.status_code == 503, resp.text
                assert f"redis://127.0.0.1:{redis.port}/0" in resp.json()["detail"]
            assert "featurelake_online_store_errors_total 2" in client.get("/metrics").text
    finally:
        redis.stop()
        run_cli(tmp_path, "serve", "online", "--stop", **env)
