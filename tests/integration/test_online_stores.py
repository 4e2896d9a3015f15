"""Each online store against its real server: conditional writes, deletes, expiry, missing keys, watermarks."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from pathlib import Path

import pytest

from featurelake.online.backends import open_store
from featurelake.online.encoding import encode_key
from featurelake.online.store import Record, StoreConfig, Watermark
from tests.support.servers import start_dynamodb_local, start_redis

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNAMO_HOME = REPO_ROOT / ".state" / "dynamodb"
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}

pytestmark = pytest.mark.integration


def store_config(kind: str, tmp_path: Path, port: int = 0, batch_size: int = 7) -> StoreConfig:
    return StoreConfig(
        type=kind,
        sqlite_path=str(tmp_path / "online.db"),
        redis_host="127.0.0.1",
        redis_port=port,
        redis_db=0,
        dynamodb_region="us-east-1",
        dynamodb_endpoint_url=f"http://127.0.0.1:{port}" if kind == "dynamodb" else None,
        dynamodb_table_prefix=f"t{random.randrange(10**9)}",
        batch_size=batch_size,
    )


@pytest.fixture(scope="module")
def dynamodb_server():
    saved = {k: os.environ.get(k) for k in DUMMY_AWS}
    os.environ.update(DUMMY_AWS)  # dummy credentials for DynamoDB Local, in the test process only
    server = start_dynamodb_local(DYNAMO_HOME)
    yield server
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(params=["sqlite", "redis", "dynamodb"])
def store(request, tmp_path):
    port = 0
    if request.param != "sqlite":
        port = request.getfixturevalue(f"{request.param}_server").port
    s = open_store(store_config(request.param, tmp_path, port))
    s.prepare("v1")
    yield s
    s.close()


def rec(key: str, ts: int, cts: int, value: object, exp_ms: int | None = None) -> Record:
    return Record(key, ts, cts, json.dumps({"x": value}), exp_ms, None)


def test_latest_event_wins_whatever_the_write_order(store):
    rng = random.Random(7)
    keys = [encode_key([f"k{i}", i]) for i in range(20)]
    events = [(k, rng.randrange(5), rng.randrange(3), rng.random()) for k in keys for _ in range(6)]
    rng.shuffle(events)
    for start in range(0, len(events), 13):  # several runs, each a batch of writes in arbitrary order
        store.write("v1", [rec(*e) for e in events[start : start + 13]])
    store.write("v1", [rec(*e) for e in events])  # a replay of everything changes nothing
    expected = {}
    for k, ts, cts, v in events:  # brute force: the highest (ts, cts); equal (ts, cts) -> the last one written
        if k not in expected or (ts, cts) >= expected[k][:2]:
            expected[k] = (ts, cts, v)
    got = store.read([("v1", keys)], now_ms=int(time.time() * 1000))[0]
    for k, payload in zip(keys, got, strict=True):
        best = max((e for e in events if e[0] == k), key=lambda e: (e[1], e[2]))
        assert json.loads(payload)["x"] in {e[3] for e in events if e[0] == k and e[1:3] == best[1:3]}
        assert (best[1], best[2]) == expected[k][:2]


def test_older_write_is_skipped_and_counted(store):
    k = encode_key(["a"])
    assert store.write("v1", [rec(k, 10, 0, "new")]).written == 1
    stats = store.write("v1", [rec(k, 9, 99, "old")])
    assert (stats.written, stats.skipped) == (0, 1)
    assert store.write("v1", [rec(k, 10, 1, "recomputed")]).written == 1  # same event, later computation
    assert json.loads(store.read([("v1", [k])], 0)[0][0]) == {"x": "recomputed"}


def test_conditional_delete_only_removes_expired_values(store):
    old, fresh = encode_key(["old"]), encode_key(["fresh"])
    store.write("v1", [rec(old, 100, 0, 1), rec(fresh, 300, 0, 2)])
    stats = store.write("v1", [Record(old, None, None, None, None, 200), Record(fresh, None, None, None, None, 200)])
    assert stats.deleted == 1
    assert store.read([("v1", [old, fresh])], 0)[0] == [None, json.dumps({"x": 2})]


def test_expired_values_are_not_read(store):
    now = int(time.time() * 1000)
    gone, alive = encode_key(["gone"]), encode_key(["alive"])
    store.write("v1", [rec(gone, 1, 0, 1, exp_ms=now - 1000), rec(alive, 1, 0, 2, exp_ms=now + 600_000)])
    assert store.read([("v1", [gone, alive])], now)[0] == [None, json.dumps({"x": 2})]
    store.purge_expired("v1", now)
    assert store.read([("v1", [gone])], now)[0] == [None]


def test_missing_keys_and_unknown_views_read_as_none(store):
    k = encode_key(["x", "y"])
    store.write("v1", [rec(k, 1, 0, "v")])
    got = store.read([("v1", [encode_key(["nope"]), k]), ("never_written", [k])], int(time.time() * 1000))
    assert got == [[None, json.dumps({"x": "v"})], [None]]


def test_composite_keys_do_not_collide(store):
    a, b = encode_key(["a:b", "c"]), encode_key(["a", "b:c"])
    c, d = encode_key(['a","b']), encode_key(["a", "b"])
    store.write("v1", [rec(a, 1, 0, "a"), rec(b, 1, 0, "b"), rec(c, 1, 0, "c"), rec(d, 1, 0, "d")])
    got = store.read([("v1", [a, b, c, d])], 0)[0]
    assert [json.loads(p)["x"] for p in got] == ["a", "b", "c", "d"]


def test_watermark_roundtrip(store):
    assert store.get_watermark("v1") is None
    wm = Watermark("features.t", 3, dt.datetime(2013, 1, 8, tzinfo=dt.UTC), 123, "full")
    store.set_watermark("v1", wm)
    store.set_watermark("v1", wm)
    assert store.get_watermark("v1") == wm


def test_redis_acl_user_with_the_password_from_the_environment(tmp_path, monkeypatch):
    import dataclasses

    import redis

    from featurelake.online.backends.redis import PASSWORD_ENV

    server = start_redis(None, "--user", "default", "off", "--user", "fl", "on", ">s3cret", "~*", "&*", "+@all")
    try:
        config = dataclasses.replace(store_config("redis", tmp_path, server.port), redis_username="fl")
        monkeypatch.delenv(PASSWORD_ENV, raising=False)
        with pytest.raises(redis.exceptions.AuthenticationError), open_store(config) as store:
            store.ping()
        monkeypatch.setenv(PASSWORD_ENV, "wrong")
        with pytest.raises(redis.exceptions.AuthenticationError), open_store(config) as store:
            store.ping()
        monkeypatch.setenv(PASSWORD_ENV, "s3cret")
        with open_store(config) as store:
            store.prepare("v1")
            k = encode_key(["a"])
            assert store.write("v1", [rec(k, 1, 0, "x")]).written == 1
            assert store.read([("v1", [k])], 0)[0] == [json.dumps({"x": "x"})]
    finally:
        server.stop()
