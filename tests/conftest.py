"""Shared fixtures: one session-scoped local SparkSession on an isolated, temporary warehouse, its catalog in a
throwaway PostgreSQL server the test run starts (on a free port) and stops."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support.servers import free_port, start_dynamodb, start_redis, start_redis_cluster

REPO_ROOT = Path(__file__).resolve().parents[1]
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
# The ACL user every node of the redis_cluster fixture knows, beside the default user.
CLUSTER_USER, CLUSTER_PASSWORD = "fl", "s3cret"
# The test session's JVM runs many small jobs for a few minutes: compiling with C1 only and collecting garbage on
# one thread halves its CPU time (the C2 compiler and parallel GC threads cost more than they save there). C1 alone
# reserves a 48 MB code cache, which dbt's concurrent queries fill ("CodeCache is full"): the tiered default here.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=240m"
# Benchmarks of large data run with Spark's code generation, the production setting (conf/ci.yaml turns it off for
# the tests' few rows): in a featurelake process's environment, or in the shared session with the `codegen` fixture.
CODEGEN_ENV = {"FEATURELAKE__SPARK__CODEGEN": "true"}
# The test run's PostgreSQL: a free port and a folder outside pytest's private (mode 0700) temp root, which the
# server's `postgres` system user could not enter when the tests run as root.
TEST_POSTGRES_PORT = free_port()
TEST_POSTGRES_DIR = Path(tempfile.mkdtemp(prefix="featurelake-test-postgres-"))
TEST_POSTGRES_DIR.chmod(0o755)


def metastore_database(state_dir: Path) -> str:
    """The metastore database of one state folder on the test server (each folder its own catalog)."""
    return "test_" + hashlib.sha1(str(state_dir).encode()).hexdigest()[:16]


_service_ports: dict[tuple[Path, str], int] = {}
SERVICES_WITH_PORTS = ("airflow", "thrift", "connect", "online")


def service_port(state_dir: Path, service: str) -> int:
    """The port of a service (Airflow's API server, the endpoints) of one state folder: a free port, the same for
    every process on that folder, never the default a developer's own services listen on."""
    return _service_ports.setdefault((state_dir, service), free_port())


def postgres_env(port: int, data_dir: Path) -> dict[str, str]:
    """Settings overrides that point featurelake at the PostgreSQL server on ``port`` with data in ``data_dir``."""
    return {
        "FEATURELAKE__SERVICES__POSTGRES__PORT": str(port),
        "FEATURELAKE__SERVICES__POSTGRES__DATA_DIR": str(data_dir),
        "FEATURELAKE__SERVICES__POSTGRES__FSYNC": "false",
    }


def isolated_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a featurelake process whose state (warehouse, metastore, online store) is ``state_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEATURELAKE")}
    env.update(
        {
            "FEATURELAKE_HOME": str(REPO_ROOT),
            "FEATURELAKE_ENV": "ci",
            "FEATURELAKE__STATE_DIR": str(state_dir),
            "FEATURELAKE__STORAGE__WAREHOUSE": str(state_dir / "warehouse"),
            "FEATURELAKE__STORAGE__METASTORE__DATABASE": metastore_database(state_dir),
            "FEATURELAKE__STORAGE__METASTORE__DERBY_DIR": str(state_dir / "metastore_db"),
            "FEATURELAKE__SERVICES__AIRFLOW__DATABASE": "airflow_" + metastore_database(state_dir),
            **{
                f"FEATURELAKE__SERVICES__{name.upper()}__PORT": str(service_port(state_dir, name))
                for name in SERVICES_WITH_PORTS
            },
            **postgres_env(TEST_POSTGRES_PORT, TEST_POSTGRES_DIR / "data"),
            "FEATURELAKE__ONLINE_STORE__SQLITE_PATH": str(state_dir / "online" / "online.db"),
            "FEATURELAKE__SERVICES__S3__DATA_DIR": str(state_dir / "s3"),
            "FEATURELAKE__SERVICES__REDIS__DATA_DIR": str(state_dir / "redis"),
            "FEATURELAKE__SERVICES__KAFKA__DATA_DIR": str(state_dir / "kafka-data"),
            "PYSPARK_PYTHON": sys.executable,
        }
    )
    env.update(extra)
    return env


def run_cli(
    state_dir: Path, *args: str, check: bool = True, timeout: float = 900, **extra_env: str
) -> subprocess.CompletedProcess:
    """Run ``featurelake *args`` in a new process on ``state_dir`` (environment overrides: ``extra_env``); output is
    captured as text."""
    exe = Path(sys.executable).parent / "featurelake"
    proc = subprocess.run(
        [str(exe), *args],
        env=isolated_env(state_dir, **extra_env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"featurelake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    """A run stopped by SIGTERM (``timeout``, CI's limit) ends like Ctrl-C: fixtures' finalizers stop the services
    the tests started (PostgreSQL, endpoints, brokers) instead of leaving them running."""
    signal.signal(signal.SIGTERM, _interrupted)


@pytest.fixture(scope="session", autouse=True)
def postgres():
    """The test run's PostgreSQL server (the metastore of every featurelake process the tests start), stopped and
    deleted at the end."""
    from featurelake.services.postgres import Postgres

    server = Postgres(TEST_POSTGRES_DIR / "data", TEST_POSTGRES_PORT, "featurelake", fsync=False)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(TEST_POSTGRES_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory, postgres) -> Path:
    """The shared session's state folder; its metastore database is created now and dropped at the end."""
    state = tmp_path_factory.mktemp("state")
    postgres.ensure_database(metastore_database(state))
    yield state
    postgres.drop_database(metastore_database(state))


@pytest.fixture(scope="session")
def settings(state_dir):
    from featurelake.config import load_settings

    # Two shuffle partitions (one per core) instead of ci.yaml's 4: a multi-stage plan over a few rows costs
    # mostly per-task overhead.
    settings = load_settings(environ=isolated_env(state_dir, FEATURELAKE__SPARK__SHUFFLE_PARTITIONS="2"))
    settings.spark.conf["spark.driver.defaultJavaOptions"] = TEST_JVM_OPTIONS
    return settings


@pytest.fixture(scope="session")
def spark(settings):
    """The one SparkSession of the test run (local[2], UTC, 2 shuffle partitions, Delta, the Hive metastore on the
    test run's PostgreSQL, a JVM tuned for a short run: TEST_JVM_OPTIONS)."""
    from featurelake.spark import get_spark

    session = get_spark(settings)
    yield session
    session.stop()


@pytest.fixture
def codegen(spark):
    """Spark's code generation on in the shared session for one test (a benchmark of large data), off again after."""
    from featurelake.spark import INTERPRETED

    for key in INTERPRETED:
        spark.conf.unset(key)
    yield
    for key, value in INTERPRETED.items():
        spark.conf.set(key, value)


@pytest.fixture
def cli(monkeypatch, state_dir, spark):
    """Invoke the featurelake CLI in this process, on the test state (and the session's SparkSession)."""
    from typer.testing import CliRunner

    from featurelake.cli import app
    from featurelake.config import get_settings

    for name, value in isolated_env(state_dir).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args))
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def redis_server():
    """A redis-server of the test module's own, on a free port; stopped by its pid at the end."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_cluster():
    """A 3-master Redis Cluster of the test module's own, on free ports, with the ACL user ``CLUSTER_USER``; its
    servers are stopped by pid at the end."""
    cluster = start_redis_cluster(3, "--user", CLUSTER_USER, "on", f">{CLUSTER_PASSWORD}", "~*", "&*", "+@all")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def dynamodb_server():
    """A DynamoDB-API server (moto) of the test module's own, with dummy credentials in this process's environment
    meanwhile."""
    saved = {k: os.environ.get(k) for k in DUMMY_AWS}
    os.environ.update(DUMMY_AWS)
    server = start_dynamodb()
    yield server
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The S3 server of a throwaway state folder on a free port, with its settings; stopped by its pid."""
    from featurelake.config import load_settings
    from featurelake.services.s3 import s3_server

    state = tmp_path_factory.mktemp("s3-state")
    port = free_port()
    settings = load_settings(
        environ=isolated_env(
            state,
            FEATURELAKE__SERVICES__S3__PORT=str(port),
            FEATURELAKE__STORAGE__S3__ENDPOINT=f"http://127.0.0.1:{port}",
            FEATURELAKE__STORAGE__S3__PATH_STYLE_ACCESS="true",
        )
    )
    server = s3_server(settings)
    pid, started = server.start(settings)
    assert started and server.is_up(settings)
    yield settings, server
    assert server.stop(settings) == pid
    assert server.running_pid(settings) is None
    assert not server.is_up(settings)


@contextlib.contextmanager
def s3a_reach(spark, settings):
    """The shared session and boto3 pointed at the S3 server of ``settings``, until the block ends. The key pair
    reaches boto3 through the environment and Spark through the SDK's default chain (Java system properties: its JVM
    runs already); the session's own S3A settings are put back at the end."""
    from featurelake.services.s3 import credentials, credentials_env
    from featurelake.spark import s3a_conf

    with pytest.MonkeyPatch.context() as mp:
        for name, value in credentials_env(settings).items():
            mp.setenv(name, value)
        jvm = spark.sparkContext._jvm
        access_key, secret_key = credentials(settings)
        jvm.java.lang.System.setProperty("aws.accessKeyId", access_key)
        jvm.java.lang.System.setProperty("aws.secretAccessKey", secret_key)
        hadoop = spark.sparkContext._jsc.hadoopConfiguration()
        conf = s3a_conf(settings)
        previous = {key: hadoop.get(key) for key in conf}
        for key, value in conf.items():
            hadoop.set(key, value)
        try:
            yield
        finally:
            jvm.java.lang.System.clearProperty("aws.accessKeyId")
            jvm.java.lang.System.clearProperty("aws.secretAccessKey")
            for key, value in previous.items():
                hadoop.unset(key) if value is None else hadoop.set(key, value)


@pytest.fixture(scope="module")
def s3a(s3, spark):
    """The shared session and boto3 pointed at the S3 server (``s3a_reach``); a new bucket."""
    from featurelake.services.s3 import client

    settings, _ = s3
    with s3a_reach(spark, settings):
        boto = client(settings)
        bucket = f"featurelake-test-{uuid.uuid4().hex[:8]}"
        boto.create_bucket(Bucket=bucket)
        yield settings, boto, bucket
