"""The production topology on one machine, end to end: ``make up`` in the cluster environment (FEATURELAKE_ENV=cluster
on a state folder and free ports of its own: PostgreSQL, the S3 server, Redis, a Spark master and two workers,
Airflow's API server, the SQL endpoint), the nightly DAG over two demo days with the raw files read from the bucket,
the training_set DAG, a backfill that loses a worker to kill -9, then ``make down``.

Checked against the embedded run (the same two days computed in the test session on local[2], conf/ci.yaml): every
feature table and the training set row by row, the online store's values against the embedded tables' latest rows;
every table of every database lives in the bucket with its ``_delta_log`` (listed with boto3) and nothing of a table
or an artifact is on the state folder's disk.

Not in ``make test`` (marker ``cluster``): 34 minutes here beside the rest of the suite (load 5-10), which CI's
time cannot take. ``make test-cluster`` runs it.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import signal
import subprocess
import time

import pytest

from tests.conftest import REPO_ROOT, s3a_reach
from tests.support.topology import BUCKET, Topology, table_location

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

DAY1, DAY2 = dt.date(2013, 1, 1), dt.date(2013, 1, 2)
TRAINING_SET = "cluster_demo"
WAIT_S = 900


@pytest.fixture(scope="module")
def embedded(spark, settings):
    """The two days on the embedded defaults in the test session: ingest, dbt and every view; the training set."""
    from featurelake.compute.pipeline import compute
    from featurelake.offline.training_set import build_training_set
    from featurelake.repo import feature_repo
    from featurelake.runs import Interval
    from features.flights.ingest import ingest

    ingest(spark, settings, Interval(DAY1, DAY2))
    repo = feature_repo(settings)
    compute(spark, settings, Interval(DAY1, DAY2), repo=repo)
    preset = min(repo.training_sets.values(), key=lambda t: t.name)  # the training_set DAG's form defaults
    build_training_set(
        spark,
        repo,
        name=TRAINING_SET,
        entities=preset.entities,
        service=preset.service,
        full_feature_names=preset.full_feature_names,
        start=DAY1,
        end=DAY1,
        overwrite=True,
    )
    return repo


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    """``make up`` on a state folder of its own, the demo's raw files in the bucket; ``make down`` at the end, which
    leaves no service of it running."""
    cluster = Topology(tmp_path_factory.mktemp("topology"))
    try:
        boto = cluster.up()
        yield cluster.settings, cluster.env, boto
    finally:
        assert cluster.down() == []


@pytest.fixture(scope="module")
def nights(topology):
    """The nightly DAG over both demo days (as ``make run`` does), then the training_set DAG's default form for
    DAY1's flights; their outputs."""
    from featurelake.orchestration import nightly_run_after, run_dag_test

    settings, env, _ = topology
    conf = {"start": str(DAY1), "end": str(DAY2)}
    nightly = run_dag_test(settings, "feature_pipeline", nightly_run_after(DAY2), conf, environ=env)
    conf = {"name": TRAINING_SET, "start": str(DAY1), "end": str(DAY1), "overwrite": True}
    training = run_dag_test(settings, "training_set", dt.datetime.now(dt.UTC), conf, environ=env)
    return nightly, training


@pytest.fixture(scope="module")
def on_bucket(topology, spark):
    """The test session reads the cluster's tables by their s3a:// paths while the module runs."""
    settings, _, _ = topology
    with s3a_reach(spark, settings):
        yield lambda table: spark.read.format("delta").load(table_location(table))


def feature_tables(repo) -> list[str]:
    return sorted({v.offline_table for v in repo.views.values() if (v.offline_table or "").startswith("features.")})


def assert_same_rows(got, want, what: str) -> int:
    """``got`` and ``want`` (Spark DataFrames) hold the same rows, duplicates counted; returns how many."""
    columns = sorted(want.columns)
    assert sorted(got.columns) == columns, what
    got, want = got.select(columns), want.select(columns)
    assert got.exceptAll(want).count() == 0 and want.exceptAll(got).count() == 0, what
    return got.count()


def test_every_feature_table_equals_the_embedded_run_row_by_row(nights, embedded, on_bucket, spark):
    rows = {t: assert_same_rows(on_bucket(t), spark.table(t), t) for t in feature_tables(embedded)}
    assert len(rows) >= 6 and min(rows.values()) > 0, rows
    assert "--start 2013-01-01 --end 2013-01-02" in nights[0]


def test_the_training_set_equals_the_embedded_one(nights, embedded, on_bucket, spark):
    table = f"training.{TRAINING_SET}"
    assert assert_same_rows(on_bucket(table), spark.table(table), table) > 500
    assert f"wrote {table}" in nights[1]


