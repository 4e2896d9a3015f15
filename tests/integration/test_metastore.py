"""The shared metastore on a real PostgreSQL: Spark drivers using it at once, a restart that keeps everything, the
one-line error of a stopped server, and the migration of an embedded Derby catalog."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from featurelake.errors import ConfigError
from featurelake.services.postgres import Postgres
from tests.conftest import REPO_ROOT, TEST_POSTGRES_DIR, isolated_env, postgres_env, run_cli
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

# A driver of its own that prints, per table of the given databases, its Delta versions and the rows of each.
SNAPSHOT = """
import json, sys
from featurelake.tables import catalog_tables
from featurelake.spark import get_spark
spark = get_spark()
out = {}
for db in sys.argv[1:]:
    for table, _ in catalog_tables(spark, db):
        name = f"{db}.{table}"
        versions = sorted(r[0] for r in spark.sql(f"DESCRIBE HISTORY {name}").select("version").collect())
        out[name] = {v: spark.sql(f"SELECT count(*) FROM {name} VERSION AS OF {v}").first()[0] for v in versions}
print(json.dumps(out))
"""


def run_python(state: Path, code: str, *args: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=isolated_env(state, **env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def snapshot(state: Path, *databases: str, **env: str) -> dict[str, dict[str, int]]:
    return json.loads(run_python(state, SNAPSHOT, *databases, **env).strip().splitlines()[-1])


def test_drivers_in_two_processes_share_the_catalog_at_once(spark, state_dir):
    """The test session holds the catalog open while two CLI drivers read and write it (embedded Derby refused
    a second driver: "Failed to start database .../metastore_db")."""
    name, written = "raw.t_two_drivers", "raw.t_written_by_cli"
    for table in (name, written):
        spark.sql(f"DROP TABLE IF EXISTS {table}")
    spark.range(41).write.format("delta").saveAsTable(name)
    spark.range(41, 60).write.format("delta").mode("append").saveAsTable(name)

    cli = [str(Path(sys.executable).parent / "featurelake"), "sql", "--json"]
    queries = [
        f"select count(*) as n from {name} version as of 0",
        f"create table {written} using delta as select * from range(7)",
    ]
    procs = [
        subprocess.Popen(
            [*cli, q],
            env=isolated_env(state_dir),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for q in queries
    ]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert json.loads(outputs[0][0].splitlines()[-1]) == {"n": len(range(41))}
    assert spark.table(name).count() == len(range(60))  # the session still works beside them
    spark.catalog.refreshTable(written)
    assert sorted(r.id for r in spark.table(written).collect()) == list(range(7))
    for table in (name, written):
        spark.sql(f"DROP TABLE {table}")


def test_a_stopped_metastore_is_one_line_naming_it_and_how_to_start_it(tmp_path):
    state = tmp_path / "state"
    env = postgres_env(free_port(), tmp_path / "no-server")
    proc = run_cli(state, "sql", "select 1", check=False, **env)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: the metastore's PostgreSQL (127.0.0.1:{env['FEATURELAKE__SERVICES__POSTGRES__PORT']}, data in "
        f"{tmp_path / 'no-server'}) is not running: start it with `featurelake services start` (or `make up`)"
    ]
    assert not state.exists()  # nothing written


@pytest.mark.slow
def test_a_database_spark_cannot_open_is_the_same_kind_of_line_without_a_java_traceback(tmp_path, postgres):
    state = tmp_path / "state"
    url = f"jdbc:postgresql://127.0.0.1:{postgres.port}/no_such_database"
    proc = run_cli(
        state,
        "sql",
        "select 1",
        check=False,
        FEATURELAKE__STORAGE__METASTORE__KIND="jdbc",
        FEATURELAKE__STORAGE__METASTORE__URL=url,
        FEATURELAKE__STORAGE__METASTORE__USER=postgres.user,
        FEATURELAKE__SPARK__CONF__SPARK__HADOOP__HIVE__HMSHANDLER__RETRY__ATTEMPTS="1",
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.strip() and "incubator modules" not in line]
    assert errors == [f"error: the metastore (jdbc {url}) is not reachable: start it, or fix storage.metastore"]


# Writes a table in two Delta versions and one in another database, then prints the snapshot.
WRITE_TWO_VERSIONS = (
    """
