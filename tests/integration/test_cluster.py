"""The Spark standalone cluster of FEATURELAKE_ENV=cluster (featurelake.services.spark_cluster): a master and two
workers on free ports, started in an environment where featurelake cannot be imported, stopped by their pids. A job
submitted as featurelake submits them (spark_submit_prefix, get_spark) ships its Python environment (executor_env):
its executors import featurelake from it, and it survives kill -9 of a worker with the result local[2] computes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TEST_JVM_OPTIONS, isolated_env, metastore_database
from tests.support import cluster_job
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
JOB = REPO_ROOT / "tests" / "support" / "cluster_job.py"
START_WAIT_S = 600


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres):
    """The master and 2 workers of a throwaway state folder (conf/cluster.yaml's Spark settings, the driver bound to
    loopback, tables in a local folder), stopped by their pids at the end."""
    from featurelake.config import load_settings
    from featurelake.services.spark_cluster import cluster_daemons

    state = tmp_path_factory.mktemp("cluster-state")
    postgres.ensure_database(metastore_database(state))
    port = free_port()
    env = isolated_env(
        state,
        FEATURELAKE_ENV="cluster",
        FEATURELAKE__SPARK__MASTER=f"spark://127.0.0.1:{port}",
        FEATURELAKE__SERVICES__SPARK_CLUSTER__PORT=str(port),
        FEATURELAKE__SERVICES__SPARK_CLUSTER__UI_PORT=str(free_port()),
        FEATURELAKE__SERVICES__SPARK_CLUSTER__WORKER_MEMORY="1g",
        FEATURELAKE__STORAGE__S3__ENDPOINT="",  # no s3a:// path here
        FEATURELAKE__SPARK__SHUFFLE_PARTITIONS="4",
        FEATURELAKE__SPARK__CONF__SPARK__EXECUTOR__MEMORY="512m",
        FEATURELAKE__SPARK__CONF__SPARK__DRIVER__DEFAULTJAVAOPTIONS=TEST_JVM_OPTIONS,
        FEATURELAKE__SPARK__CONF__SPARK__EXECUTOR__DEFAULTJAVAOPTIONS=TEST_JVM_OPTIONS,
    )
    settings = load_settings(environ=env)
    daemons = cluster_daemons(settings)
    try:
        for daemon in daemons:
            assert daemon.start(settings)[1]
        yield settings, env, daemons
    finally:
        for daemon in reversed(daemons):
            daemon.stop(settings)
        assert all(d.running_pid(settings) is None for d in daemons)
        postgres.drop_database(metastore_database(state))


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


def test_workers_cannot_import_featurelake(cluster):
    settings, _, daemons = cluster
    for daemon in daemons:  # running ones are reused, by their recorded pid
        pid = daemon.running_pid(settings)
        assert daemon.start(settings) == (pid, False) and daemon.is_up(settings)
    for worker in daemons[1:]:
        env = _environ(worker.running_pid(settings))
        assert not {"PYTHONPATH", "PYSPARK_PYTHON", "VIRTUAL_ENV"} & env.keys()
        for python in ("python3", "python3.11", "python"):
            done = subprocess.run([python, "-c", "import featurelake"], env=env, capture_output=True, text=True)
            assert done.returncode != 0 and "No module named 'featurelake'" in done.stderr, python


def test_job_ships_python_and_survives_a_killed_worker(cluster, spark, tmp_path):
    """Executors import featurelake from the shipped environment (the probe's values, their sys.prefix); kill -9 of
    worker 1 once the map stage is under way on both workers; the Delta result equals the same job on local[2]."""
    from featurelake.spark import driver_env, spark_submit_prefix

    settings, env, daemons = cluster
    workers = daemons[1:]
    markers = tmp_path / "markers"
    markers.mkdir()
    command = [*spark_submit_prefix(settings), str(JOB), str(tmp_path), str(markers)]
    log = (tmp_path / "job.log").open("w")
    job = subprocess.Popen(command, env={**env, **driver_env(settings)}, cwd=REPO_ROOT, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + START_WAIT_S
        # Map tasks done (markers), executors on both workers (a folder each in the workers' work folders).
        while len(list(markers.iterdir())) < 3 or not all(any(w.work_dir.glob("app-*/*/stderr")) for w in workers):
            assert job.poll() is None, (tmp_path / "job.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the job's map stage did not start on both workers"
            time.sleep(0.2)
        at_kill = len(list(markers.iterdir()))
        os.kill(workers[0].running_pid(settings), signal.SIGKILL)
        assert job.wait(timeout=START_WAIT_S) == 0, (tmp_path / "job.log").read_text()[-3000:]
    finally:
        if job.poll() is None:
            job.kill()
        log.close()
    assert workers[0].running_pid(settings) is None and workers[1].running_pid(settings) is not None
    assert len(list(markers.iterdir())) > at_kill  # the job was still mapping when the worker died

    probe = json.loads((tmp_path / "probe.json").read_text())
    assert sorted((r["id"], r["seconds"]) for r in probe) == [(i, i * 60.0) for i in range(64)]
    for row in probe:  # the executor's Python: the unpacked archive in its work folder, featurelake inside it
        prefix = Path(row["prefix"])
        assert prefix == Path(row["cwd"]) / "pyenv"
        assert prefix.is_relative_to(settings.state_path / "spark-work")
        assert Path(row["featurelake"]).is_relative_to(prefix / "lib" / "python3.11" / "site-packages")

    on_cluster = spark.read.format("delta").load(str(tmp_path / "aggregate"))
    local = cluster_job.aggregate(spark)
    columns = ["key", "total", "n", "g_total"]
    assert sorted(on_cluster.select(columns).collect()) == sorted(local.select(columns).collect())
    assert on_cluster.count() == cluster_job.GROUPS
