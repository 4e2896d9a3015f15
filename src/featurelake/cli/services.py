"""Local services: ``featurelake services start|stop|status`` (``make up`` / ``make down``), and Spark's servers
started on demand: ``featurelake serve sql`` (``make sql``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from featurelake.cli.output import console

if TYPE_CHECKING:
    from featurelake.config import Settings
    from featurelake.services.spark_server import SparkServer


def spark_servers(settings: Settings) -> list[SparkServer]:
    """Spark's servers this repository starts (``featurelake serve``): stopped and shown with the services."""
    from featurelake.services.thrift import thrift_server

    return [thrift_server(settings)]


def start() -> None:
    """Start the local services (PostgreSQL, the metastore's database); running ones are reused."""
    from featurelake.config import get_settings
    from featurelake.services.postgres import Postgres

    settings = get_settings()
    server = Postgres.from_settings(settings)
    pid, started = server.start()
    state = "started" if started else "already running"
    console.print(f"PostgreSQL {state} on {server.address} (pid {pid}, data in {server.data_dir})", highlight=False)
    metastore = settings.storage.metastore
    if metastore.kind == "postgres" and server.ensure_database(metastore.database):
        console.print(f"created the metastore's database {metastore.database}", highlight=False)
        if (Path(settings.path(metastore.derby_dir)) / "service.properties").is_file():
            console.print(
                f"an embedded Derby catalog is in {metastore.derby_dir}: `featurelake metastore migrate` registers its "
                "tables in this metastore",
                highlight=False,
            )


def stop() -> None:
    """Stop every service this repository started (by its recorded pid); data stays for the next start."""
    from featurelake.config import get_settings
    from featurelake.services.postgres import Postgres

    settings = get_settings()
    for spark_server in spark_servers(settings):  # before the metastore they use
        if (stopped := spark_server.stop(settings)) is not None:
            console.print(f"{spark_server.title} stopped (pid {stopped})", highlight=False)
    server = Postgres.from_settings(settings)
    pid = server.stop()
    console.print(f"PostgreSQL stopped (pid {pid})" if pid else "PostgreSQL was not running", highlight=False)


def status() -> None:
    """Show each local service: running or not, pid, address, data folder, databases."""
    from featurelake.config import get_settings
    from featurelake.services.postgres import Postgres

    settings = get_settings()
    server = Postgres.from_settings(settings)
    if (pid := server.running_pid()) is None:
        console.print(f"PostgreSQL  stopped  {server.address}  data in {server.data_dir}", highlight=False)
    else:
        databases = ", ".join(d for d in server.databases() if not d.startswith("template") and d != "postgres")
        console.print(
            f"PostgreSQL  running  {server.address}  pid {pid}  data in {server.data_dir}  "
            f"databases: {databases or '-'}",
            highlight=False,
        )
    for spark_server in spark_servers(settings):
        running = spark_server.running_pid(settings)
        state = f"running  {spark_server.address}  pid {running}" if running else f"stopped  {spark_server.address}"
        console.print(f"{spark_server.title}  {state}  log {spark_server.log_file(settings)}", highlight=False)


def serve_sql(
    stop_it: Annotated[bool, typer.Option("--stop", help="stop the endpoint instead")] = False,
) -> None:
    """Start the SQL endpoint (Spark's Thrift server, HiveServer2 protocol) in the background on
    127.0.0.1:services.thrift.port for beeline, JDBC/ODBC tools, PyHive and dbt; a running one is reused."""
    from featurelake.config import get_settings
    from featurelake.services.thrift import jdbc_url, thrift_server

    settings = get_settings()
    server = thrift_server(settings)
    if stop_it:
        pid = server.stop(settings)
        console.print(f"{server.title} stopped (pid {pid})" if pid else f"{server.title} was not running")
        return
    if server.running_pid(settings) is None:
        console.print(f"starting {server.title} (log: {server.log_file(settings)})...", highlight=False)
    pid, started = server.start(settings)
    url = jdbc_url(settings)
    console.print(
        f"{server.title} {'started' if started else 'already running'} on {server.address} (pid {pid})\n"
        f"  JDBC URL: {url}\n"
        f"  beeline:  PATH=$PWD/.venv/bin:$PATH beeline -u {url}\n"
        "  `featurelake sql` now runs through it; stop it with `featurelake serve sql --stop` "
        "(or `featurelake services stop` / `make down`, which stop every service)",
        highlight=False,
        soft_wrap=True,
    )
