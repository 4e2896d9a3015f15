"""The stream engine's in-memory tiles (``featurelake.streaming.tiles``) against a brute force over random events:
the windows at every boundary straight from the definition (events with ``b - w <= ts < b``), the last boundary of
a key, eviction, and the online records (values, deletes past the ttl, keys memory cannot roll up)."""

from __future__ import annotations

import datetime as dt
import json
import math
import random

import pytest

from featurelake.compute.aggregations import WindowPlan
from featurelake.repo.definitions import Aggregation
from featurelake.streaming.tiles import ViewTiles, online_records

TILE = 60
WINDOWS = (dt.timedelta(minutes=5), dt.timedelta(minutes=30))  # brute() filters on the longest first
AGGS = (
    Aggregation(column="delay", function="mean", windows=WINDOWS),
    Aggregation(column="delay", function="sum", windows=WINDOWS[:1]),
    Aggregation(column="delay", function="min", windows=WINDOWS[1:]),
    Aggregation(column="delay", function="max", windows=WINDOWS[1:]),
    Aggregation(column="flight", function="count", windows=WINDOWS, name="departures"),
    Aggregation(column="flight", function="count_distinct", windows=WINDOWS[1:]),
)
PLAN = WindowPlan("v", ("origin",), "ts", dt.timedelta(seconds=TILE), AGGS)
T0 = 1_764_000_000  # a tile boundary (epoch seconds)


def random_events(rng: random.Random, n: int) -> list[dict]:
    return [
        {
            "origin": rng.choice(["EWR", "JFK", "LGA"]),
            "ts": T0 + rng.randrange(0, 3 * 3600),
            "delay": rng.choice([None, rng.uniform(-20, 120), float(rng.randrange(-5, 30))]),
            "flight": rng.choice([None, *range(40)]),
        }
        for _ in range(n)
    ]


def brute(events: list[dict], origin: str, b: int) -> dict:
    """Every feature of ``origin`` at boundary ``b`` from the events themselves."""
    out = {}
    mine = [e for e in events if e["origin"] == origin and b - 1800 <= e["ts"] < b]  # the longest window
    for agg in AGGS:
        for w in agg.windows:
            inside = [e for e in mine if b - w.total_seconds() <= e["ts"]]
            values = [e[agg.column] for e in inside if e[agg.column] is not None]
            fn = agg.function
            if fn == "count":
                v: object = len(values)
            elif fn == "count_distinct":
                v = len(set(values))
            elif not values:
                v = None
            elif fn == "mean":
                v = math.fsum(values) / len(values)
            elif fn == "sum":
                v = math.fsum(values)
            else:
                v = min(values) if fn == "min" else max(values)
            out[agg.feature_name(w)] = v
    return out


def boundaries(events: list[dict], origin: str) -> set[int]:
    """Where a window of ``origin`` changes: each tile end holding its events, and that plus each window."""
    ends = {e["ts"] - e["ts"] % TILE + TILE for e in events if e["origin"] == origin}
    return ends | {end + int(w.total_seconds()) for end in ends for w in WINDOWS}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (x is None and y is None) or (x is not None and y is not None and abs(x - y) < 1e-9)
        for x, y in ((a[k], b[k]) for k in a)
    )


def filled(events: list[dict], lower: int = T0) -> ViewTiles:
    tiles = ViewTiles(PLAN, lower)
    for e in events:
        tiles.add((e["origin"],), e["ts"], e)
    return tiles


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_windows_at_every_boundary_equal_the_brute_force(seed):
    rng = random.Random(seed)
    events = random_events(rng, 400)
    tiles = filled(events)
    for origin in ["EWR", "JFK", "LGA"]:
        grid = boundaries(events, origin)
        for b in sorted(grid):
            assert same(tiles.values_at((origin,), b), brute(events, origin, b)), (origin, b)
        # the last boundary at or before any time is the grid's
        for at in [T0 + rng.randrange(0, 5 * 3600) for _ in range(50)]:
            want = max((b for b in grid if b <= at), default=None)
            assert tiles.latest_boundary((origin,), at) == want, (origin, at)


def test_tiles_loaded_whole_equal_tiles_added_event_by_event():
    rng = random.Random(4)
    events = random_events(rng, 300)
    by_event = filled(events)
    loaded = ViewTiles(PLAN, T0)
    per_tile: dict[tuple, dict[str, list]] = {}
    for e in events:
        tile = per_tile.setdefault((e["origin"], e["ts"] - e["ts"] % TILE), {"delay": [], "flight": []})
        tile["delay"].append(e["delay"])
        tile["flight"].append(e["flight"])
    for (origin, start), values in per_tile.items():
        loaded.add_tile((origin,), start, values)
    for origin in ["EWR", "JFK", "LGA"]:
        for b in boundaries(events, origin):
            assert loaded.values_at((origin,), b) == by_event.values_at((origin,), b)


def test_eviction_keeps_every_boundary_from_exact_from_exact():
    rng = random.Random(5)
    events = random_events(rng, 400)
    tiles = filled(events)
    lower = T0 + 3600 + 17  # not on a tile: rounded down
    tiles.evict(lower)
    assert tiles.lower == T0 + 3600 and tiles.exact_from() == T0 + 3600 + 1800
    assert not tiles.add(("EWR",), T0 + 3599, {"delay": 1.0, "flight": 1})  # before the bound: refused
    tiles.evict(T0)  # never back
    assert tiles.lower == T0 + 3600
    for origin in ["EWR", "JFK", "LGA"]:
        for b in boundaries(events, origin):
            if b >= tiles.exact_from():
                assert same(tiles.values_at((origin,), b), brute(events, origin, b)), (origin, b)


def test_online_records_hold_the_latest_row_a_delete_past_the_ttl_or_say_memory_cannot_tell():
    rng = random.Random(6)
    events = random_events(rng, 300)
    events.append({"origin": "SFO", "ts": T0 + 10, "delay": 3.0, "flight": 1})  # only early: past the ttl later
    tiles = filled(events)
    at = T0 + 3 * 3600 + 7 * 60 + 5
    ttl = dt.timedelta(hours=1)
    features = [a.feature_name(w) for a in AGGS for w in a.windows]
    keys = [("EWR",), ("JFK",), ("LGA",), ("SFO",)]
    records, unknown = online_records(
        tiles, keys, features=features, at_us=at * 10**6, ttl=ttl, horizon_us=at * 10**6, clock_offset_ms=250
    )
    assert unknown == []
    by_key = {r.key: r for r in records}
    for (origin,) in keys[:3]:
        b = max(x for x in boundaries(events, origin) if x <= at)
        r = by_key[json.dumps([origin], separators=(",", ":"))]
        assert (r.ts, r.cts, r.cutoff_us) == (b * 10**6, b * 10**6, (at - 3600) * 10**6)
        assert r.exp_ms == b * 1000 + 3600 * 1000 + 250
        want = {k: v for k, v in brute(events, origin, b).items() if v is not None}
        assert same(json.loads(r.payload), want)
    sfo = by_key['["SFO"]']
    assert (sfo.payload, sfo.ts, sfo.cutoff_us) == (None, None, (at - 3600) * 10**6)

    # From a lower bound the ttl's cutoff does not clear, memory cannot say whether SFO still has a valid row.
    tiles.evict(at - 3600 - 1800 + TILE)
    records, unknown = online_records(
        tiles, keys[3:], features=features, at_us=at * 10**6, ttl=ttl, horizon_us=at * 10**6, clock_offset_ms=0
    )
    assert (records, unknown) == ([], [("SFO",)])
