"""``featurelake validate``: run the suites on published intervals and print what failed, with sample rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from featurelake.cli.options import EndDate, StartDate
from featurelake.cli.output import console

if TYPE_CHECKING:
    from featurelake.validation import GateResult


def render(result: GateResult) -> None:
    """A readable summary of one run: status line, failed expectations, sample failing rows, Data Docs."""
    if result.success:
        mark, style = "PASS", "bold green"
    elif result.blocking:
        mark, style = "FAIL", "bold red"
    else:
        mark, style = "WARN", "bold yellow"
    console.print(Text.assemble((f"{mark} ", style), result.headline()), highlight=False)
    console.print(f"  {len(result.outcomes)} expectations, {result.row_count or 0:,} rows", highlight=False)
    if result.failures:
        table = Table(show_lines=True)
        for header in ("expectation", "column(s)", "expected", "observed"):
            table.add_column(header, overflow="fold")
        for o in result.failures:
            table.add_row(o.expectation_type, ", ".join(o.columns) or "-", o.expected, o.observed)
        console.print(table)
        for o in result.failures:
            if not o.sample:
                continue
            keys = list(dict.fromkeys(k for row in o.sample for k in row))
            rows = Table(*keys, title=f"failing rows: {o.label} (sample of {len(o.sample)})", title_justify="left")
            for row in o.sample:
                rows.add_row(*("NULL" if row.get(k) is None else str(row.get(k)) for k in keys))
            console.print(rows)
    if result.data_docs:
        console.print(f"  Data Docs: {result.data_docs}", highlight=False, soft_wrap=True)


def validate(
    start: StartDate,
    end: EndDate,
    view: Annotated[
        list[str] | None,
        typer.Option(
            "--view",
            help="feature view (or raw table, e.g. raw.flights) to validate; repeat for several; default: all",
        ),
    ] = None,
) -> None:
    """Validate published intervals against their suites; exit 1 when a strict view fails."""
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo
    from featurelake.runs import Interval
    from featurelake.spark import get_spark
    from featurelake.tables import table_exists
    from featurelake.validation import import_in_background, resolve_target
    from featurelake.validation import validate as run_validation
    from featurelake.validation.gate import data_docs_index

    interval = Interval.parse(start, end)
    settings = get_settings()
    repo = feature_repo(settings)
    import_in_background()
    spark = get_spark(settings)
    names = list(view or [])
    if not names:  # everything that exists: raw tables first, then every feature view with a catalog table
        candidates = [*repo.raw_tables, *sorted(n for n, v in repo.views.items() if v.offline_table)]
        for name in candidates:
            if table_exists(spark, resolve_target(settings, name, repo).table):
                names.append(name)
            else:
                console.print(f"[yellow]skip[/] {name}: its table does not exist yet", highlight=False)
    blocking = []
    for name in names:
        result = run_validation(spark, settings, name, interval, repo=repo)
        render(result)
        if result.blocking:
            blocking.append(name)
    if settings.validation.data_docs:
        console.print(f"Data Docs index: {data_docs_index(settings)}", highlight=False, soft_wrap=True)
    if blocking:
        console.print(f"[bold red]strict validation failed:[/] {', '.join(blocking)}", highlight=False)
        raise typer.Exit(1)
