"""Window aggregations from tiles against a brute-force pandas computation on random events.

The reference knows nothing of tiles: for every entity and every candidate boundary b it scans all events
with ``b - window <= ts < b``. Events land exactly on tile and window boundaries on purpose.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurelake.compute.aggregations import WindowPlan, rollup, tile_partials
from featurelake.errors import InputError
from featurelake.repo.definitions import Aggregation
from tests.support.direct import direct

BASE = dt.datetime(2013, 1, 1)
SCHEMA = "k string, ts timestamp, x double, cat string"
FUNCTIONS = ["count", "sum", "mean", "min", "max", "count_distinct"]


def make_plan(tile: str, windows: list[str]) -> WindowPlan:
    aggs = [Aggregation(column="cat" if f == "count_distinct" else "x", function=f, windows=windows) for f in FUNCTIONS]
    from featurelake.config import parse_duration

    return WindowPlan("v", ("k",), "ts", parse_duration(tile), tuple(aggs))


HOURLY = make_plan("1h", ["1h", "3h", "1d"])
DAILY = make_plan("1d", ["1d", "2d"])


def reference(events: pd.DataFrame, plan: WindowPlan) -> pd.DataFrame:
    """Brute force: candidate boundaries from each event's tile, every window scanned over all events."""
    tile = plan.tile
    rows = []
    for key, ev in events.groupby("k"):
        starts = {BASE + ((t - BASE) // tile) * tile for t in ev["ts"]}
        bounds = {s + tile for s in starts} | {s + w + tile for s in starts for w in plan.windows}
        for b in sorted(bounds):
            row = {"k": key, "event_timestamp": b}
            for agg in plan.aggregations:
                for w in agg.windows:
                    vals = ev[(ev["ts"] >= b - w) & (ev["ts"] < b)][agg.column].dropna()
                    fn = agg.function
                    if fn == "count":
                        v = len(vals)
                    elif fn == "count_distinct":
                        v = vals.nunique()
                    elif vals.empty:
                        v = None
                    else:
                        v = {"sum": vals.sum, "mean": vals.mean, "min": vals.min, "max": vals.max}[fn]()
                    row[agg.feature_name(w)] = v
            rows.append(row)
    return pd.DataFrame(rows)


def assert_frames_match(got: pd.DataFrame, expected: pd.DataFrame, plan: WindowPlan) -> None:
    keys = ["k", "event_timestamp"]
    got = got.sort_values(keys).reset_index(drop=True)
    expected = expected.sort_values(keys).reset_index(drop=True)
    assert len(got) == len(expected), (len(got), len(expected))
    assert got["k"].tolist() == expected["k"].tolist()
    assert [pd.Timestamp(t) for t in got["event_timestamp"]] == [pd.Timestamp(t) for t in expected["event_timestamp"]]
    assert (got["created_timestamp"] == got["event_timestamp"]).all()
    assert [d for d in got["event_date"]] == [pd.Timestamp(t).date() for t in got["event_timestamp"]]
    for name in plan.feature_names:
        for i, (g, e) in enumerate(zip(got[name], expected[name], strict=True)):
            g_null = g is None or (isinstance(g, float) and math.isnan(g))
            e_null = e is None or (isinstance(e, float) and math.isnan(e))
            assert g_null == e_null, (name, i, g, e, got.iloc[i].to_dict())
            if not g_null:
                assert math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-9), (name, i, g, e)


def to_pandas(df) -> pd.DataFrame:
    return pd.DataFrame([r.asDict() for r in df.collect()])


def event_strategy(plan: WindowPlan, span_tiles: int):
    tile_s = plan.tile_seconds
    offset = st.one_of(
        st.integers(0, span_tiles * tile_s),  # anywhere
        st.integers(0, span_tiles).map(lambda i: i * tile_s),  # exactly on a tile (and window) boundary
        st.integers(1, span_tiles).map(lambda i: i * tile_s - 1),  # the last second of a tile
    )
    event = st.tuples(
        st.sampled_from(["a", "b", "c"]),
        offset,
        st.one_of(st.none(), st.integers(-50, 500).map(float), st.floats(-1e3, 1e3, allow_nan=False)),
        st.one_of(st.none(), st.sampled_from(["JFK", "LAX", "ORD", "SFO"])),
    )
    return st.lists(event, min_size=1, max_size=40)


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(
        [{"k": k, "ts": BASE + dt.timedelta(seconds=o), "x": x, "cat": c} for k, o, x, c in rows],
        columns=["k", "ts", "x", "cat"],
    )


def spark_events(spark, events: pd.DataFrame):
    rows = [(r.k, r.ts.to_pydatetime(), None if pd.isna(r.x) else float(r.x), r.cat) for r in events.itertuples()]
    return spark.createDataFrame(rows, SCHEMA)


# Each example is a Spark job: the property tests run in `make test`, not in the fast tier (`make test-fast`).
SLOW = pytest.mark.slow
SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SLOW
@SETTINGS
@given(rows=event_strategy(HOURLY, span_tiles=60))
def test_hourly_tiles_match_brute_force(spark, rows):
    events = frame(rows)
    got = to_pandas(rollup(tile_partials(spark_events(spark, events), plan=HOURLY), plan=HOURLY))
    assert_frames_match(got, reference(events, HOURLY), HOURLY)


@SLOW
@SETTINGS
@given(rows=event_strategy(DAILY, span_tiles=6))
def test_daily_tiles_match_brute_force(spark, rows):
    events = frame(rows)
    got = to_pandas(rollup(tile_partials(spark_events(spark, events), plan=DAILY), plan=DAILY))
    assert_frames_match(got, reference(events, DAILY), DAILY)


@SLOW
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=event_strategy(HOURLY, span_tiles=60))
def test_direct_recomputation_matches_brute_force(spark, rows):
    events = frame(rows)
    got = to_pandas(direct(spark_events(spark, events), plan=HOURLY))
    assert_frames_match(got, reference(events, HOURLY), HOURLY)