def test_every_table_lives_in_the_bucket_with_its_delta_log(nights, topology):
    """Every table of every database (the catalog through the SQL endpoint) is a Delta table under the bucket's
    warehouse, its log in the bucket; the state folder holds no table, no Data Docs and no manifest."""
    from featurelake.services.thrift import query

    settings, _, boto = topology
    tables = {}
    for database in settings.storage.databases:
        _, rows = query(settings, f"SHOW TABLE EXTENDED IN {database} LIKE '*'", 10_000)
        for row in rows:
            info = dict(re.findall(r"^(\w[\w ]*): (.*)$", row[-1], re.MULTILINE))
            if info.get("Type") != "VIEW":  # dbt's staging views are queries, not data
                tables[f"{database}.{row[1]}"] = (info.get("Provider"), info.get("Location"))
    assert {t.split(".")[0] for t in tables} >= {"raw", "staging", "features", "training", "monitoring"}, tables
    for table, (provider, location) in tables.items():
        assert provider == "delta" and location == table_location(table), (table, provider, location)
        prefix = location.removeprefix(f"s3a://{BUCKET}/") + "/_delta_log/"
        listed = boto.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        assert any(o["Key"].endswith("00000000000000000000.json") for o in listed), table
    local = [p for p in settings.state_path.rglob("*") if not p.is_relative_to(settings.state_path / "s3")]
    assert [p for p in local if p.name == "_delta_log" or p.suffix == ".html" or p.parent.name == "manifests"] == []
    artifacts = boto.list_objects_v2(Bucket=BUCKET, Prefix="artifacts/").get("Contents", [])
    assert any(o["Key"].endswith(f"{TRAINING_SET}.json") for o in artifacts)


def test_the_online_store_serves_the_embedded_tables_latest_rows(nights, embedded, topology, spark):
    """Every window view's online values (Redis, materialized by the night as of the end of DAY2) are the latest
    row within ttl of the embedded table, per entity; an unknown entity has none."""
    from featurelake.online.client import OnlineClient

    settings, _, _ = topology
    client = OnlineClient.from_settings(settings, embedded)
    as_of = dt.datetime.combine(DAY2 + dt.timedelta(days=1), dt.time())
    checked = 0
    for view in embedded.views.values():
        if view.computation is None or view.computation.kind != "window" or not view.online:
            continue
        keys, names = embedded.join_keys(view), [f.name for f in view.features]
        rows = spark.table(view.offline_table).toPandas()
        rows = rows[(rows.event_timestamp <= as_of) & (rows.event_timestamp >= as_of - view.ttl)]
        latest = rows.sort_values(["event_timestamp", "created_timestamp"]).groupby(keys).tail(1)
        assert len(latest) >= 3, view.name
        entity_rows = [{k: r[k] for k in keys} for _, r in latest.iterrows()]
        unknown = dict.fromkeys(keys, "ZZZ")
        got = client.get_online_features([*entity_rows, unknown], features=[f"{view.name}:{n}" for n in names])
        for (_, want), served in zip(latest.iterrows(), got, strict=False):
            for n in names:
                value, expected = served[f"{view.name}__{n}"], want[n]
                if expected is None or (isinstance(expected, float) and math.isnan(expected)):
                    assert value is None, (view.name, served, n)
                else:
                    assert value == pytest.approx(expected), (view.name, served, n)
        assert all(got[-1][f"{view.name}__{n}"] is None for n in names)
        checked += len(latest)
    assert checked >= 30


def test_a_backfill_that_loses_a_worker_to_kill_9_writes_the_embedded_table(
    nights, embedded, topology, on_bucket, spark
):
    """kill -9 of the worker running the backfill's executor once it has finished tasks: the job reschedules on
    the other worker and the view's table equals the embedded run's. (The last test: the worker stays dead.)"""
    from featurelake.services.spark_cluster import spark_workers

    settings, env, _ = topology
    workers = spark_workers(settings)
    before = {app.name for w in workers for app in w.work_dir.glob("app-*")}
    view = "carrier_departure_delays"
    log = settings.state_path / "backfill.log"
    command = [str(REPO_ROOT / ".venv" / "bin" / "featurelake"), "backfill", "--view", view]
    with log.open("w") as sink:
        job = subprocess.Popen(
            [*command, "--start", str(DAY1), "--end", str(DAY2)], env=env, cwd=REPO_ROOT, stdout=sink, stderr=sink
        )
    try:
        deadline, victim = time.monotonic() + WAIT_S, None
        while victim is None:
            assert job.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no executor of the backfill finished a task"
            time.sleep(0.5)
            for worker in workers:
                for err in worker.work_dir.glob("app-*/*/stderr"):
                    if err.parts[-3] not in before and "Finished task" in err.read_text(errors="replace"):
                        victim, app = worker, err.parts[-3]
        os.kill(victim.running_pid(settings), signal.SIGKILL)
        assert job.wait(timeout=WAIT_S) == 0, log.read_text()[-3000:]
    finally:
        if job.poll() is None:
            job.kill()
    survivor = next(w for w in workers if w is not victim)
    assert victim.running_pid(settings) is None and survivor.running_pid(settings) is not None
    assert any("Finished task" in e.read_text() for e in survivor.work_dir.glob(f"{app}/*/stderr"))  # it ran there
    table = embedded.view(view).offline_table
    assert assert_same_rows(on_bucket(table), spark.table(table), table) > 0
