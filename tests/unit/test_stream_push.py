"""Push sources without services: pushed columns checked against the source's fields (one line naming the field and
the row), and the online records a push writes (per key its newest row, past-ttl rows left out, values encoded as
materialization writes them), compared with values written out by hand."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest

from featurelake.errors import InputError

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DEFS = """
from featurelake.repo.definitions import (
    Aggregation, Entity, Feature, FeatureView, StreamSource, WindowComputation,
)

origin = Entity(name="origin_airport", join_keys=["origin"])
pushes = StreamSource(
    name="departure_pushes", table="raw.departure_pushes", timestamp_column="dep_ts",
    fields={"flight_id": "bigint", "origin": "string", "dep_delay": "double", "day": "date", "dep_ts": "timestamp",
            "sched_ts": "timestamp", "cancelled": "boolean"},
)
last_departure = FeatureView(
    name="last_departure", entities=[origin], source=pushes, ttl="1h",
    features=[Feature(name="dep_delay", dtype="double"), Feature(name="flight_id", dtype="bigint"),
              Feature(name="sched_ts", dtype="timestamp"), Feature(name="day", dtype="date"),
              Feature(name="cancelled", dtype="boolean")],
)
departures_30m = FeatureView(
    name="departures_30m", entities=[origin], source=pushes,
    computation=WindowComputation(tile="5m", aggregations=[Aggregation(column="flight_id", function="count",
                                                                       windows=["30m"])]),
)
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from featurelake.repo import load_repo

    folder = tmp_path_factory.mktemp("push_repo") / "features"
    folder.mkdir()
    (folder / "defs.py").write_text(textwrap.dedent(DEFS))
    return load_repo(folder)


def check(repo, columns):
    from featurelake.streaming.push import check_rows, push_source

    return check_rows(repo, push_source(repo, "departure_pushes"), columns)


def test_pushed_columns_become_typed_rows(repo):
    rows = check(
        repo,
        {
            "flight_id": [1, 2],
            "origin": ["EWR", "JFK"],
            "dep_delay": [3, None],
            "dep_ts": ["2026-12-02T11:00:00", "2026-12-02T07:30:00-05:00"],
            "day": ["2026-12-02", None],
        },
    )
    assert rows == [
        {"flight_id": 1, "origin": "EWR", "dep_delay": 3.0, "dep_ts": dt.datetime(2026, 12, 2, 11, tzinfo=UTC),
         "day": dt.date(2026, 12, 2), "sched_ts": None, "cancelled": None},
        {"flight_id": 2, "origin": "JFK", "dep_delay": None, "dep_ts": dt.datetime(2026, 12, 2, 12, 30, tzinfo=UTC),
         "day": None, "sched_ts": None, "cancelled": None},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"origin": ["EWR"], "dep_ts": ["2026-12-02T11:00"], "gate": ["A1"]}, r"unknown field\(s\) gate"),
        ({"origin": ["EWR", "JFK"], "dep_ts": ["2026-12-02T11:00"]}, "columns differ in length"),
        ({"origin": ["EWR"]}, r"no column for required field\(s\) dep_ts"),
        ({"dep_ts": ["2026-12-02T11:00"], "flight_id": [1]}, r"no column for required field\(s\) origin"),
        ({"origin": ["EWR", None], "dep_ts": ["2026-12-02T11:00"] * 2}, "row 1: field origin is null"),
        ({"origin": ["EWR", "JFK"], "dep_ts": ["2026-12-02T11:00", "noon"]}, "row 1: field dep_ts: 'noon' is not"),
        ({"origin": ["EWR"], "dep_ts": ["2026-12-02T11:00"], "flight_id": ["7"]}, "row 0: field flight_id: '7' is"),
        ({"origin": ["EWR"], "dep_ts": ["2026-12-02T11:00"], "flight_id": [1.5]}, "field flight_id: 1.5 is not a"),
        ({"origin": ["EWR"], "dep_ts": ["2026-12-02T11:00"], "dep_delay": [True]}, "field dep_delay: True is not"),
        ({"origin": ["EWR"], "dep_ts": ["2026-12-02T11:00"], "cancelled": ["yes"]}, "'yes' is not a boolean"),
        ({"origin": [1], "dep_ts": ["2026-12-02T11:00"]}, "row 0: field origin: 1 is not a string"),
        ({}, "no rows"),
    ],
)
def test_a_bad_push_is_refused_naming_the_field_and_row(repo, columns, message):
    with pytest.raises(InputError, match=message):
        check(repo, columns)


def test_unknown_source_and_mode_are_refused(repo):
    from featurelake.streaming.push import PushMode, push_source

    with pytest.raises(InputError, match=r"no push source 'nope' \(stream sources: departure_pushes\)"):
        push_source(repo, "nope")
    with pytest.raises(InputError, match="to 'both': give one of online, offline, online_and_offline"):
        PushMode.parse("both")


def test_online_records_hold_each_keys_newest_row_within_the_ttl(repo):
    from featurelake.streaming.push import online_push_views, online_records

    (view,) = online_push_views(repo, repo.sources["departure_pushes"])  # the window view is computed, not pushed
    assert view.name == "last_departure"
    rows = check(
        repo,
        {
            "flight_id": [1, 2, 3, 4, 5],
            "origin": ["EWR", "EWR", "JFK", "LGA", "EWR"],
            "dep_delay": [1.0, 2.0, 3.0, 4.0, None],
            "dep_ts": ["2026-12-02T11:10", "2026-12-02T11:40", "2026-12-02T11:20", "2026-12-02T10:59:59",
                       "2026-12-02T11:30"],
            "sched_ts": ["2026-12-02T11:00", None, None, None, None],
            "day": ["2026-12-02", "2026-12-01", None, None, None],
            "cancelled": [None, False, True, None, None],
        },
    )  # fmt: skip
    records = {r.key: r for r in online_records(repo, view, rows, NOW)}
    assert set(records) == {'["EWR"]', '["JFK"]'}  # LGA's row is past the 1h ttl at NOW
    ewr_ts = int(dt.datetime(2026, 12, 2, 11, 40, tzinfo=UTC).timestamp()) * 1_000_000
    assert records['["EWR"]'].ts == ewr_ts
    assert records['["EWR"]'].cts == int(NOW.timestamp()) * 1_000_000
    assert records['["EWR"]'].exp_ms == ewr_ts // 1000 + 3_600_000
    assert records['["EWR"]'].cutoff_us is None
    # days since the epoch for dates, as materialization's to_json writes them; null features are absent
    assert json.loads(records['["EWR"]'].payload) == {"dep_delay": 2.0, "flight_id": 2, "day": 20788,
                                                      "cancelled": False}  # fmt: skip
    assert json.loads(records['["JFK"]'].payload) == {"dep_delay": 3.0, "flight_id": 3, "cancelled": True}
    sched = check(repo, {"origin": ["EWR"], "dep_ts": ["2026-12-02T11:50"], "sched_ts": ["1970-01-01T00:00:01"]})
    (record,) = online_records(repo, view, sched, NOW)
    assert json.loads(record.payload) == {"sched_ts": 1_000_000}


def test_stream_run_leaves_push_only_sources_out(repo):
    from featurelake.streaming.engine import stream_plans

    assert repo.sources["departure_pushes"].topic is None
    with pytest.raises(InputError, match="no feature view reads a stream source"):
        stream_plans(repo, None)
    with pytest.raises(InputError, match="'departures_30m' does not read a stream source with a Kafka topic"):
        stream_plans(repo, ["departures_30m"])
