"""The demo pipeline command behind `make run`."""

from __future__ import annotations

from rich.console import Console

from featurelake.cli import app

console = Console()


@app.command("run-demo")
def run_demo() -> None:
    """Run the nightly pipeline on the bundled demo range (conf: ingest.demo_start..demo_end), then list tables."""
    from featurelake.cli.data import tables
    from featurelake.config import get_settings
    from featurelake.ingest import ingest
    from featurelake.spark import get_spark

    settings = get_settings()
    spark = get_spark(settings)
    start, end = settings.ingest.demo_start, settings.ingest.demo_end
    report = ingest(spark, settings, start, end)
    console.print(f"ingested {start}..{end}: {report.rows}; rejects {report.rejects}")
    tables()
