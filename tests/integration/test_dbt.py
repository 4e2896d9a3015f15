"""The dbt project parses into a manifest with the layout featurelake relies on (no warehouse needed):
schemas used verbatim as Spark databases, Delta everywhere, incremental merge where data grows, tests.
A dbt feature view is published through its gate: a good interval equals what dbt alone builds, a batch that
fails the view's suite leaves the published table at its version."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from featurelake.compute.dbt import (
    dbt_args,
    dbt_target,
    dbt_views,
    may_build,
    model_selector,
    project_dir,
    run_dbt,
    run_dbt_build,
)
from featurelake.repo import feature_repo
from featurelake.runs import Interval
from featurelake.tables import latest_commit, table_properties

pytestmark = pytest.mark.integration

DAY1, DAY2 = dt.date(2013, 1, 1), dt.date(2013, 1, 2)
WEATHER = "origin_weather_hourly"  # a strict dbt feature view, incremental, on its model of the same name
TABLE, AUDIT = f"features.{WEATHER}", f"staging.{WEATHER}_v1__audit"


@pytest.fixture(scope="module")
def manifest(spark, settings) -> dict:
    run_dbt(spark, settings, dbt_args(settings, "parse"))
    return json.loads((project_dir(settings) / "target" / "manifest.json").read_text())


def models(manifest: dict) -> dict[str, dict]:
    return {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}


def test_schemas_are_the_spark_databases_and_every_model_is_delta(manifest):
    by_name = models(manifest)
    assert by_name["stg_nycflights__flights"]["schema"] == "staging"
    assert by_name["origin_weather_hourly"]["schema"] == "features"
    assert by_name["plane_profile"]["schema"] == "features"
    assert all(m["config"]["file_format"] == "delta" for m in by_name.values())
    for name in ("stg_nycflights__flights", "stg_nycflights__weather", "origin_weather_hourly"):
        assert by_name[name]["config"]["materialized"] == "incremental"
        assert by_name[name]["config"]["incremental_strategy"] == "merge"


def test_sources_point_at_raw_and_models_are_tested(manifest):
    assert {s["schema"] for s in manifest["sources"].values()} == {"raw"}
    tested = {n["attached_node"] for n in manifest["nodes"].values() if n["resource_type"] == "test"}
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] == "model":
            assert unique_id in tested, f"{node['name']} has no data tests"
    unit = {u["model"] for u in manifest["unit_tests"].values()}
    assert {"stg_nycflights__flights", "origin_weather_hourly"} <= unit


def test_targets_and_arguments(settings):
    assert dbt_target(settings) == "ci"
    assert dbt_target(settings.model_copy(update={"env": "prod"})) == "prod"
    args = dbt_args(settings, "build", interval=Interval(dt.date(2013, 1, 1), dt.date(2013, 1, 2)))
    assert args[args.index("--vars") + 1] == '{"start_date": "2013-01-01", "end_date": "2013-01-02"}'
    assert "--vars" not in dbt_args(settings, "build")
    overridden = dbt_args(settings, "build", overrides={WEATHER: AUDIT})
    assert json.loads(overridden[overridden.index("--vars") + 1]) == {"relation_overrides": {WEATHER: AUDIT}}
    assert overridden[overridden.index("--target-path") + 1] == str(project_dir(settings) / "target" / "overrides")


def test_a_model_groups_build_stages_the_audit_tables_of_its_own_dbt_views_only(settings, manifest):
    """The views a group's build may build are those whose model file dbt parsed under that group's folder."""
    views = {v.name: v for v in dbt_views(feature_repo(settings))}
    paths = {name: node["original_file_path"] for name, node in models(manifest).items()}
    for group in ("staging", "features"):
        expected = {n for n, v in views.items() if paths[v.source.model].startswith(f"models/{group}/")}
        assert {n for n, v in views.items() if may_build(settings, v, model_selector(settings, group))} == expected
    assert views and all(may_build(settings, v, select) for v in views.values() for select in (None, WEATHER))


def test_a_failed_build_records_the_models_it_did_not_write_then_raises(spark, settings, monkeypatch):
    """dbt's outcome is given (a broken model needs a broken project); the records and the error are real."""
    import uuid

    from featurelake.compute import dbt
    from featurelake.errors import FeaturelakeError

    spark.range(3).write.format("delta").mode("overwrite").saveAsTable("features.dbt_written")
    version = spark.sql("DESCRIBE HISTORY features.dbt_written").first()["version"]
    statuses = {
        "model.p.written": "success",
        "model.p.broken": "error",
        "model.p.downstream": "skipped",
        "test.p.not_null_written_id": "pass",
    }
    relations = {m: f"features.dbt_{m.split('.')[-1]}" for m in statuses if m.startswith("model.")}
    outcome = dbt.DbtResult(["build"], False, statuses, relations)
    monkeypatch.setattr(dbt, "run_dbt", lambda spark, settings, args, check=True: outcome)
    run_id, day = uuid.uuid4().hex, dt.date(2013, 1, 3)
    with pytest.raises(FeaturelakeError, match=r"dbt build failed: model\.p\.broken: error$"):
        dbt.run_dbt_build(spark, settings, Interval(day, day), run_id)
    runs = spark.table("monitoring.runs").where(f"run_id = '{run_id}'").collect()
    assert {r["target"]: (r["status"], r["delta_version"], r["rows_written"]) for r in runs} == {
        "features.dbt_written": ("success", version, 3),
        "features.dbt_broken": ("error", None, None),
        "features.dbt_downstream": ("skipped", None, None),
    }
    spark.sql("DROP TABLE features.dbt_written")


