"""The cluster environment (FEATURELAKE_ENV=cluster) on a state folder, a PostgreSQL and free ports of its own:
its settings and process environment, ``make up`` (with the demo's raw files uploaded to the bucket) and ``make
down``. Shared by the cluster topology test and the cluster benchmark."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TEST_JVM_OPTIONS, isolated_env, postgres_env
from tests.support.demo_files import demo_csvs
from tests.support.servers import free_port

BUCKET = "featurelake"  # conf/cluster.yaml's warehouse: s3a://featurelake/warehouse
MAKE_TIMEOUT_S = 900


class Topology:
    """``make up`` / ``make down`` of the cluster environment on ``state`` (environment overrides: ``extra``); its
    own PostgreSQL, since ``make down`` stops the one it uses. Its JVMs take ``jvm_options`` (the tests' by default;
    empty: the JVM's own defaults)."""

    def __init__(self, state: Path, jvm_options: str = TEST_JVM_OPTIONS, **extra: str):
        from featurelake.config import load_settings

        self.postgres_dir = Path(tempfile.mkdtemp(prefix="featurelake-topology-postgres-"))
        self.postgres_dir.chmod(0o755)  # the server's own system user enters it (pytest's temp root is private)
        master, s3, redis = free_port(), free_port(), free_port()
        self.env = isolated_env(
            state,
            FEATURELAKE_ENV="cluster",
            **postgres_env(free_port(), self.postgres_dir / "data"),
            FEATURELAKE__STORAGE__WAREHOUSE=f"s3a://{BUCKET}/warehouse",
            FEATURELAKE__SPARK__MASTER=f"spark://127.0.0.1:{master}",
            FEATURELAKE__SERVICES__SPARK_CLUSTER__PORT=str(master),
            FEATURELAKE__SERVICES__SPARK_CLUSTER__UI_PORT=str(free_port()),
            FEATURELAKE__SERVICES__S3__PORT=str(s3),
            FEATURELAKE__STORAGE__S3__ENDPOINT=f"http://127.0.0.1:{s3}",
            FEATURELAKE__SERVICES__REDIS__PORT=str(redis),
            FEATURELAKE__ONLINE_STORE__REDIS_PORT=str(redis),
            FEATURELAKE__INGEST__SOURCE_DIR=f"s3a://{BUCKET}/raw",
            FEATURELAKE__SPARK__SHUFFLE_PARTITIONS="4",
            FEATURELAKE__ORCHESTRATION__RETRIES="0",  # a failing task fails the run at once
            **({"JAVA_TOOL_OPTIONS": jvm_options} if jvm_options else {}),  # every JVM: drivers, daemons, executors
            **extra,
        )
        self.settings = load_settings(environ=self.env)

    def make(self, target: str) -> str:
        done = subprocess.run(
            ["make", target], cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=MAKE_TIMEOUT_S
        )
        assert done.returncode == 0, f"make {target} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def up(self):
        """``make up``, then the demo's raw CSVs into ``s3a://featurelake/raw`` (ingest's source); a boto3 client."""
        self.make("up")
        boto = self.boto()
        for file, text in demo_csvs().items():
            boto.put_object(Bucket=BUCKET, Key=f"raw/{file}", Body=text)
        return boto

    def boto(self):
        """A boto3 client of the S3 server, with its key pair (boto3's chain reads it from the environment once)."""
        from featurelake.services.s3 import client, credentials_env

        with pytest.MonkeyPatch.context() as mp:
            for name, value in credentials_env(self.settings).items():
                mp.setenv(name, value)
            return client(self.settings)

    def down(self) -> list[str]:
        """``make down``; the services of it still running after (none, unless it failed)."""
        from featurelake.cli.services import _background_services

        daemons = _background_services(self.settings)
        try:
            self.make("down")
        finally:
            left = [d.title for d in daemons if d.running_pid(self.settings) is not None]
            shutil.rmtree(self.postgres_dir, ignore_errors=True)
        return left


def table_location(table: str) -> str:
    """Where the cluster environment keeps ``database.name``."""
    database, _, name = table.partition(".")
    return f"s3a://{BUCKET}/warehouse/{database}.db/{name}"