@SLOW
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=event_strategy(HOURLY, span_tiles=60), cut=st.integers(0, 60))
def test_a_rollup_range_needs_only_the_tiles_of_its_windows(spark, rows, cut):
    """Rows from start on, computed from tiles since start - max window - tile, equal the full computation."""
    events = frame(rows)
    start = BASE + cut * HOURLY.tile
    tiles = tile_partials(spark_events(spark, events), plan=HOURLY)
    needed = tiles.where(tiles.tile_start >= start - HOURLY.max_window - HOURLY.tile)
    got = to_pandas(rollup(needed, plan=HOURLY, start=start))
    expected = reference(events, HOURLY)
    expected = expected[expected["event_timestamp"] >= start] if len(expected) else expected
    if expected.empty:
        assert got.empty
    else:
        assert_frames_match(got, expected, HOURLY)


def test_a_window_never_includes_events_at_its_own_timestamp(spark):
    """An event exactly at 01:00 is not in the value stamped 01:00; it leaves the 1h window at 02:00."""
    events = frame([("a", 3600, 7.0, "JFK")])
    got = to_pandas(rollup(tile_partials(spark_events(spark, events), plan=HOURLY), plan=HOURLY))
    by_ts = {pd.Timestamp(r.event_timestamp): r for r in got.itertuples()}
    assert pd.Timestamp(BASE + dt.timedelta(hours=1)) not in by_ts
    at_2h = by_ts[pd.Timestamp(BASE + dt.timedelta(hours=2))]
    at_3h = by_ts[pd.Timestamp(BASE + dt.timedelta(hours=3))]
    assert (at_2h.x_count_1h, at_2h.x_sum_1h, at_2h.cat_count_distinct_1h) == (1, 7.0, 1)
    assert (at_3h.x_count_1h, at_3h.cat_count_distinct_1h, at_3h.x_count_3h) == (0, 0, 1)
    assert at_3h.x_mean_1h is None or math.isnan(at_3h.x_mean_1h)


def test_missing_source_column_is_named(spark):
    df = spark.createDataFrame([("a", BASE)], "k string, ts timestamp")
    with pytest.raises(InputError, match="no column.*x"):
        tile_partials(df, plan=HOURLY)
