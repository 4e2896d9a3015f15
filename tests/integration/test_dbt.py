"""The dbt project parses into a manifest with the layout featurelake relies on (no warehouse needed):
schemas used verbatim as Spark databases, Delta everywhere, incremental merge where data grows, tests."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from featurelake.compute.dbt import dbt_args, dbt_target, project_dir, run_dbt
from featurelake.runs import Interval

pytestmark = pytest.mark.integration


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


def test_a_failed_build_records_the_models_it_did_not_write_then_raises(spark, settings, monkeypatch):
    """dbt's outcome is given (a broken model needs a broken project); the records and the error are real."""
    import uuid

    from featurelake.compute import dbt
    from featurelake.compute.pipeline import run_dbt_build
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
        run_dbt_build(spark, settings, Interval(day, day), run_id)
    runs = spark.table("monitoring.runs").where(f"run_id = '{run_id}'").collect()
    assert {r["target"]: (r["status"], r["delta_version"], r["rows_written"]) for r in runs} == {
        "features.dbt_written": ("success", version, 3),
        "features.dbt_broken": ("error", None, None),
        "features.dbt_downstream": ("skipped", None, None),
    }
    spark.sql("DROP TABLE features.dbt_written")
