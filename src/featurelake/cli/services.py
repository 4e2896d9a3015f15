"""Local services: ``featurelake services start|stop|status`` (``make up`` / ``make down``) and the endpoints on
the shared catalog: ``featurelake serve connect`` (``make connect``)."""

from __future__ import annotations

from pathlib import Path

from featurelake.cli.output import console


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


def serve_connect() -> None:
    """Start the notebook endpoint (a Spark Connect server on the shared catalog) in the background unless it runs."""
    from featurelake.config import get_settings
    from featurelake.services.connect import connect_server, connect_url, remote_session
    from featurelake.spark import ensure_databases

    settings = get_settings()
    server = connect_server(settings)
    pid, started = server.start(settings)
    if started:  # featurelake's databases, as every local driver creates them (a notebook writes training.<name>)
        spark = remote_session(settings)
        ensure_databases(spark, settings)
        spark.stop()
    state = "started" if started else "already running"
    console.print(
        f"Spark Connect {state} on {server.address} (pid {pid}, log {server.log_file(settings)})\n"
        f'notebooks: SparkSession.builder.remote("{connect_url(settings)}").getOrCreate()\n'
        "stop it with `featurelake services stop` (`make down`)",
        highlight=False,
    )


def stop() -> None:
    """Stop every service this repository started (by its recorded pid); data stays for the next start."""
    from featurelake.config import get_settings
    from featurelake.services.connect import connect_server
    from featurelake.services.postgres import Postgres

    settings = get_settings()
    endpoint = connect_server(settings)
    if pid := endpoint.stop(settings):  # before the metastore it uses
        console.print(f"Spark Connect stopped (pid {pid})", highlight=False)
    server = Postgres.from_settings(settings)
    pid = server.stop()
    console.print(f"PostgreSQL stopped (pid {pid})" if pid else "PostgreSQL was not running", highlight=False)


def status() -> None:
    """Show each local service: running or not, pid, address, data folder, databases."""
    from featurelake.config import get_settings
    from featurelake.services.connect import connect_server, connect_url
    from featurelake.services.postgres import Postgres

    settings = get_settings()
    endpoint = connect_server(settings)
    pid = endpoint.running_pid(settings)
    running = f"running  {endpoint.address}  pid {pid}  {connect_url(settings)}"
    console.print(f"Spark Connect  {running if pid else 'stopped  ' + endpoint.address}", highlight=False)
    server = Postgres.from_settings(settings)
    if (pid := server.running_pid()) is None:
        console.print(f"PostgreSQL  stopped  {server.address}  data in {server.data_dir}", highlight=False)
        return
    databases = ", ".join(d for d in server.databases() if not d.startswith("template") and d != "postgres")
    console.print(
        f"PostgreSQL  running  {server.address}  pid {pid}  data in {server.data_dir}  databases: {databases or '-'}",
        highlight=False,
    )
