"""Validation suites, targets, run parameters and result descriptions (no Spark unless a test asks for it)."""

from __future__ import annotations

import datetime as dt
import math
import re
import textwrap
from pathlib import Path

import pytest

from featurelake.config import load_settings
from featurelake.errors import ConfigError, FeaturelakeError
from featurelake.repo.definitions import (
    Aggregation,
    DbtModelSource,
    DeltaTableSource,
    Entity,
    Feature,
    FeatureView,
    ValueType,
    WindowComputation,
)
from featurelake.runs import Interval
from featurelake.validation.results import outcome_from
from featurelake.validation.suites import (
    MIN_LATEST_TIMESTAMP,
    MIN_ROW_COUNT,
    build_suite,
    custom_expectations,
    run_parameters,
)
from featurelake.validation.targets import raw_target, view_target
from tests.conftest import REPO_ROOT

ROUTE = Entity(name="route", join_keys=["origin", "dest"])
EVENTS = DeltaTableSource(name="events", table="raw.events", timestamp_column="ts", date_partition_column="d")


def window_view(**extra) -> FeatureView:
    return FeatureView(
        name="route_delays",
        version=3,
        entities=[ROUTE],
        source=EVENTS,
        computation=WindowComputation(
            tile="1h",
            aggregations=[
                Aggregation(column="delay", function="mean", windows=["1h", "1d"]),
                Aggregation(column="flight_id", function="count", windows=["1d"], name="flights"),
                Aggregation(column="dest", function="count_distinct", windows=["7d"], name="dests"),
            ],
        ),
        **extra,
    )


def settings_with(tmp_path: Path, **validation) -> object:
    env = {"FEATURELAKE_HOME": str(REPO_ROOT), "FEATURELAKE_ENV": "ci"}
    env.update({f"FEATURELAKE__VALIDATION__{k.upper()}": str(v) for k, v in validation.items()})
    return load_settings(environ=env)


def test_view_target_follows_the_offline_layout():
    target = view_target(window_view(), ["origin", "dest"])
    assert target.table == "features.route_delays_v3"
    assert target.audit_table == "staging.route_delays_v3__audit"
    assert list(target.columns) == [
        "origin",
        "dest",
        "event_timestamp",
        "created_timestamp",
        "event_date",
        "delay_mean_1h",
        "delay_mean_1d",
        "flights_1d",
        "dests_7d",
    ]
    assert target.columns["origin"] is None and target.columns["event_date"] == ValueType.DATE
    assert target.columns["flights_1d"] == ValueType.INT64 and target.columns["delay_mean_1d"] == ValueType.DOUBLE
    assert target.exact_columns and target.policy == "strict"
    assert target.non_negative == ("flights_1d", "dests_7d")
    assert target.not_null == ("origin", "dest", "event_timestamp", "created_timestamp", "event_date")
    assert target.freshness == dt.timedelta(days=1)  # the batch schedule when expected_freshness is unset
    assert view_target(window_view(expected_freshness="6h"), ["origin", "dest"]).freshness == dt.timedelta(hours=6)
    assert view_target(window_view(validation_policy="warn"), ["origin", "dest"]).policy == "warn"


def test_a_dbt_view_keeps_its_source_columns_and_may_have_more():
    source = DbtModelSource(name="profiles", model="plane_profile", timestamp_column="valid_from")
    view = FeatureView(
        name="plane_profile",
        entities=["plane"],
        source=source,
        features=[Feature(name="seats", dtype=ValueType.INT32)],
    )
    target = view_target(view, ["tailnum"])
    assert target.table == "features.plane_profile" and not target.exact_columns
    assert target.columns == {"tailnum": None, "valid_from": ValueType.TIMESTAMP, "seats": ValueType.INT32}
    assert target.freshness is None  # no date partition: a static table has no interval to be fresh for


@pytest.mark.parametrize(
    ("previous", "days", "ratio", "floor", "expected"),
    [
        (None, 1, 0.5, 1, 1),  # no history: the floor per day
        (None, 3, 0.5, 2, 6),
        ((1000, 2), 3, 0.5, 1, 750),  # 500 rows/day, 3 days, half of it
        ((7, 1), 1, 0.8, 1, 6),  # ceil(5.6)
        ((10, 10), 1, 0.5, 5, 5),  # the floor wins over 0.5 rows/day
    ],
)
def test_row_count_floor_follows_the_previous_good_run(tmp_path, previous, days, ratio, floor, expected):
    settings = settings_with(tmp_path, min_row_ratio=ratio, min_rows_per_day=floor)
    target = view_target(window_view(), ["origin", "dest"])
    start = dt.date(2024, 1, 1)
    end = start + dt.timedelta(days=days - 1)
    prev = None
    if previous:
        rows, prev_days = previous
        prev = (rows, prev_days)
        assert expected == max(floor * days, math.ceil(ratio * rows / prev_days * days))
    params = run_parameters(target, settings, Interval(start, end), prev)
    assert params[MIN_ROW_COUNT] == expected


