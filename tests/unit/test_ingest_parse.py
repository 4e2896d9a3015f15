"""Raw parsing: local wall times to UTC instants, and rejects with their reasons."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

from pyspark.sql import functions as F

from features.flights import ingest as I

NY = ZoneInfo("America/New_York")


def reference_utc(day: dt.date, hhmm: int, tz: ZoneInfo) -> dt.datetime:
    """Independent reference: Python's zoneinfo (fold=0: gaps shift forward, overlaps take the earlier offset)."""
    h, m = divmod(hhmm, 100)
    local = dt.datetime.combine(day + dt.timedelta(days=h // 24), dt.time(h % 24, m), tzinfo=tz)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def test_local_hhmm_to_utc_matches_zoneinfo_across_dst(spark):
    rng = random.Random(7)
    cases = [
        (dt.date(2013, 1, 1) + dt.timedelta(days=rng.randrange(365)), rng.randrange(24) * 100 + rng.randrange(60))
        for _ in range(400)
    ]
    # DST edges in 2013: spring forward 2013-03-10 02:00 local, fall back 2013-11-03 02:00 local; 2400 rolls over.
    cases += [(dt.date(2013, 3, 10), t) for t in (159, 200, 230, 259, 300)]
    cases += [(dt.date(2013, 11, 3), t) for t in (59, 100, 130, 159, 200, 230)]
    cases += [(dt.date(2013, 12, 31), 2400), (dt.date(2013, 3, 9), 2400), (dt.date(2013, 1, 1), 0)]
    df = spark.createDataFrame(cases, "d date, hhmm int")
    got = df.select("d", "hhmm", I.local_hhmm_to_utc(F.col("d"), F.col("hhmm"), "America/New_York").alias("utc"))
    mismatches = [
        (r.d, r.hhmm, r.utc, reference_utc(r.d, r.hhmm, NY))
        for r in got.collect()
        if r.utc != reference_utc(r.d, r.hhmm, NY)
    ]
    assert mismatches == []


def test_invalid_local_times_are_null(spark):
    df = spark.createDataFrame([(dt.date(2013, 1, 1), 1261), (dt.date(2013, 1, 1), -5)], "d date, hhmm int")
    out = df.select(I.local_hhmm_to_utc(F.col("d"), F.col("hhmm"), "America/New_York").alias("u")).collect()
    assert [r.u for r in out] == [None, None]


def _raw(spark, rows: list[tuple], source: I.RawSource):
    cols = [f.name for f in source.fields]
    df = spark.createDataFrame(rows, ", ".join(f"{c} string" for c in cols))
    return df.withColumn(I.CORRUPT, F.lit(None).cast("string")).withColumn("_source_file", F.lit("mem"))


def test_flights_parse_times_and_reasons(spark):
    good = (
        "2013",
        "1",
        "1",
        "517",
        "515",
        "2",
        "830",
        "819",
        "11",
        "UA",
        "1545",
        "N14228",
        "EWR",
        "IAH",
        "227",
        "1400",
        "5",
        "15",
        "2013-01-01T10:00:00Z",
    )
    overnight = (
        "2013",
        "6",
        "30",
        None,
        "2359",
        None,
        None,
        "300",
        None,
        "B6",
        "1",
        "N1",
        "JFK",
        "LAX",
        None,
        "2475",
        "23",
        "59",
        "2013-07-01T03:00:00Z",
    )
    bad_number = good[:5] + ("abc",) + good[6:]
    bad_date = ("2013", "2", "30") + good[3:]
    missing_carrier = good[:9] + (None,) + good[10:]
    fractional_int = good[:10] + ("15.5",) + good[11:]
    typed = I.type_columns(
        _raw(spark, [good, overnight, bad_number, bad_date, missing_carrier, fractional_int], I.FLIGHTS), I.FLIGHTS
    )
    zones = spark.createDataFrame(
        [("IAH", "America/Chicago"), ("LAX", "America/Los_Angeles")], "faa string, tzone string"
    )
    rows = I.parse_flights(typed, zones, "America/New_York").collect()
    by_reason = [r._reasons for r in rows]
    assert by_reason[0] == [] and by_reason[1] == []
    assert by_reason[2] == ["dep_delay: cannot parse 'abc' as double"]
    assert by_reason[3] == ["year/month/day: not a calendar date"]
    assert by_reason[4] == ["carrier: missing"]
    assert by_reason[5] == ["flight: cannot parse '15.5' as int"]

    first = rows[0]
    assert first.sched_dep_ts == reference_utc(dt.date(2013, 1, 1), 515, NY)
    assert first.dep_ts == first.sched_dep_ts + dt.timedelta(minutes=2)
    assert first.sched_arr_ts == reference_utc(dt.date(2013, 1, 1), 819, ZoneInfo("America/Chicago"))
    assert first.arr_ts == first.sched_arr_ts + dt.timedelta(minutes=11)
    assert first.flight_id == "20130101-UA-1545-EWR" and first.flight_date == dt.date(2013, 1, 1)
    # A cancelled red-eye: arrival 03:00 in Los Angeles is on the next local day; no actual times.
    late = rows[1]
    assert late.sched_arr_ts == reference_utc(dt.date(2013, 7, 1), 300, ZoneInfo("America/Los_Angeles"))
    assert late.sched_arr_ts > late.sched_dep_ts
    assert late.cancelled and late.dep_ts is None and late.arr_ts is None
    assert late.time_hour == dt.datetime(2013, 7, 1, 3, 0)


def test_weather_keeps_the_utc_instant_and_the_local_date(spark):
    row = (
        "EWR",
        "2013",
        "11",
        "3",
        "1",
        "50.0",
        "40",
        "70",
        "270",
        "10.3",
        None,
        "0",
        "1012",
        "10",
        "2013-11-03T06:00:00Z",
    )
    out = I.parse_weather(I.type_columns(_raw(spark, [row], I.WEATHER), I.WEATHER)).first()
    assert out.obs_ts == dt.datetime(2013, 11, 3, 6, 0) and out.obs_date == dt.date(2013, 11, 3)
    assert out.wind_gust is None and out._reasons == []
