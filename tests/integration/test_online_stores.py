"""Each online store against its real server: conditional writes, deletes, expiry, missing keys, watermarks."""

from __future__ import annotations

import binascii
import dataclasses
import datetime as dt
import json
import random
import time
from pathlib import Path

import pytest

from featurelake.online.backends import open_store
from featurelake.online.encoding import encode_key
from featurelake.online.store import Record, StoreConfig, Watermark
from tests.conftest import CLUSTER_PASSWORD, CLUSTER_USER
from tests.support.servers import start_redis

pytestmark = pytest.mark.integration

STORES = ["sqlite", "redis", "redis_cluster", "dynamodb"]


def store_config(
    kind: str, tmp_path: Path, port: int = 0, batch_size: int = 7, cluster_nodes: tuple[str, ...] = ()
) -> StoreConfig:
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
        redis_cluster_nodes=cluster_nodes,
    )


def config_for(kind: str, request, tmp_path: Path) -> StoreConfig:
    """The config of a store of ``kind`` (one of STORES) on the test module's server of that kind."""
    if kind == "redis_cluster":
        return store_config("redis", tmp_path, cluster_nodes=tuple(request.getfixturevalue("redis_cluster").nodes))
    port = request.getfixturevalue(f"{kind}_server").port if kind != "sqlite" else 0
    return store_config(kind, tmp_path, port)


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    s = open_store(config_for(request.param, request, tmp_path))
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


def slot_owners(cluster) -> list[tuple[int, int, int]]:
    """(first slot, last slot, port of the master) per slot range, as the cluster itself reports them."""
    import redis

    with redis.Redis(port=cluster.masters[0].port) as client:
        return [(lo, hi, int(master[1])) for lo, hi, master, *_ in client.execute_command("CLUSTER", "SLOTS")]


def test_a_view_spreads_over_every_master_of_the_cluster(redis_cluster, tmp_path, request):
    import redis

    keys = [encode_key([f"carrier{i}", i]) for i in range(300)]
    with open_store(config_for("redis_cluster", request, tmp_path)) as store:
        assert store.write("spread.v1", [rec(k, 1, 0, i) for i, k in enumerate(keys)]).written == len(keys)
        got = store.read([("spread.v1", keys)], 0)[0]
    assert [json.loads(p)["x"] for p in got] == list(range(len(keys)))
    # Independently: CRC16/XMODEM (binascii.crc_hqx) of each key modulo 16384 slots, and the slot ranges the
    # cluster reports, give how many keys each master holds.
    owners = slot_owners(redis_cluster)
    expected = dict.fromkeys((m.port for m in redis_cluster.masters), 0)
    for k in keys:
        slot = binascii.crc_hqx(f"spread.v1:{k}".encode(), 0) % 16384
        (port,) = [p for lo, hi, p in owners if lo <= slot <= hi]
        expected[port] += 1
    counted = {}
    for master in redis_cluster.masters:
        with redis.Redis(port=master.port) as client:
            counted[master.port] = sum(1 for _ in client.scan_iter(match="spread.v1:*"))
    assert counted == expected
    assert all(n > 50 for n in counted.values()), counted  # about a third each


def test_the_cluster_as_an_acl_user_with_the_password_from_the_environment(redis_cluster, tmp_path, monkeypatch):
    import redis

    from featurelake.online.backends.redis import PASSWORD_ENV

    config = dataclasses.replace(
        store_config("redis", tmp_path, cluster_nodes=tuple(redis_cluster.nodes)), redis_username=CLUSTER_USER
    )
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    # A cluster client connects when opened (to learn the slots); redis-py wraps the refusal
    with pytest.raises(redis.exceptions.RedisClusterException, match="invalid username-password"):
        open_store(config)
    monkeypatch.setenv(PASSWORD_ENV, CLUSTER_PASSWORD)
    keys = [encode_key(["acl", i]) for i in range(30)]  # over many slots, so over every master
    with open_store(config) as store:
        assert store.write("acl.v1", [rec(k, 1, 0, i) for i, k in enumerate(keys)]).written == len(keys)
        assert [json.loads(p)["x"] for p in store.read([("acl.v1", keys)], 0)[0]] == list(range(len(keys)))


def test_cluster_writes_and_reads_follow_slots_moved_after_the_store_was_opened(redis_cluster, tmp_path, request):
    import subprocess

    import redis

    keys = [encode_key(["moved", i]) for i in range(300)]
    with open_store(config_for("redis_cluster", request, tmp_path)) as store:
        store.read([("moved.v1", keys[:1])], 0)  # the slot map is learned now
        first, second = redis_cluster.masters[:2]
        ids = []
        for master in (first, second):
            with redis.Redis(port=master.port) as client:
                ids.append(client.execute_command("CLUSTER", "MYID").decode())
        before = slot_owners(redis_cluster)
        subprocess.run(
            ["redis-cli", "--cluster", "reshard", redis_cluster.nodes[0], "--cluster-from", ids[0], "--cluster-to",
             ids[1], "--cluster-slots", "2000", "--cluster-yes"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        after = slot_owners(redis_cluster)

        def owner(ranges, key: str) -> int:
            slot = binascii.crc_hqx(f"moved.v1:{key}".encode(), 0) % 16384
            return next(p for lo, hi, p in ranges if lo <= slot <= hi)

        # keys the store's slot map (learned before) sends to the first master, which now answers MOVED
        redirected = [k for k in keys if owner(before, k) == first.port and owner(after, k) == second.port]
        assert len(redirected) > 10
        assert store.write("moved.v1", [rec(k, 2, 0, i) for i, k in enumerate(keys)]).written == len(keys)
        assert store.write("moved.v1", [rec(k, 1, 0, -i) for i, k in enumerate(keys)]).skipped == len(keys)
        assert [json.loads(p)["x"] for p in store.read([("moved.v1", keys)], 0)[0]] == list(range(len(keys)))