def test_freshness_threshold_is_the_interval_end_minus_freshness_and_slack(tmp_path):
    settings = settings_with(tmp_path, freshness_slack="2h")
    target = view_target(window_view(expected_freshness="6h"), ["origin", "dest"])
    params = run_parameters(target, settings, Interval(dt.date(2024, 1, 1), dt.date(2024, 1, 2)), None)
    assert params[MIN_LATEST_TIMESTAMP] == dt.datetime(2024, 1, 2, 16, 0)


def test_validation_settings_are_validated(tmp_path):
    assert settings_with(tmp_path, min_row_ratio=0.9).validation.min_row_ratio == 0.9
    with pytest.raises(ConfigError, match="validation.min_row_ratio"):
        settings_with(tmp_path, min_row_ratio=1.5)
    with pytest.raises(ConfigError, match="freshness_slack"):
        settings_with(tmp_path, freshness_slack="soon")


def write_module(folder: Path, name: str, body: str) -> None:
    (folder / "feature_views").mkdir(parents=True, exist_ok=True)
    (folder / "feature_views" / f"{name}.py").write_text(textwrap.dedent(body))


def test_suite_is_generated_plus_hand_written(tmp_path):
    folder = tmp_path / "expectations"
    write_module(
        folder,
        "route_delays",
        """
        import great_expectations.expectations as gxe

        def expectations(target):
            return [gxe.ExpectColumnValuesToBeInSet(column="origin", value_set=["JFK"])]
        """,
    )
    settings = settings_with(tmp_path, expectations_dir=folder)
    target = view_target(window_view(), ["origin", "dest"])
    suite = build_suite(target, settings)
    kinds = [(e.expectation_type, e.meta["source"]) for e in suite.expectations]
    assert ("expect_column_values_to_be_in_set", "expectations/feature_views/route_delays.py") in kinds
    assert sum(k == "expect_column_values_to_be_of_type" for k, _ in kinds) == 7  # typed columns (keys untyped)
    assert sum(k == "expect_column_values_to_not_be_null" for k, _ in kinds) == 5
    assert {e.column for e in suite.expectations if e.expectation_type == "expect_column_values_to_be_between"} == {
        "flights_1d",
        "dests_7d",
    }
    row_count = next(e for e in suite.expectations if e.expectation_type == "expect_table_row_count_to_be_between")
    assert row_count.min_value == {"$PARAMETER": MIN_ROW_COUNT}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("X = 1\n", "define a function `expectations(target)`"),
        ("def expectations(target):\n    return [1]\n", "non-expectations"),
        ("def expectations(target):\n    raise ValueError('no column delay_max_*')\n", "no column delay_max_"),
    ],
)
def test_a_broken_suite_module_is_named(tmp_path, body, message):
    folder = tmp_path / "expectations"
    write_module(folder, "route_delays", body)
    target = view_target(window_view(), ["origin", "dest"])
    with pytest.raises(FeaturelakeError, match=re.escape(message)) as caught:
        custom_expectations(target, folder)
    assert "route_delays.py" in str(caught.value)


def test_every_demo_view_and_raw_table_has_a_suite_on_its_own_columns():
    """The suites in expectations/ refer only to columns their targets have (typos fail here, not at night)."""
    from featurelake.repo import load_repo

    settings = load_settings(environ={"FEATURELAKE_HOME": str(REPO_ROOT), "FEATURELAKE_ENV": "ci"})
    repo = load_repo(REPO_ROOT / "features")
    targets = [view_target(v, repo.join_keys(v)) for v in repo.views.values()]
    targets += [raw_target(t) for t in repo.raw_tables.values()]
    for target in targets:
        custom = custom_expectations(target, REPO_ROOT / "expectations")
        assert custom, f"no hand-written expectations for {target.name}"
        for e in custom:
            kwargs = e.configuration.kwargs
            columns = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
            columns += kwargs.get("column_list") or []
            assert set(columns) <= set(target.columns), (target.name, e.expectation_type, columns)
        assert build_suite(target, settings).name == target.name


