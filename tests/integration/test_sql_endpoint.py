"""The SQL endpoint (Spark's Thrift server), started by `featurelake serve sql` on a free port for the test run's
state folder: it sees what the in-process session writes, and queries through it (PyHive, `featurelake sql`,
`VERSION AS OF`, dbt's thrift target) give what the in-process session gives."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, isolated_env, run_cli
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

TYPES = "raw.endpoint_types"
TRAVEL = "raw.endpoint_travel"
DAY1 = dt.date(2013, 1, 1)


@pytest.fixture(scope="module")
def endpoint(state_dir, spark):
    """(settings, port) of a Thrift server on the test session's warehouse and metastore, stopped at the end."""
    from featurelake.config import load_settings
    from featurelake.services.thrift import thrift_server

    port = str(free_port())
    settings = load_settings(environ=isolated_env(state_dir, FEATURELAKE__SERVICES__THRIFT__PORT=port))
    server = thrift_server(settings)
    try:
        started = run_cli(state_dir, "serve", "sql", FEATURELAKE__SERVICES__THRIFT__PORT=port).stdout
        pid = server.running_pid(settings)
        assert pid is not None and f"started on 127.0.0.1:{port} (pid {pid})" in started
        assert f"jdbc:hive2://127.0.0.1:{port}/default" in started
        again = run_cli(state_dir, "serve", "sql", FEATURELAKE__SERVICES__THRIFT__PORT=port).stdout
        assert f"already running on 127.0.0.1:{port} (pid {pid})" in again  # reused, not a second server
        status = run_cli(state_dir, "services", "status", FEATURELAKE__SERVICES__THRIFT__PORT=port).stdout
        assert f"running  127.0.0.1:{port}  pid {pid}" in status
        yield settings, port
    finally:
        run_cli(state_dir, "serve", "sql", "--stop", FEATURELAKE__SERVICES__THRIFT__PORT=port, check=False)
        server.stop(settings)  # in case the command failed
    assert server.running_pid(settings) is None


@pytest.fixture(scope="module")
def types_table(spark):
    """A small Delta table with the types whose text form differs between protocols, written in-process."""
    spark.sql(f"DROP TABLE IF EXISTS {TYPES}")
    spark.sql(
        f"""CREATE TABLE {TYPES} USING delta AS SELECT * FROM VALUES
        (1, 'a', 12.30BD, 1.5D, CAST(1.1 AS FLOAT), TIMESTAMP'2013-01-01 05:00:00', DATE'2013-01-01', true),
        (2, NULL, 0.05BD, -2.25D, NULL, TIMESTAMP'2013-01-02 23:59:59.123', NULL, false),
        (3, 'ü"q', NULL, NULL, CAST(-0.5 AS FLOAT), NULL, DATE'2013-12-31', NULL)
        AS t(id, name, amount, ratio, share, ts, day, flag)"""
    )
    yield f"SELECT * FROM {TYPES} ORDER BY id"
    spark.sql(f"DROP TABLE {TYPES}")


def test_pyhive_gives_the_in_process_values(spark, endpoint, types_table):
    from featurelake.services.thrift import query

    settings, _ = endpoint
    columns, rows = query(settings, types_table, 10)
    expected = spark.sql(types_table)
    assert columns == expected.columns
    assert rows == [tuple(r) for r in expected.collect()]
    # and by hand, so that a conversion both sides got wrong the same way fails too
    assert rows[0][2:8] == (
        Decimal("12.30"),
        1.5,
        float(spark.sql("SELECT CAST(1.1 AS FLOAT)").first()[0]),
        dt.datetime(2013, 1, 1, 5),
        DAY1,
        True,
    )
    assert rows[1][5] == dt.datetime(2013, 1, 2, 23, 59, 59, 123000) and rows[2][1] == 'ü"q'


def test_featurelake_sql_through_the_endpoint_prints_what_a_local_session_prints(
    spark, state_dir, endpoint, types_table
):
    _, port = endpoint
    out = run_cli(state_dir, "sql", "--endpoint", "--json", types_table, FEATURELAKE__SERVICES__THRIFT__PORT=port)
    # the local session's output, computed as `featurelake sql --local --json` prints it
    local = [json.dumps(r.asDict(recursive=True), default=str) for r in spark.sql(types_table).collect()]
    assert out.stdout.splitlines() == local
    table = run_cli(state_dir, "sql", "--limit", "2", types_table, FEATURELAKE__SERVICES__THRIFT__PORT=port).stdout
    lines = table.splitlines()
    assert all(c in lines[1] for c in ("id", "name", "amount", "ratio", "share", "ts", "day", "flag"))
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    assert cells == [
        ["1", "a", "12.30", "1.5", "1.100000023841858", "2013-01-01 05:00:00", "2013-01-01", "True"],
        ["2", "NULL", "0.05", "-2.25", "NULL", "2013-01-02 23:59:59.123000", "NULL", "False"],
    ]
    assert lines[-1] == "(first 2 rows shown; use --limit for more)"