@pytest.fixture(scope="module")
def published(spark, settings):
    """DAY1..DAY2 ingested; the weather view built and published through its gate for DAY1 (its first build
    when the table does not exist yet), then DAY2 (merged into a clone of the published table), then DAY2 again
    (a rerun: its merge matches the published rows of the day). Also: the compiled SQL of the last build's data
    tests (from dbt's run results, before another dbt command replaces them)."""
    import uuid

    from features.flights.ingest import ingest

    ingest(spark, settings, Interval(DAY1, DAY2))
    builds = [
        run_dbt_build(spark, settings, Interval(day, day), uuid.uuid4().hex, select=f"+{WEATHER}")
        for day in (DAY1, DAY2, DAY2)
    ]
    results = json.loads((project_dir(settings) / "target" / "overrides" / "run_results.json").read_text())
    tests = {r["unique_id"]: r["compiled_code"] for r in results["results"] if r["unique_id"].startswith("test.")}
    return builds, tests


def test_a_dbt_view_is_gated_then_published_and_equals_what_dbt_alone_builds(spark, settings, published):
    from pyspark.testing import assertDataFrameEqual

    models, (gate,) = published[0][-1]
    assert TABLE in models and "staging.stg_nycflights__weather" in models
    assert (gate.target, gate.mode, gate.table, gate.status) == (WEATHER, "gate", AUDIT, "passed")
    assert gate.published and gate.commit.table == TABLE and gate.commit.version == latest_commit(spark, TABLE).version
    assert (gate.start, gate.end, gate.row_days) == (DAY2, DAY2, 1)  # the interval's slice of the audit table
    # dbt alone: the model built in one go into another relation (no clone, no gate, no publish)
    spark.sql("DROP TABLE IF EXISTS staging.dbt_alone_weather")
    run_dbt(
        spark, settings, dbt_args(settings, "run", select=WEATHER, overrides={WEATHER: "staging.dbt_alone_weather"})
    )
    days = f"obs_date BETWEEN '{DAY1}' AND '{DAY2}'"
    alone = spark.table("staging.dbt_alone_weather").where(days)
    assert alone.count() > 0
    assertDataFrameEqual(spark.table(TABLE).where(days), alone)
    # the merge into the clone read the interval's partitions only: its condition bounds the target's date
    merge = spark.sql(f"DESCRIBE HISTORY {AUDIT}").where("operation = 'MERGE'").first()
    bounds = rf"\(obs_date#\d+ >= {DAY2}\) AND \(obs_date#\d+ <= {DAY2}\)"
    assert re.search(bounds, merge["operationParameters"]["predicate"]), merge["operationParameters"]["predicate"]
    props = table_properties(spark, TABLE)
    assert props["delta.enableChangeDataFeed"] == "true"
    assert props["delta.logRetentionDuration"] == settings.storage.log_retention
    assert list(spark.sql(f"DESCRIBE DETAIL {TABLE}").first()["partitionColumns"]) == ["obs_date"]


def test_an_interval_builds_data_tests_read_its_partitions_and_a_full_build_tests_everything(
    spark, settings, published
):
    bound = f"obs_date between date_sub(date'{DAY2}', 0) and date'{DAY2}'"
    _, tests = published
    # the last build (DAY2): the tests of the weather source, its staging model and the incremental feature model
    assert len(tests) >= 6 and all(bound in code for code in tests.values()), tests
    # without an interval (a full build) the same test reads the whole table
    run_dbt(spark, settings, dbt_args(settings, "compile", select="not_null_stg_nycflights__weather_obs_ts"))
    (whole,) = json.loads((project_dir(settings) / "target" / "run_results.json").read_text())["results"]
    assert "stg_nycflights__weather" in whole["compiled_code"] and "between" not in whole["compiled_code"]


def test_a_dbt_view_batch_that_fails_its_suite_is_not_published(spark, settings, published):
    """An impossible temperature in the raw weather of DAY2: dbt builds it (no dbt test covers it), the view's
    suite fails, the published table keeps its version and rows; once the raw row is fixed, a re-run publishes."""
    import uuid

    from featurelake.validation import ValidationFailed

    before = latest_commit(spark, TABLE).version
    row = spark.sql(f"SELECT origin, obs_ts, temp FROM raw.weather WHERE obs_date = '{DAY2}' AND temp < 100").first()
    where = f"origin = '{row.origin}' AND obs_ts = TIMESTAMP '{row.obs_ts}'"
    spark.sql(f"UPDATE raw.weather SET temp = 999 WHERE {where}")
    run_id = uuid.uuid4().hex
    try:
        with pytest.raises(ValidationFailed, match=f"feature view '{WEATHER}'") as failed:
            run_dbt_build(spark, settings, Interval(DAY2, DAY2), run_id, select=f"+{WEATHER}")
    finally:
        spark.sql(f"UPDATE raw.weather SET temp = {row.temp} WHERE {where}")
    result = failed.value.result
    assert [(o.expectation_type, o.columns) for o in result.failures] == [
        ("expect_column_values_to_be_between", ("temp",))
    ]
    assert not result.published and result.published_version_before == before
    assert f"NOT published: {TABLE} stays at version {before}" in str(failed.value)
    assert latest_commit(spark, TABLE).version == before
    assert spark.table(TABLE).where("temp = 999").count() == 0
    assert spark.table(AUDIT).where(f"temp = 999 AND {where}").count() == 1  # kept for inspection
    (record,) = spark.table("monitoring.runs").where(f"run_id = '{run_id}' AND target = '{TABLE}'").collect()
    assert record.status == "failed" and record.message.startswith("ValidationFailed: ")

    _, (fixed,) = run_dbt_build(spark, settings, Interval(DAY2, DAY2), uuid.uuid4().hex, select=f"+{WEATHER}")
    assert fixed.published and fixed.commit.version > before
    assert spark.table(TABLE).where(f"temp = {row.temp} AND {where}").count() == 1
