"""Property tests: the point-in-time join against a brute-force reference written independently in pandas.

Random data with many exact timestamp ties (a coarse grid of instants), created-timestamp tie-breaks (some
null), ttl boundaries (the grid step divides every ttl), null keys, duplicate entity rows, a composite key
and two views whose features share names (full_feature_names), under several session time zones.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from featurelake.offline.pit import METHODS, ViewInput, point_in_time_join

UTC = dt.UTC
BASE = dt.datetime(2024, 3, 9, 0, 0, tzinfo=UTC)  # spans the 2024-03-10 DST change in America/Los_Angeles
STEP = dt.timedelta(hours=3)
K1 = st.sampled_from(["a", "b", "c", None])
K2 = st.sampled_from([1, 2, None])
SLOT = st.integers(0, 24)  # 25 instants 3h apart: many exact ties over three days


def at(slot: int) -> dt.datetime:
    return BASE + slot * STEP


entity_rows = st.lists(st.tuples(K1, K2, SLOT, st.integers(0, 1)), min_size=1, max_size=25)
route_rows = st.lists(
    st.tuples(K1, K2, SLOT, st.one_of(st.none(), st.integers(0, 3)), st.integers(-50, 50)), max_size=40
)
carrier_rows = st.lists(st.tuples(K1, SLOT, st.one_of(st.none(), st.integers(0, 3)), st.integers(-50, 50)), max_size=30)
TTLS = st.sampled_from([None, dt.timedelta(hours=3), dt.timedelta(hours=6), dt.timedelta(days=1), dt.timedelta(days=2)])
BUCKETS = st.sampled_from([dt.timedelta(hours=1), dt.timedelta(hours=5), dt.timedelta(days=1), dt.timedelta(days=7)])
ZONES = st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Kolkata"])


def reference(entities: pd.DataFrame, feats: pd.DataFrame, keys: list[str], ttl, value: str) -> list:
    """For each entity row: the value of the latest feature row (ties: latest created, null created lowest)."""
    out = []
    for _, e in entities.iterrows():
        if any(pd.isna(e[k]) for k in keys):
            out.append(None)
            continue
        best, best_order = None, None
        for _, f in feats.iterrows():
            if any(pd.isna(f[k]) or f[k] != e[k] for k in keys):
                continue
            if f["ts"] > e["ts"] or (ttl is not None and f["ts"] < e["ts"] - ttl):
                continue
            order = (f["ts"], -1 if pd.isna(f["created"]) else f["created"])
            if best_order is None or order > best_order:
                best, best_order = f[value], order
        out.append(best)
    return out


def _entities_df(spark, rows):
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("origin", T.StringType()),
            T.StructField("dest", T.LongType()),
            T.StructField("event_timestamp", T.TimestampType()),
            T.StructField("label", T.IntegerType()),
        ]
    )
    return spark.createDataFrame([(k1, k2, at(s), lab) for k1, k2, s, lab in rows], schema)


def _features_df(spark, rows, keys):
    from pyspark.sql import types as T

    fields = [T.StructField("origin", T.StringType())]
    if "dest" in keys:
        fields.append(T.StructField("dest", T.LongType()))
    fields += [
        T.StructField("ts", T.TimestampType()),
        T.StructField("created", T.TimestampType()),
        T.StructField("ts_date", T.DateType()),
        T.StructField("v", T.DoubleType()),
    ]
    data = [
        (
            *r[: len(keys)],
            at(r[len(keys)]),
            None if r[-2] is None else BASE + dt.timedelta(minutes=r[-2]),
            at(r[len(keys)]).date(),
            float(r[-1]),
        )
        for r in rows
    ]
    return spark.createDataFrame(data, T.StructType(fields))


def _dedupe(rows, n_keys):
    """Feature rows unique on (keys, ts, created): the contract does not order rows equal on all three."""
    seen, out = set(), []
    for r in rows:
        ident = r[: n_keys + 2]
        if ident not in seen:
            seen.add(ident)
            out.append(r)
    return out


def run_and_compare(spark, ents, routes, carriers, ttl_a, ttl_b, bucket, method="window"):
    from pyspark.sql import functions as F

    routes, carriers = _dedupe(routes, 2), _dedupe(carriers, 1)
    edf = _entities_df(spark, ents)
    views = [
        ViewInput(
            "route",
            _features_df(spark, routes, ["origin", "dest"]),
            ["origin", "dest"],
            ["v"],
            "ts",
            "created",
            "ts_date",
            ttl_a,
        ),
        ViewInput(
            "carrier", _features_df(spark, carriers, ["origin"]), ["origin"], ["v"], "ts", "created", None, ttl_b
        ),
    ]
    out = point_in_time_join(edf, views, full_feature_names=True, skew_bucket=bucket, method=method)
    got = Counter(
        tuple(r)
        for r in out.select(
            "origin", "dest", F.unix_micros("event_timestamp"), "label", "route__v", "carrier__v"
        ).collect()
    )

    micros = lambda s: int((at(s) - dt.datetime(1970, 1, 1, tzinfo=UTC)) / dt.timedelta(microseconds=1))  # noqa: E731
    e = pd.DataFrame(
        [(k1, k2, at(s), lab, micros(s)) for k1, k2, s, lab in ents], columns=["origin", "dest", "ts", "label", "us"]
    )
    fa = pd.DataFrame(
        [(a, b, at(s), c, float(v)) for a, b, s, c, v in routes], columns=["origin", "dest", "ts", "created", "v"]
    )
    fb = pd.DataFrame([(a, at(s), c, float(v)) for a, s, c, v in carriers], columns=["origin", "ts", "created", "v"])
    ra = reference(e, fa, ["origin", "dest"], ttl_a, "v")
    rb = reference(e, fb, ["origin"], ttl_b, "v")
    want = Counter(
        tuple(None if pd.isna(x) else x for x in (k1, k2, us, lab, a, b))
        for (k1, k2, us, lab), a, b in zip(
            e[["origin", "dest", "us", "label"]].itertuples(index=False, name=None), ra, rb, strict=True
        )
    )
    assert got == want
    assert out.count() == len(ents)


@pytest.mark.slow  # 14 examples per method, each a Spark job: in `make test`, not in `make test-fast`
@pytest.mark.parametrize("method", METHODS)
@settings(
    max_examples=14,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking re-runs Spark jobs for minutes
)
@given(ents=entity_rows, routes=route_rows, carriers=carrier_rows, ttl_a=TTLS, ttl_b=TTLS, bucket=BUCKETS, tz=ZONES)
def test_join_matches_brute_force(spark, method, ents, routes, carriers, ttl_a, ttl_b, bucket, tz):
    ents = ents + ents[: len(ents) // 3]  # exact duplicate entity rows must all come back
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", tz)
    try:
        run_and_compare(spark, ents, routes, carriers, ttl_a, ttl_b, bucket, method)
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)


@pytest.mark.parametrize("tz", ["America/Los_Angeles", "UTC"])
def test_ttl_boundary_across_dst_in_a_non_utc_session(spark, tz):
    """A 1-day ttl is 24 hours of instants, even over the night the clocks change in the session's zone."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    event = dt.datetime(2024, 3, 10, 12, 0, tzinfo=UTC)  # 05:00 PDT, the day after 2024-03-10 02:00 PST
    feats = [
        ("x", event - dt.timedelta(days=1), 1.0),  # exactly ttl old: inside (bound inclusive)
        ("y", event - dt.timedelta(days=1, seconds=1), 2.0),  # one second too old
        ("z", event - dt.timedelta(hours=23), 3.0),  # an hour-based mistake (local days) would drop this
        ("w", event, 4.0),  # same instant as the event: known, taken
    ]
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", tz)
    try:
        fdf = spark.createDataFrame(
            [(k, ts, ts.date(), v) for k, ts, v in feats],
            "k string, ts timestamp, d date, v double",
        )
        edf = spark.createDataFrame(
            [(k, event) for k in "xyzw"],
            T.StructType([T.StructField("k", T.StringType()), T.StructField("event_timestamp", T.TimestampType())]),
        )
        out = point_in_time_join(edf, [ViewInput("f", fdf, ["k"], ["v"], "ts", None, "d", dt.timedelta(days=1))])
        got = {
            r["k"]: (r["v"], r["us"])
            for r in out.select("k", "v", F.unix_micros("event_timestamp").alias("us")).collect()
        }
        assert spark.conf.get("spark.sql.session.timeZone") == tz
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    event_us = int((event - dt.datetime(1970, 1, 1, tzinfo=UTC)) / dt.timedelta(microseconds=1))
    assert got == {"x": (1.0, event_us), "y": (None, event_us), "z": (3.0, event_us), "w": (4.0, event_us)}


def test_no_ttl_match_from_an_earlier_bucket_survives_a_later_row_in_the_entity_bucket(spark):
    """Regression (found by the property test): without ttl, the row carried into an entity's bucket is the last
    of the earlier buckets, even when the entity's own bucket holds a feature row later than the entity."""
    run_and_compare(
        spark,
        ents=[("c", None, 10, 1)],
        routes=[],
        carriers=[("c", 4, None, -32), ("c", 12, None, -34)],
        ttl_a=None,
        ttl_b=None,
        bucket=dt.timedelta(days=1),
    )
