"""Option types shared by the CLI commands."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from featurelake.errors import InputError


def parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{value!r} is not a date (expected YYYY-MM-DD)") from None


StartDate = Annotated[str, typer.Option("--start", help="first day of the data interval, YYYY-MM-DD")]
EndDate = Annotated[str, typer.Option("--end", help="last day of the data interval (inclusive), YYYY-MM-DD")]