def test_raw_targets_match_what_ingest_writes(spark):
    from pyspark.sql import types as T

    from featurelake.repo import load_repo
    from features.flights.ingest import FLIGHTS, WEATHER, parse_flights, parse_weather

    def typed(source):
        fields = [T.StructField(f.name, T._parse_datatype_string(f.type)) for f in source.fields]
        extra = [
            T.StructField("_reasons", T.ArrayType(T.StringType())),
            T.StructField("_source_row", T.StringType()),
            T.StructField("_source_file", T.StringType()),
        ]
        return spark.createDataFrame([], T.StructType(fields + extra))

    zones = spark.createDataFrame([], "faa string, tzone string")
    written = {
        "raw.flights": parse_flights(typed(FLIGHTS), zones, "America/New_York"),
        "raw.weather": parse_weather(typed(WEATHER)),
    }
    for name, df in written.items():
        schema = {f.name: f.dataType.simpleString() for f in df.schema if not f.name.startswith("_")}
        target = raw_target(load_repo(REPO_ROOT / "features").raw_table(name))
        assert {c: (t.value if t else None) for c, t in target.columns.items()} == schema


def test_outcomes_say_what_was_expected_and_observed():
    column_map = outcome_from(
        {
            "success": False,
            "expectation_config": {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "delay", "min_value": -120, "max_value": 1800.0, "batch_id": "b"},
            },
            "result": {
                "element_count": 200,
                "unexpected_count": 3,
                "unexpected_percent": 1.5,
                "partial_unexpected_list": [99999.0, 5000.5, 99999.0],
                "partial_unexpected_index_list": [{"k": "a", "delay": 99999.0}, {"k": "b", "delay": 5000.5}],
            },
            "exception_info": {"raised_exception": False},
        },
        sample_rows=1,
    )
    assert column_map.expected == "values between -120 and 1800"
    assert column_map.observed == "3 of 200 rows fail (1.50%); e.g. [99999, 5000.5]"
    assert column_map.sample == ({"k": "a", "delay": 99999.0},) and column_map.columns == ("delay",)
    assert "batch_id" not in column_map.kwargs

    schema = outcome_from(
        {
            "success": False,
            "expectation_config": {
                "type": "expect_table_columns_to_match_set",
                "kwargs": {"column_set": ["a", "b", "c"], "exact_match": True},
            },
            "result": {"observed_value": ["a", "c", "z"]},
        },
        sample_rows=5,
    )
    assert schema.expected == "exactly columns [a, b, c]" and schema.observed == "missing [b]; unexpected [z]"

    broken = outcome_from(
        {
            "success": False,
            "expectation_config": {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "gone"}},
            "result": {},
            "exception_info": {
                "metric-id": {"exception_message": 'Error: The column "gone" in BatchData does not exist.\nmore'}
            },
        },
        sample_rows=5,
    )
    assert broken.observed == 'error: Error: The column "gone" in BatchData does not exist.'
    assert not broken.success and broken.error

    passed = outcome_from(
        {
            "success": True,
            "expectation_config": {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10}},
            "result": {"observed_value": 1234},
        },
        sample_rows=5,
    )
    assert passed.success and passed.observed == "1,234 rows" and passed.expected == "row count >= 10"


def test_ge_keeps_the_newest_results_of_a_suite_and_data_docs_drop_the_pages_of_the_others(tmp_path):
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    from featurelake.validation.gate import prune_results

    context = gx.get_context(mode="file", project_root_dir=str(tmp_path))
    batch = context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("all")
    for name in ("pruned", "other"):
        suite = context.suites.add(gx.ExpectationSuite(name, [gxe.ExpectColumnValuesToNotBeNull(column="x")]))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        for day in (3, 1, 4, 2):  # stored out of time order
            run_id = RunIdentifier(run_name=f"day{day}", run_time=dt.datetime(2013, 1, day, tzinfo=dt.UTC))
            definition.run(batch_parameters={"dataframe": pd.DataFrame({"x": [day]})}, run_id=run_id)
    context.build_data_docs()

    def stored(suite: str) -> list[str]:
        keys = context.validation_results_store.list_keys()
        return sorted(k.run_id.run_name for k in keys if k.expectation_suite_identifier.name == suite)

    def pages(suite: str) -> list[str]:
        site = tmp_path / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations" / suite
        return sorted(p.relative_to(site).parts[0] for p in site.rglob("*.html"))

    assert stored("pruned") == pages("pruned") == ["day1", "day2", "day3", "day4"]
    prune_results(context, "pruned", 2)
    context.build_data_docs()
    assert stored("pruned") == pages("pruned") == ["day3", "day4"]
    folders = tmp_path / "gx" / "uncommitted" / "validations" / "pruned"
    assert sorted(p.name for p in folders.iterdir()) == ["day3", "day4"]  # no empty folders left to list
    assert stored("other") == pages("other") == ["day1", "day2", "day3", "day4"]
