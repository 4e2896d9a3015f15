"""The materialization transform against a brute-force point-in-time reference, on small random data."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from featurelake.online.encoding import NO_CREATED
from featurelake.online.materialize import latest_values, to_micros
from featurelake.repo.definitions import Feature, ValueType

T0 = dt.datetime(2013, 1, 1, tzinfo=dt.UTC)
FEATS = [Feature(name="x", dtype=ValueType.DOUBLE), Feature(name="n", dtype=ValueType.INT64)]


def _rows(seed: int) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    for _ in range(120):
        ts = T0 + dt.timedelta(hours=rng.randrange(96))
        created = rng.choice([None, ts + dt.timedelta(minutes=rng.randrange(3))])
        rows.append(
            (rng.choice(["a", "b"]), rng.randrange(4), ts, created, rng.choice([None, rng.random()]), rng.randrange(9))
        )
    return rows


def _reference(rows, as_of, ttl):
    best = {}
    for k1, k2, ts, created, x, n in rows:
        if ts > as_of or (ttl and ts < as_of - ttl):
            continue
        rank = (ts, created or dt.datetime.min.replace(tzinfo=dt.UTC))
        key = (k1, str(k2))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, {"x": x, "n": n})
    return best


@pytest.mark.parametrize("ttl", [None, dt.timedelta(hours=20)])
@pytest.mark.parametrize("seed", [1, 2])
def test_latest_values_match_brute_force(spark, seed, ttl):
    rows = _rows(seed)
    # ties in (ts, created) with different values would make the reference ambiguous: keep the first
    seen, unique = set(), []
    for r in rows:
        if (r[0], r[1], r[2], r[3]) not in seen:
            seen.add((r[0], r[1], r[2], r[3]))
            unique.append(r)
    df = spark.createDataFrame(unique, "k1 string, k2 int, ts timestamp, created timestamp, x double, n bigint")
    as_of = T0 + dt.timedelta(hours=60)
    out = latest_values(df, keys=["k1", "k2"], timestamp="ts", created="created", features=FEATS, as_of=as_of,
                        ttl=ttl, clock_offset_ms=1000).collect()  # fmt: skip
    ref = _reference(unique, as_of, ttl)
    got = {(r.k1, r.k2): r for r in out if r.payload is not None}
    assert set(got) == set(ref)
    for key, (rank, values) in ref.items():
        r = got[key]
        assert json.loads(r.payload) == {k: v for k, v in values.items() if v is not None}
        assert r.ts == to_micros(rank[0])
        assert r.cts == (NO_CREATED if rank[1].year == 1 else to_micros(rank[1]))
        if ttl:
            assert r.exp_ms == r.ts // 1000 + int(ttl.total_seconds() * 1000) + 1000
    deletes = {(r.k1, r.k2) for r in out if r.payload is None}
    if ttl:  # keys with rows but no valid one get a conditional delete at the ttl cutoff
        assert deletes == {(r[0], str(r[1])) for r in unique} - set(ref)
        assert {r.cutoff_us for r in out} == {to_micros(as_of - ttl)}
    else:
        assert deletes == set()
