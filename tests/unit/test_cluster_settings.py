"""The cluster topology's settings without starting it: the workers' environment (no way to featurelake), their
commands, the master's URL check, and what the executors' Python environment is made of and when it is rebuilt. The
cluster itself runs in tests/integration/test_cluster.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from featurelake import executor_env
from featurelake.config import load_settings
from featurelake.errors import ConfigError
from tests.conftest import REPO_ROOT, isolated_env, run_cli


@pytest.fixture
def cluster_settings(tmp_path):
    return load_settings(
        environ=isolated_env(
            tmp_path,
            FEATURELAKE_ENV="cluster",
            FEATURELAKE__SERVICES__S3__PORT="9123",
            FEATURELAKE__STORAGE__S3__ENDPOINT="http://127.0.0.1:9123",
        )
    )


def test_cluster_yaml_is_the_topology():
    settings = load_settings(environ={"FEATURELAKE_HOME": str(REPO_ROOT), "FEATURELAKE_ENV": "cluster"})
    assert settings.spark.master == "spark://127.0.0.1:7077"
    assert settings.storage.warehouse == "s3a://featurelake/warehouse"
    assert settings.storage.s3.endpoint == f"http://127.0.0.1:{settings.services.s3.port}"
    assert settings.storage.s3.path_style_access


def test_workers_environment_has_no_way_to_featurelake(cluster_settings, monkeypatch):
    from featurelake.services.spark_cluster import cluster_environment, spark_home

    venv_bin = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
        monkeypatch.setenv(name, venv_bin)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    env = cluster_environment(cluster_settings)
    assert env["PATH"] == "/usr/bin:/bin"
    assert not {"PYTHONPATH", "VIRTUAL_ENV", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"} & env.keys()
    assert (Path(env["SPARK_HOME"]) / "python" / "lib" / "pyspark.zip").is_file()
    assert env["SPARK_HOME"] == str(spark_home())
    assert env["AWS_ACCESS_KEY_ID"] == "featurelake"  # S3A points at the local S3 server: its key pair
    done = subprocess.run(["python3", "-c", "import featurelake"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "No module named 'featurelake'" in done.stderr

    elsewhere = cluster_settings.storage.s3.model_copy(update={"endpoint": "https://s3.example.com"})
    storage = cluster_settings.storage.model_copy(update={"s3": elsewhere})
    assert "AWS_ACCESS_KEY_ID" not in cluster_environment(cluster_settings.model_copy(update={"storage": storage}))


def test_master_and_worker_commands(cluster_settings):
    from featurelake.services.spark_cluster import spark_master, spark_workers

    master = spark_master(cluster_settings)
    assert master.command(cluster_settings)[1:] == [
        "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", "7077", "--webui-port", "8081",
    ]  # fmt: skip
    workers = spark_workers(cluster_settings)
    assert [w.name for w in workers] == ["spark-worker-1", "spark-worker-2"]
    command = workers[1].command(cluster_settings)
    assert command[1:3] == ["org.apache.spark.deploy.worker.Worker", "spark://127.0.0.1:7077"]
    assert command[command.index("--cores") + 1] == "1" and command[command.index("--memory") + 1] == "2g"
    assert command[-2:] == ["--work-dir", str(cluster_settings.state_path / "spark-work" / "2")]
    assert workers[1].marker in " ".join(command)
    # A worker recorded by an earlier start with more workers is still one `services stop` stops.
    (cluster_settings.state_path / "spark-worker-3.pid").write_text("1 no port\n")
    assert [w.number for w in spark_workers(cluster_settings)] == [1, 2, 3]


def test_a_master_url_other_than_the_local_masters_is_refused(tmp_path):
    from featurelake.services.spark_cluster import check_master_setting

    env = isolated_env(tmp_path, FEATURELAKE_ENV="cluster", FEATURELAKE__SERVICES__SPARK_CLUSTER__PORT="7100")
    with pytest.raises(ConfigError, match=r"spark.master is spark://127.0.0.1:7077 but .* spark://127.0.0.1:7100"):
        check_master_setting(load_settings(environ=env))
    overrides = {"FEATURELAKE_ENV": "cluster", "FEATURELAKE__SERVICES__SPARK_CLUSTER__PORT": "7100"}
    done = run_cli(tmp_path, "services", "start", "--cluster", check=False, **overrides)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: spark.master is spark://127.0.0.1:7077 but the local cluster's master listens on spark://127.0.0.1:7100:"
        " set both (FEATURELAKE__SPARK__MASTER and FEATURELAKE__SERVICES__SPARK_CLUSTER__PORT)"
    ]


def test_a_cluster_session_ships_the_environment_a_local_one_does_not(cluster_settings, monkeypatch):
    from featurelake.spark import driver_env, spark_conf

    archive = Path("/archive/pyenv.tar.gz")
    monkeypatch.setattr(executor_env, "ensure_archive", lambda settings: archive)  # built in test_cluster.py
    conf = spark_conf(cluster_settings)
    assert conf["spark.archives"] == f"{archive}#pyenv"
    assert conf["spark.pyspark.python"] == "./pyenv/bin/python"
    assert conf["spark.pyspark.driver.python"] == sys.executable
    assert driver_env(cluster_settings)["PYSPARK_PYTHON"] == "./pyenv/bin/python"

    spark = cluster_settings.spark.model_copy(update={"master": "local[2]"})
    local = cluster_settings.model_copy(update={"spark": spark})
    assert not {"spark.archives", "spark.pyspark.python"} & spark_conf(local).keys()
    assert driver_env(local)["PYSPARK_PYTHON"] == sys.executable


def test_executor_requirements_are_the_runtime_ones_executors_import(cluster_settings):
    names = [r.split(">")[0].split("=")[0].split("[")[0] for r in executor_env.requirements(cluster_settings)]
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(names) <= {d.split(">")[0].split("=")[0].split("[")[0] for d in declared}
    assert {"pandas", "pyarrow", "boto3", "redis", "pydantic", "pyyaml"} <= set(names)
    assert not {"pyspark", "delta-spark", "dbt-core", "great-expectations", "apache-airflow"} & set(names)


def test_the_environment_is_rebuilt_when_the_lock_or_the_source_change(cluster_settings, tmp_path):
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "src" / "featurelake", root / "src" / "featurelake")
    for name in ("requirements.lock", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, root / name)
    settings = cluster_settings.model_copy(update={"root": root})
    first = executor_env.fingerprint(settings)
    cache = root / "src" / "featurelake" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.pyc").write_bytes(b"compiled")
    assert executor_env.fingerprint(settings) == first  # bytecode caches are not the source
    source = root / "src" / "featurelake" / "errors.py"
    source.write_text(source.read_text() + "\n# changed\n")
    second = executor_env.fingerprint(settings)
    assert second != first
    lock = root / "requirements.lock"
    lock.write_text(lock.read_text() + "extra==1.0\n")
    assert executor_env.fingerprint(settings) not in (first, second)
