"""``featurelake metastore migrate``: the embedded Derby catalog's tables registered in the configured metastore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featurelake.cli.output import console


def migrate(
    derby_dir: Annotated[
        Path | None,
        typer.Option("--from", help="the Derby metastore folder (default: storage.metastore.derby_dir)"),
    ] = None,
) -> None:
    """Register every database and table of the old embedded Derby metastore in the configured one (by location:
    no data is copied). Checks everything first; safe to run again."""
    from featurelake.config import get_settings
    from featurelake.errors import InputError
    from featurelake.services.derby_migration import migrate as register_all
    from featurelake.services.derby_migration import read_derby_catalog, require_derby_catalog
    from featurelake.spark import get_spark

    settings = get_settings()
    if settings.storage.metastore.kind == "derby":
        raise InputError("the configured metastore is the Derby one: set storage.metastore.kind (postgres, jdbc...)")
    source = (derby_dir or Path(settings.path(settings.storage.metastore.derby_dir))).resolve()
    require_derby_catalog(source)  # before Spark starts: a wrong path writes nothing
    spark = get_spark(settings)
    catalog = read_derby_catalog(spark, source)
    registered = register_all(spark, catalog, lambda line: console.print(line, highlight=False))
    console.print(
        f"{registered} table(s) registered, {len(catalog.tables) - registered} already there; "
        f"the Derby catalog in {source} is no longer used (delete it once you are satisfied)",
        highlight=False,
    )
