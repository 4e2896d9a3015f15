"""The synthetic history generator (features/flights/synthetic.py): deterministic, every day, unique flight keys,
each flight a real flight of the same calendar day moved to its date, the UTC hours recomputed."""

from __future__ import annotations

import datetime as dt
import filecmp
from zoneinfo import ZoneInfo

import pandas as pd

from features.flights.synthetic import generate, read_real, real_data

LEAP_YEAR = (dt.date(2016, 1, 1), dt.date(2016, 12, 31))
COLUMNS_KEPT = ["dep_time", "sched_dep_time", "dep_delay", "arr_time", "arr_delay", "carrier", "tailnum", "origin"]


def test_a_leap_years_history_is_deterministic_complete_and_drawn_from_the_same_calendar_day(tmp_path):
    written = generate(tmp_path / "a", LEAP_YEAR[0], LEAP_YEAR[1], 7, seed=3)
    generate(tmp_path / "b", LEAP_YEAR[0], LEAP_YEAR[1], 7, seed=3)
    generate(tmp_path / "c", LEAP_YEAR[0], LEAP_YEAR[1], 7, seed=4)
    assert all(
        filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False) for f in ("flights.csv", "weather.csv")
    )
    assert not filecmp.cmp(tmp_path / "a" / "flights.csv", tmp_path / "c" / "flights.csv", shallow=False)

    flights = pd.read_csv(tmp_path / "a" / "flights.csv", dtype=str, keep_default_na=False)
    generate(tmp_path / "d", dt.date(2016, 2, 28), dt.date(2016, 3, 1), 7, seed=3)  # a day's rows: its date's only
    dates = pd.to_datetime(flights[["year", "month", "day"]].astype(int))
    days_of_a = flights[dates.between(pd.Timestamp(2016, 2, 28), pd.Timestamp(2016, 3, 1))].reset_index(drop=True)
    d = pd.read_csv(tmp_path / "d" / "flights.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(d, days_of_a)
    assert len(d) == 3 * 7
    days = 366  # with a 29 February
    assert written["flights.csv"] == len(flights) == 7 * days
    assert (
        dates.nunique() == days
        and dates.min() == pd.Timestamp(2016, 1, 1)
        and dates.max() == pd.Timestamp(2016, 12, 31)
    )
    assert not flights.duplicated(["year", "month", "day", "carrier", "flight", "origin"]).any()
    assert list(flights.columns) == list(read_real("flights.csv").columns)

    real = read_real("flights.csv")
    real_rows = set(map(tuple, real[["month", "day", *COLUMNS_KEPT]].itertuples(index=False)))
    feb29 = (flights.month == "2") & (flights.day == "29")
    same_day = flights[["month", "day", *COLUMNS_KEPT]].assign(day=flights.day.where(~feb29, "28"))
    assert all(tuple(r) in real_rows for r in same_day.itertuples(index=False))

    for row in flights.sample(50, random_state=1).itertuples():
        local = dt.datetime(
            int(row.year), int(row.month), int(row.day), int(row.hour), tzinfo=ZoneInfo("America/New_York")
        )
        assert row.time_hour == local.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    weather = pd.read_csv(tmp_path / "a" / "weather.csv", dtype=str, keep_default_na=False)
    assert written["weather.csv"] == len(weather) > 3 * 20 * days  # three airports, (nearly) every hour
    assert not weather.duplicated(["origin", "time_hour"]).any()
    assert set(weather[(weather.month == "12") & (weather.day == "31")].origin) == {"EWR", "JFK", "LGA"}
    assert (tmp_path / "a" / "planes.csv").read_bytes() == (real_data() / "planes.csv").read_bytes()