from featurelake.spark import get_spark
spark = get_spark()
spark.range(5).write.format("delta").saveAsTable("raw.t_kept")
spark.range(5, 9).write.format("delta").mode("append").saveAsTable("raw.t_kept")
spark.range(3).write.format("delta").saveAsTable("features.t_kept")
"""
    + SNAPSHOT
)


@pytest.mark.slow
def test_stop_and_start_keep_the_tables_and_their_delta_versions(tmp_path):
    state = tmp_path / "state"
    data_dir = TEST_POSTGRES_DIR / "restart"  # the postgres system user must reach it when the tests run as root
    env = postgres_env(free_port(), data_dir)
    started = run_cli(state, "services", "start", **env).stdout
    assert "PostgreSQL started" in started
    try:
        assert "already running" in run_cli(state, "services", "start", **env).stdout  # idempotent
        before = json.loads(run_python(state, WRITE_TWO_VERSIONS, "raw", "features", **env).splitlines()[-1])
        assert before == {"raw.t_kept": {"0": 5, "1": 9}, "features.t_kept": {"0": 3}}

        assert "PostgreSQL stopped" in run_cli(state, "services", "stop", **env).stdout
        assert "stopped" in run_cli(state, "services", "status", **env).stdout
        assert run_cli(state, "tables", check=False, **env).returncode == 2

        assert "PostgreSQL started" in run_cli(state, "services", "start", **env).stdout
        assert snapshot(state, "raw", "features", **env) == before
    finally:
        run_cli(state, "services", "stop", **env)
        shutil.rmtree(data_dir, ignore_errors=True)


# Builds an embedded Derby catalog as featurelake made it before: managed Delta tables, several versions, a database
# of its own; prints the snapshot of it.
MAKE_DERBY_CATALOG = (
    """
from featurelake.spark import get_spark
spark = get_spark()
spark.sql("CREATE DATABASE legacy")
spark.range(5).write.format("delta").saveAsTable("raw.t_a")
spark.range(5, 9).write.format("delta").mode("append").saveAsTable("raw.t_a")
spark.range(3).write.format("delta").saveAsTable("features.t_b")
spark.range(11).write.format("delta").saveAsTable("legacy.t_c")
"""
    + SNAPSHOT
)


@pytest.mark.slow
def test_migrate_registers_the_derby_catalog_checks_first_and_runs_again_safely(tmp_path):
    state = tmp_path / "state"
    derby = snapshot_of_new_derby_catalog(state)
    assert derby == {"raw.t_a": {"0": 5, "1": 9}, "features.t_b": {"0": 3}, "legacy.t_c": {"0": 11}}

    # A table whose folder is gone stops the move before anything is registered.
    folder = state / "warehouse" / "legacy.db" / "t_c"
    folder.rename(tmp_path / "moved_away")
    failed = run_cli(state, "metastore", "migrate", check=False)
    assert failed.returncode == 2
    assert f"legacy.t_c: no Delta table at file:{folder}" in failed.stderr
    (tmp_path / "moved_away").rename(folder)

    migrated = run_cli(state, "metastore", "migrate").stdout
    for name in derby:
        assert f"registered          {name}" in migrated
    assert "3 table(s) registered, 0 already there" in migrated  # the failed run registered nothing
    assert snapshot(state, "raw", "features", "legacy") == derby

    again = run_cli(state, "metastore", "migrate").stdout
    assert "0 table(s) registered, 3 already there" in again
    assert all(f"already registered  {name}" in again for name in derby)


def snapshot_of_new_derby_catalog(state: Path) -> dict[str, dict[str, int]]:
    out = run_python(
        state, MAKE_DERBY_CATALOG, "raw", "features", "legacy", FEATURELAKE__STORAGE__METASTORE__KIND="derby"
    )
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_a_data_folder_the_postgres_user_cannot_enter_is_refused_before_initdb(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    server = Postgres(private / "state" / "postgres", free_port(), "featurelake")
    with pytest.raises(ConfigError, match=rf"cannot enter {private / 'state'} .*chmod o\+x"):
        server.start()
    assert not server.data_dir.exists() and not server.pid_file.exists()
