"""Local services: ``featurelake services start|stop|status`` (``make up`` / ``make down`` / ``make airflow``) and
the endpoints on the shared catalog: ``featurelake serve sql`` (``make sql``), ``featurelake serve connect``
(``make connect``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from featurelake.cli.output import console

if TYPE_CHECKING:
    from featurelake.config import Settings
    from featurelake.services.process import Daemon


def _say(text: str) -> None:
    console.print(text, highlight=False)


def _background_services(settings: Settings) -> list[Daemon]:
    """Every background service, in start order: the S3, Redis and Kafka servers, the Spark cluster (master,
    workers), Airflow's API server, scheduler and DAG processor, the endpoints."""
    from featurelake.services.airflow import api_server, scheduler_processes
    from featurelake.services.connect import connect_server
    from featurelake.services.kafka import kafka_server
    from featurelake.services.online import online_server
    from featurelake.services.redis import redis_server
    from featurelake.services.s3 import s3_server
    from featurelake.services.spark_cluster import cluster_daemons
    from featurelake.services.thrift import thrift_server

    return [
        s3_server(settings),
        redis_server(settings),
        kafka_server(settings),
        *cluster_daemons(settings),
        api_server(settings),
        *scheduler_processes(),
        thrift_server(settings),
        connect_server(settings),
        online_server(settings),
    ]


def start(
    scheduler: Annotated[
        bool, typer.Option("--scheduler", help="also Airflow's scheduler and DAG processor (scheduled DAG runs)")
    ] = False,
    s3: Annotated[
        bool, typer.Option("--s3", help="also the S3 server (S3Proxy on 127.0.0.1:services.s3.port, data in .state/s3)")
    ] = False,
    redis: Annotated[
        bool,
        typer.Option("--redis", help="also the Redis server (on 127.0.0.1:services.redis.port, data in .state/redis)"),
    ] = False,
    kafka: Annotated[
        bool, typer.Option("--kafka", help="also the Kafka broker (one KRaft node on 127.0.0.1:services.kafka.port)")
    ] = False,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help="the cluster topology (FEATURELAKE_ENV=cluster): also the S3 server and the warehouse's bucket, the "
            "Redis server, the Spark master and workers, and the SQL endpoint on them",
        ),
    ] = False,
) -> None:
    """Start the local services: PostgreSQL (the metastore's and Airflow's databases) and the Airflow API server;
    running ones are reused."""
    import os

    from featurelake.config import get_settings
    from featurelake.services.airflow import api_server, scheduler_processes
    from featurelake.services.kafka import kafka_server
    from featurelake.services.postgres import Postgres
    from featurelake.services.redis import redis_server
    from featurelake.services.s3 import local_credentials_env, s3_server
    from featurelake.services.spark_cluster import check_master_setting, cluster_daemons

    settings = get_settings()
    if cluster:
        check_master_setting(settings)
    server = Postgres.from_settings(settings)
    pid, started = server.start()
    state = "started" if started else "already running"
    _say(f"PostgreSQL {state} on {server.address} (pid {pid}, data in {server.data_dir})")
    metastore = settings.storage.metastore
    if metastore.kind == "postgres" and server.ensure_database(metastore.database):
        _say(f"created the metastore's database {metastore.database}")
        if (Path(settings.path(metastore.derby_dir)) / "service.properties").is_file():
            _say(
                f"an embedded Derby catalog is in {metastore.derby_dir}: `featurelake metastore migrate` registers its "
                "tables in this metastore"
            )
    chosen = [
        *([s3_server(settings)] if s3 or cluster else []),
        *([redis_server(settings)] if redis or cluster else []),
        *([kafka_server(settings)] if kafka else []),
        *(cluster_daemons(settings) if cluster else []),
    ]
    for daemon in [*chosen, api_server(settings), *(scheduler_processes() if scheduler else [])]:
        pid, started = daemon.start(settings)
        where = f" on {daemon.url}" if daemon.port else ""
        state = "started" if started else "already running"
        _say(f"{daemon.title} {state}{where} (pid {pid}, log {daemon.log_file(settings)})")
        if cluster and daemon.name == "s3":
            os.environ.update(local_credentials_env(settings))  # boto3's, and the SQL endpoint's below
            _ensure_warehouse_bucket(settings)
    if cluster:
        _start_cluster_endpoint(settings)


