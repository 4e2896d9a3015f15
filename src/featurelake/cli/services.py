"""Local services: ``featurelake services start|stop|status`` (``make up`` / ``make down``)."""

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


def stop() -> None:
    """Stop every service this repository started (by its recorded pid); data stays for the next start."""
    from featurelake.config import get_settings
    from featurelake.services.postgres import Postgres

    server = Postgres.from_settings(get_settings())
    pid = server.stop()
    console.print(f"PostgreSQL stopped (pid {pid})" if pid else "PostgreSQL was not running", highlight=False)


def status() -> None:
    """Show each local service: running or not, pid, address, data folder, databases."""
    from featurelake.config import get_settings
    from featurelake.services.postgres import Postgres

    server = Postgres.from_settings(get_settings())
    if (pid := server.running_pid()) is None:
        console.print(f"PostgreSQL  stopped  {server.address}  data in {server.data_dir}", highlight=False)
        return
    databases = ", ".join(d for d in server.databases() if not d.startswith("template") and d != "postgres")
    console.print(
        f"PostgreSQL  running  {server.address}  pid {pid}  data in {server.data_dir}  databases: {databases or '-'}",
        highlight=False,
    )
