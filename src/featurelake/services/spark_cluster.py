"""The local Spark standalone cluster of ``FEATURELAKE_ENV=cluster``: a master and ``services.spark_cluster.workers``
workers, each a separate process (pyspark's ``spark-class``) and a background service (process.py) stopped by its pid.

The workers run in an environment without featurelake: no virtualenv on PATH, no PYTHONPATH, PYSPARK_PYTHON or
VIRTUAL_ENV. They need Java and a Spark of the driver's version (here pyspark's own JARs and ``python/lib/pyspark.zip``,
as SPARK_HOME); their executors run the Python environment each application ships (executor_env.py), which links to
the OS interpreter ``services.spark_cluster.executor_python``. The S3 key pair of the local S3 server reaches the
executors through the workers' environment (the SDK's default chain), as an instance role would on a real cluster.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from featurelake.config import Settings
from featurelake.errors import ConfigError
from featurelake.services.postgres import HOST
from featurelake.services.process import Daemon

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
START_COMMAND = "`featurelake services start --cluster` (or `FEATURELAKE_ENV=cluster make up`)"
# Variables that would hand a worker (and so its executors) the driver's Python environment.
PYTHON_VARS = ("PYTHONPATH", "PYTHONHOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV")


def spark_home() -> Path:
    """pyspark's folder: Spark's JARs, ``bin/spark-class`` and ``python/lib/pyspark.zip`` (a Spark distribution)."""
    import pyspark

    return Path(pyspark.__file__).parent


def master_url(settings: Settings) -> str:
    return f"spark://{HOST}:{settings.services.spark_cluster.port}"


def cluster_environment(settings: Settings) -> dict[str, str]:
    """The environment of the master and the workers: this one without any way to the driver's Python environment
    (its virtualenv's bin folder dropped from PATH), SPARK_HOME set, Spark bound to loopback; the local S3 server's key
    pair when S3A points at it."""
    from featurelake.services.s3 import local_credentials_env

    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in PYTHON_VARS}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    env.update({"SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": HOST})
    env.update(local_credentials_env(settings))
    return env


class _ClusterDaemon(Daemon):
    def command_prefix(self) -> list[str]:
        spark_class = spark_home() / "bin" / "spark-class"
        if not spark_class.is_file():
            raise ConfigError(f"{spark_class} not found: run `make setup`")
        return [str(spark_class)]

    def environment(self, settings: Settings) -> dict[str, str]:
        return cluster_environment(settings)


class SparkMaster(_ClusterDaemon):
    name = "spark-master"
    title = "the Spark master"
    start_command = START_COMMAND
    start_timeout_s = 120

    def __init__(self, settings: Settings):
        self.port: int = settings.services.spark_cluster.port
        self.ui_port = settings.services.spark_cluster.ui_port

    @property
    def marker(self) -> str:
        return f"{MASTER_CLASS} --host {HOST} --port {self.port}"

    @property
    def url(self) -> str:
        return f"spark://{self.address}, web UI http://{HOST}:{self.ui_port}"

    def command(self, settings: Settings) -> list[str]:
        return [*self.command_prefix(), MASTER_CLASS, "--host", HOST, "--port", str(self.port),
                "--webui-port", str(self.ui_port)]  # fmt: skip


class SparkWorker(_ClusterDaemon):
    """Worker ``number`` (1-based): its cores and memory offered to executors, its work folder (application JARs,
    the unpacked Python environments, executor logs) ``<state_dir>/spark-work/<number>``. Ready once registered with
    the master."""

    port = None
    start_command = START_COMMAND
    start_timeout_s = 120

    def __init__(self, settings: Settings, number: int):
        self.number = number
        self.name = f"spark-worker-{number}"
        self.title = f"Spark worker {number}"
        self.master = master_url(settings)
        self.work_dir = settings.state_path / "spark-work" / str(number)

    @property
    def marker(self) -> str:
        return f"--work-dir {self.work_dir}"

    def command(self, settings: Settings) -> list[str]:
        cluster = settings.services.spark_cluster
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # --webui-port 0: a free port of the system's choice (the workers' pages are linked from the master's UI).
        return [*self.command_prefix(), WORKER_CLASS, self.master, "--host", HOST, "--cores",
                str(cluster.worker_cores), "--memory", cluster.worker_memory, "--webui-port", "0",
                "--work-dir", str(self.work_dir)]  # fmt: skip

    def ready(self, settings: Settings) -> bool:
        try:
            return "Successfully registered with master" in self.log_file(settings).read_text(errors="replace")
        except OSError:
            return False

    def is_up(self, settings: Settings) -> bool:
        return self.running_pid(settings) is not None and self.ready(settings)


def spark_master(settings: Settings) -> SparkMaster:
    return SparkMaster(settings)


def spark_workers(settings: Settings) -> list[SparkWorker]:
    """The configured workers, and any other this state folder's pid files name (started with more workers)."""
    numbers = (p.stem.rpartition("-")[2] for p in settings.state_path.glob("spark-worker-*.pid"))
    recorded = [int(n) for n in numbers if n.isdigit()]
    count = max([settings.services.spark_cluster.workers, *recorded])
    return [SparkWorker(settings, n) for n in range(1, count + 1)]


def cluster_daemons(settings: Settings) -> list[Daemon]:
    """The master and the workers, in start order."""
    return [spark_master(settings), *spark_workers(settings)]


def check_master_setting(settings: Settings) -> None:
    """Refuse a ``spark.master`` other than the local master's URL (a port changed in one place only)."""
    if settings.spark.master != (url := master_url(settings)):
        raise ConfigError(
            f"spark.master is {settings.spark.master} but the local cluster's master listens on {url}: set both "
            "(FEATURELAKE__SPARK__MASTER and FEATURELAKE__SERVICES__SPARK_CLUSTER__PORT)"
        )
