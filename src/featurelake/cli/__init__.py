"""The ``featurelake`` command line: one Typer app, commands grouped by concern in this package."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

from featurelake.errors import FeaturelakeError

app = typer.Typer(
    name="featurelake",
    help="Batch feature engineering on Spark, dbt and Delta Lake.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True, soft_wrap=True)

# Command modules register themselves on `app` when imported.
from featurelake.cli import (  # noqa: E402,F401
    compute,  # noqa: E402,F401
    data,
    monitor,
    online,  # noqa: E402,F401
    pipeline,
    registry,
    training,  # noqa: E402,F401
    validate,  # noqa: E402,F401
)


def main() -> None:
    """Entry point: user errors print one readable message and exit 2, without a traceback."""
    try:
        app()
    except FeaturelakeError as exc:
        message = "\n".join([str(exc), *getattr(exc, "__notes__", ())])
        err_console.print(Text.assemble(("error: ", "bold red"), message), highlight=False)
        sys.exit(2)
