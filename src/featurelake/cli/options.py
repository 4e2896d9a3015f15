"""Option types shared by the CLI commands (``--start``/``--end`` become a ``featurelake.runs.Interval``)."""

from __future__ import annotations

from typing import Annotated

import typer

StartDate = Annotated[str, typer.Option("--start", help="first day of the data interval, YYYY-MM-DD")]
EndDate = Annotated[str, typer.Option("--end", help="last day of the data interval (inclusive), YYYY-MM-DD")]
