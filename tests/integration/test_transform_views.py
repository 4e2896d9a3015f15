"""Transform views (a pure PySpark function of the source rows) computed into Delta through the gate.

A two-feature transform over a small synthetic event table: the feature table equals the function applied
by hand in Python; re-running a day replaces exactly that day (late rows picked up, other days untouched);
an output that lacks a declared feature stops the run naming it, with nothing published, while the other views
of the run are computed (one at a time or concurrently).
"""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from featurelake.runs import Interval

pytestmark = pytest.mark.integration

DAY1, DAY2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)

DEFINITIONS = """
from featurelake.repo.definitions import (
    DeltaTableSource,
    Entity,
    Feature,
    FeatureView,
    TransformComputation,
    ValueType,
)


def late_flags(df, threshold):
    from pyspark.sql import functions as F

    return df.select(
        "carrier",
        F.col("ts").alias("event_timestamp"),
        "source_date",
        (F.col("dep_delay") > threshold).alias("is_late"),
        (F.col("dep_delay") * 60).cast("bigint").alias("delay_seconds"),
    )


def forgets_a_feature(df, threshold):
    return late_flags(df, threshold).drop("delay_seconds")


airline = Entity(name="airline", join_keys=["carrier"])
events = DeltaTableSource(
    name="transform_events", table="raw.transform_events", timestamp_column="ts", date_partition_column="d"
)
FEATURES = [Feature(name="is_late", dtype=ValueType.BOOL), Feature(name="delay_seconds", dtype=ValueType.INT64)]
late_departures = FeatureView(
    name="late_departures", entities=[airline], source=events, features=FEATURES,
    computation=TransformComputation(function=late_flags, params={"threshold": 15}),
)
broken_departures = FeatureView(
    name="broken_departures", entities=[airline], source=events, features=FEATURES,
    computation=TransformComputation(function=forgets_a_feature, params={"threshold": 15}),
)
broken_arrivals = FeatureView(
    name="broken_arrivals", entities=[airline], source=events, features=FEATURES,
    computation=TransformComputation(function=forgets_a_feature, params={"threshold": 15}),
)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, settings):
    root = tmp_path_factory.mktemp("transform_project")
    (root / "features").mkdir()
    (root / "features" / "views.py").write_text(textwrap.dedent(DEFINITIONS))
    project_settings = settings.model_copy(
        update={
            "root": root,
            "spark": settings.spark.model_copy(update={"jars_dir": settings.path(settings.spark.jars_dir)}),
        }
    )
    from featurelake.repo import load_repo

    return project_settings, load_repo(root / "features")


def events(spark, rows):
    """Write (carrier, day, hour, dep_delay) events into raw.transform_events, replacing their days."""
    from featurelake.tables import write_interval

    data = [(c, d, dt.datetime.combine(d, dt.time(h)), float(delay)) for c, d, h, delay in rows]
    df = spark.createDataFrame(data, "carrier string, d date, ts timestamp, dep_delay double")
    days = [r[1] for r in data]
    write_interval(df, "raw.transform_events", date_column="d", start=min(days), end=max(days))


def expected(rows, threshold=15):
    return sorted(
        (c, dt.datetime.combine(d, dt.time(h)), delay > threshold, int(delay * 60), d) for c, d, h, delay in rows
    )


def table_rows(spark, table):
    return sorted(
        (r.carrier, r.event_timestamp, r.is_late, r.delay_seconds, r.source_date) for r in spark.table(table).collect()
    )


def test_transform_view_matches_the_function_by_hand_and_reruns_replace_one_day(spark, project):
    from featurelake.compute.pipeline import compute

    settings, repo = project
    day1 = [("AA", DAY1, 6, 3.0), ("AA", DAY1, 9, 42.0), ("UA", DAY1, 7, 16.0)]
    day2 = [("UA", DAY2, 8, -4.0), ("DL", DAY2, 10, 15.0)]
    events(spark, day1 + day2)
    report = compute(spark, settings, Interval(DAY1, DAY2), views=["late_departures"], dbt=False, repo=repo)
    (result,) = report.views
    table = repo.view("late_departures").offline_table
    assert result.features.table == table and result.validation.status == "passed"
    assert table_rows(spark, table) == expected(day1 + day2)
    row = spark.table(table).where("carrier = 'AA' AND is_late").first()
    assert row.created_timestamp == row.event_timestamp and row.event_date == DAY1

    # A late event for day 1 arrives: re-running day 1 alone picks it up and leaves day 2 as it was.
    late = [("DL", DAY1, 23, 120.0)]
    events(spark, day1 + late)
    before = spark.sql(f"DESCRIBE HISTORY {table}").first()["version"]
    compute(spark, settings, Interval(DAY1, DAY1), views=["late_departures"], dbt=False, repo=repo)
    assert table_rows(spark, table) == expected(day1 + late + day2)
    assert spark.sql(f"DESCRIBE HISTORY {table}").first()["version"] == before + 1

    # Re-running the same day again changes nothing in the content.
    compute(spark, settings, Interval(DAY1, DAY1), views=["late_departures"], dbt=False, repo=repo)
    assert table_rows(spark, table) == expected(day1 + late + day2)


def test_output_missing_a_declared_feature_is_refused_naming_it(spark, project):
    from featurelake.compute.pipeline import compute
    from featurelake.errors import InputError

    settings, repo = project
    events(spark, [("AA", DAY1, 6, 3.0)])
    with pytest.raises(InputError, match=r"feature view 'broken_departures'.*'delay_seconds' is missing"):
        compute(spark, settings, Interval(DAY1, DAY1), views=["broken_departures"], dbt=False, repo=repo)
    assert not spark.catalog.tableExists(repo.view("broken_departures").offline_table)


@pytest.mark.parametrize("parallel_views", [1, 2])
def test_a_failing_view_does_not_stop_the_others_and_the_run_fails_naming_it(spark, project, parallel_views):
    from featurelake.compute.pipeline import compute
    from featurelake.errors import InputError

    settings, repo = project
    compute_settings = settings.compute.model_copy(update={"parallel_views": parallel_views})
    settings = settings.model_copy(update={"compute": compute_settings})
    day = dt.date(2024, 6, parallel_views)
    rows = [("AA", day, 6, 3.0), ("UA", day, 7, 16.0 + parallel_views)]
    events(spark, rows)
    views = ["broken_departures", "late_departures", "broken_arrivals"]
    with pytest.raises(InputError, match=r"feature view 'broken_departures'.*'delay_seconds' is missing") as failed:
        compute(spark, settings, Interval(day, day), views=views, dbt=False, repo=repo)
    (note,) = failed.value.__notes__
    assert note.startswith("also failed: broken_arrivals (") and "feature view 'broken_arrivals'" in note
    assert "'delay_seconds' is missing" in note
    table = repo.view("late_departures").offline_table
    computed = [r for r in table_rows(spark, table) if r[-1] == day]
    assert computed == expected(rows)
    assert not spark.catalog.tableExists(repo.view("broken_departures").offline_table)
    # Each view's run is recorded, the failed ones with their error (`featurelake status` shows them failing).
    runs = spark.sql(
        "SELECT target, status, message, delta_version FROM monitoring.runs "
        f"WHERE job = 'compute' AND interval_start = DATE'{day}' AND interval_end = DATE'{day}'"
    ).collect()
    by_target = {r["target"]: r for r in runs}
    assert len(by_target) == len(runs) == 3
    assert by_target[table]["status"] == "success" and by_target[table]["delta_version"] is not None
    for broken in ("broken_departures", "broken_arrivals"):
        record = by_target[repo.view(broken).offline_table]
        assert (record["status"], record["delta_version"]) == ("failed", None)
        assert record["message"].startswith("InputError: ") and f"feature view '{broken}'" in record["message"]


def test_dbt_views_are_not_computed_by_featurelake(project):
    from featurelake.compute.pipeline import computed_views
    from featurelake.errors import InputError
    from featurelake.repo import load_repo
    from tests.conftest import REPO_ROOT

    settings, repo = project
    assert computed_views(repo) == ["broken_arrivals", "broken_departures", "late_departures"]
    with pytest.raises(InputError, match="plane_profile.*computed by dbt"):
        computed_views(load_repo(REPO_ROOT / "features"), ["plane_profile"])
