"""The ``featurelake`` command line: one Typer app, composed here from the command functions of this package.

Every entry point runs these functions with this parser: the console script (``main``), the ``jobs/`` scripts
spark-submit runs (``run_job``) and, through them, the Airflow tasks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.text import Text

from featurelake.cli import (
    compute,
    data,
    metastore,
    monitor,
    online,
    pipeline,
    registry,
    services,
    stream,
    training,
    validate,
)
from featurelake.cli.output import err_console
from featurelake.config import OVERRIDE_PREFIX
from featurelake.errors import FeaturelakeError

app = typer.Typer(
    name="featurelake",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def options(
    spark_ui: Annotated[
        bool,
        typer.Option(
            "--spark-ui",
            help="the Spark UI (http://localhost:4040 while Spark runs) and an event log for `make history`, "
            "for this command and the jobs it starts",
        ),
    ] = False,
) -> None:
    """Batch feature engineering on Spark, dbt and Delta Lake."""
    if spark_ui:  # a setting override, so that the spark-submit jobs and Airflow tasks started from here inherit it
        os.environ[f"{OVERRIDE_PREFIX}SPARK__UI"] = "true"


COMMANDS: dict[str, Callable[..., None]] = {
    "ingest": data.ingest,
    "dbt-build": compute.dbt_build,
    "compute": compute.compute,
    "backfill": compute.backfill,
    "validate": validate.validate,
    "materialize": online.materialize,
    "promote": online.promote,
    "retire": online.retire,
    "check": monitor.check,
    "status": monitor.status,
    "drift": monitor.drift,
    "skew": monitor.skew,
    "report": monitor.report,
    "plan": registry.plan,
    "apply": registry.apply,
    "list": registry.list_objects,
    "describe": registry.describe,
    "catalog": registry.catalog,
    "sql": data.sql,
    "tables": data.tables,
    "spark-submit": data.spark_submit,
    "run-demo": pipeline.run_demo,
    "demo-stream": stream.demo_stream,
}
for name, command in COMMANDS.items():
    app.command(name)(command)

training_set = typer.Typer(
    help="Point-in-time correct training sets, reproducible from a manifest.", no_args_is_help=True
)
training_set.command("build")(training.build)
training_set.command("rebuild")(training.rebuild)
app.add_typer(training_set, name="training-set")

online_store = typer.Typer(help="Read and check the online store.", no_args_is_help=True)
online_store.command("get")(online.get)
online_store.command("check")(online.check)
app.add_typer(online_store, name="online")

streams = typer.Typer(help="Streaming feature views from Kafka: run them, see their lag.", no_args_is_help=True)
streams.command("run")(stream.run)
streams.command("status")(stream.status)
app.add_typer(streams, name="stream")

local_services = typer.Typer(
    help="Local services (PostgreSQL, Airflow; `stop` and `status` also cover the `serve` endpoints): started on "
    "loopback, stopped by recorded pid.",
    no_args_is_help=True,
)
local_services.command("start")(services.start)
local_services.command("stop")(services.stop)
local_services.command("status")(services.status)
app.add_typer(local_services, name="services")

serve = typer.Typer(
    help="Endpoints on the shared catalog for many clients at once, started in the background on loopback (a "
    "running one is reused); `featurelake services stop` stops them.",
    no_args_is_help=True,
)
serve.command("sql")(services.serve_sql)
serve.command("connect")(services.serve_connect)
serve.command("online")(services.serve_online)
app.add_typer(serve, name="serve")

catalog_store = typer.Typer(
    help="The Hive metastore: move the old embedded Derby catalog into it.", no_args_is_help=True
)
catalog_store.command("migrate")(metastore.migrate)
app.add_typer(catalog_store, name="metastore")


def main(args: list[str] | None = None) -> None:
    """Run a command (default: the process's arguments): a FeaturelakeError prints one readable message and exits 2,
    without a traceback."""
    try:
        app(args=args, prog_name="featurelake")
    except FeaturelakeError as exc:
        message = "\n".join([str(exc), *getattr(exc, "__notes__", ())])
        err_console.print(Text.assemble(("error: ", "bold red"), message), highlight=False)
        sys.exit(2)


def run_job(*command: str) -> None:
    """A ``jobs/`` entry point: ``featurelake <command> <the script's arguments>``, one parser for both."""
    main([*command, *sys.argv[1:]])