def test_time_travel_through_the_endpoint(spark, endpoint):
    from featurelake.services.thrift import query

    settings, _ = endpoint
    spark.sql(f"DROP TABLE IF EXISTS {TRAVEL}")
    spark.range(3).write.format("delta").saveAsTable(TRAVEL)  # version 0, written after the server started
    spark.range(10, 15).write.format("delta").mode("overwrite").saveAsTable(TRAVEL)  # version 1
    for sql in (f"SELECT * FROM {TRAVEL} VERSION AS OF 0 ORDER BY id", f"SELECT * FROM {TRAVEL} ORDER BY id"):
        _, rows = query(settings, sql, 100)
        assert rows == [tuple(r) for r in spark.sql(sql).collect()]
    assert query(settings, f"SELECT * FROM {TRAVEL} VERSION AS OF 0 ORDER BY id", 100)[1] == [(0,), (1,), (2,)]
    spark.sql(f"DROP TABLE {TRAVEL}")


def test_a_statement_the_server_rejects_is_one_line(state_dir, endpoint):
    _, port = endpoint
    proc = run_cli(
        state_dir, "sql", "SELECT * FROM raw.no_such_table", check=False, FEATURELAKE__SERVICES__THRIFT__PORT=port
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: [TABLE_OR_VIEW_NOT_FOUND] The table or view `raw`.`no_such_table` cannot be found. Verify the "
        "spelling and correctness of the schema and catalog."
    ]


def test_the_endpoint_down_is_one_line_naming_the_command(tmp_path):
    """A state folder without a server: `--endpoint` refuses before any JVM starts."""
    proc = run_cli(tmp_path, "sql", "--endpoint", "select 1", check=False, FEATURELAKE__SERVICES__THRIFT__PORT="10999")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: the SQL endpoint (Spark Thrift server) on 127.0.0.1:10999 is not running: start it with "
        "`featurelake serve sql` (or `make sql`)"
    ]
    assert not (tmp_path / "warehouse").exists()  # nothing written


def _models() -> list[str]:
    return sorted(p.stem for p in (REPO_ROOT / "dbt_project" / "models").rglob("*.sql"))


def test_dbt_thrift_target_builds_the_tables_the_session_target_builds(spark, settings, endpoint, tmp_path):
    """Both targets build every model from the same raw day, each into its own relations (var relation_overrides);
    the thrift one as a client of the server, in its own process. Tables compared in-process, and both ran the
    same tests, all passed."""
    from pyspark.testing import assertDataFrameEqual

    from featurelake.compute.dbt import dbt_args, project_dir, run_dbt
    from featurelake.runs import Interval
    from features.flights.ingest import ingest

    _, port = endpoint
    ingest(spark, settings, Interval(DAY1, DAY1))
    models = _models()
    relations = {kind: {m: f"staging.eq_{kind}__{m}" for m in models} for kind in ("session", "thrift")}
    for relation in [*relations["session"].values(), *relations["thrift"].values()]:
        spark.sql(f"DROP TABLE IF EXISTS {relation}")

    session = run_dbt(spark, settings, dbt_args(settings, "build", overrides=relations["session"]))
    pdir = project_dir(settings)
    command = [
        str(Path(sys.executable).with_name("dbt")),
        *("build", "--project-dir", str(pdir), "--profiles-dir", str(pdir), "--target", "thrift"),
        *("--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")),
        *("--vars", json.dumps({"relation_overrides": relations["thrift"]}), "--no-use-colors"),
    ]
    env = isolated_env(settings.state_path, FEATURELAKE_DBT_PORT=port)
    proc = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    thrift_statuses = {r["unique_id"]: r["status"] for r in results}
    assert thrift_statuses == session.statuses
    assert set(thrift_statuses.values()) == {"success", "pass"}
    assert sum(s == "pass" for s in thrift_statuses.values()) >= len(models)  # the models' tests ran
    for model in models:
        built = spark.table(relations["thrift"][model])
        assert built.count() > 0, model
        assertDataFrameEqual(built, spark.table(relations["session"][model]))
        for relation in (relations["session"][model], relations["thrift"][model]):
            spark.sql(f"DROP TABLE {relation}")