def _ensure_warehouse_bucket(settings: Settings) -> None:
    from featurelake.services.s3 import ensure_bucket, warehouse_bucket

    if (bucket := warehouse_bucket(settings)) is not None:
        created = ensure_bucket(settings, bucket)
        _say(f"{'created' if created else 'found'} the warehouse's bucket {bucket} ({settings.storage.warehouse})")


def _start_cluster_endpoint(settings: Settings) -> None:
    """The executors' Python environment (built unless current) and the SQL endpoint, an application on the cluster."""
    from featurelake.executor_env import ensure_archive
    from featurelake.services.thrift import query, thrift_server

    archive = ensure_archive(settings)
    _say(f"executors' Python environment: {archive} ({archive.stat().st_size / 2**20:.0f} MiB)")
    server = thrift_server(settings)
    pid, started = server.start(settings)
    if started:  # featurelake's databases, as every driver creates them (their folders in the warehouse's bucket)
        for name in settings.storage.databases:
            query(settings, f"CREATE DATABASE IF NOT EXISTS `{name}`", 0)
    _say(f"{server.title} {'started' if started else 'already running'} on {server.address} (pid {pid}, log "
         f"{server.log_file(settings)})")  # fmt: skip


def stop() -> None:
    """Stop every service this repository started (by its recorded pid); data stays for the next start."""
    from featurelake.config import get_settings
    from featurelake.services.postgres import Postgres

    settings = get_settings()
    for daemon in reversed(_background_services(settings)):  # before the databases they use
        if (pid := daemon.stop(settings)) is not None:
            _say(f"{daemon.title} stopped (pid {pid})")
    server = Postgres.from_settings(settings)
    pid = server.stop()
    _say(f"PostgreSQL stopped (pid {pid})" if pid else "PostgreSQL was not running")


def status() -> None:
    """Show each local service: running or not, pid, address, data folder, databases."""
    from featurelake.config import get_settings
    from featurelake.services.postgres import Postgres

    settings = get_settings()
    server = Postgres.from_settings(settings)
    if (pid := server.running_pid()) is None:
        _say(f"PostgreSQL  stopped  {server.address}  data in {server.data_dir}")
    else:
        databases = ", ".join(d for d in server.databases() if not d.startswith("template") and d != "postgres") or "-"
        _say(f"PostgreSQL  running  {server.address}  pid {pid}  data in {server.data_dir}  databases: {databases}")
    for daemon in _background_services(settings):
        pid = daemon.running_pid(settings)
        state = f"running  {daemon.address}  pid {pid}" if pid else f"stopped  {daemon.address}"
        _say(f"{daemon.title}  {state}  log {daemon.log_file(settings)}")


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
    _say(
        f"Spark Connect {state} on {server.address} (pid {pid}, log {server.log_file(settings)})\n"
        f'notebooks: SparkSession.builder.remote("{connect_url(settings)}").getOrCreate()\n'
        "stop it with `featurelake services stop` (`make down`)"
    )


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
        _say(f"{server.title} stopped (pid {pid})" if pid else f"{server.title} was not running")
        return
    if server.running_pid(settings) is None:
        _say(f"starting {server.title} (log: {server.log_file(settings)})...")
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


def serve_online(
    port: Annotated[int | None, typer.Option("--port", help="port on 127.0.0.1 (default services.online.port)")] = None,
    stop_it: Annotated[bool, typer.Option("--stop", help="stop the server instead")] = False,
    foreground: Annotated[bool, typer.Option("--foreground", help="run in this terminal (Ctrl-C stops it)")] = False,
) -> None:
    """Start the HTTP feature server (Feast-shaped POST /get-online-features, GET /health, GET /metrics) over the
    configured online store in the background on 127.0.0.1; a running one is reused."""
    import subprocess

    from featurelake.config import get_settings
    from featurelake.services.online import online_server, uvicorn_command

    settings = get_settings()
    server = online_server(settings, port)
    if stop_it:
        pid = server.stop(settings)
        _say(f"{server.title} stopped (pid {pid})" if pid else f"{server.title} was not running")
        return
    if foreground:
        raise typer.Exit(subprocess.call(uvicorn_command(server.port), cwd=settings.root))
    pid, started = server.start(settings)
    _say(
        f"{server.title} {'started' if started else 'already running'} on http://{server.address} (pid {pid}, "
        f"log {server.log_file(settings)})\n"
        f'  curl -s http://{server.address}/get-online-features -d \'{{"feature_service": "...", '
        f'"entities": {{"carrier": ["UA"]}}}}\'\n'
        "  stop it with `featurelake serve online --stop` (or `featurelake services stop` / `make down`)"
    )
