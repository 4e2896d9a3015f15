"""The validation gate end to end on a small synthetic feature repository and the session Spark.

A strict and a warn window view with hand-made batches: a good batch publishes; a bad batch (null key,
out-of-range value, duplicated keys, dropped column, empty day) is blocked by the strict view (publish never
called, the feature table keeps its version) and published-with-failures by the warn view; every failure is
named in the message, the results table and the CLI summary.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DAY1, DAY2, DAY3, DAY4 = (dt.date(2024, 3, d) for d in (1, 2, 3, 4))
CARRIERS = ["AA", "UA", "DL"]
AUDIT = "staging.gate_strict_v1__audit"

DEFINITIONS = """
from featurelake.repo.definitions import Aggregation, DeltaTableSource, Entity, FeatureView, WindowComputation

airline = Entity(name="airline", join_keys=["carrier"])
events = DeltaTableSource(name="events", table="raw.gate_events", timestamp_column="ts", date_partition_column="d")
_computation = WindowComputation(
    tile="1h",
    aggregations=[
        Aggregation(column="dep_delay", function="mean", windows=["1h"]),
        Aggregation(column="flight_id", function="count", windows=["1h"], name="departures"),
    ],
)
gate_strict = FeatureView(name="gate_strict", entities=[airline], source=events, computation=_computation)
gate_warn = FeatureView(
    name="gate_warn", entities=[airline], source=events, computation=_computation, validation_policy="warn"
)
"""

SUITE = """
import great_expectations.expectations as gxe


def expectations(target):
    return [
        gxe.ExpectColumnValuesToBeInSet(column="carrier", value_set=["AA", "UA", "DL"]),
        gxe.ExpectColumnValuesToBeBetween(column="dep_delay_mean_1h", min_value=-120, max_value=1800),
    ]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, settings):
    """A project root with the synthetic definitions and their suites; settings pointing at it."""
    root = tmp_path_factory.mktemp("project")
    (root / "features").mkdir()
    (root / "features" / "views.py").write_text(textwrap.dedent(DEFINITIONS))
    for name in ("gate_strict", "gate_warn"):
        folder = root / "expectations" / "feature_views"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.py").write_text(textwrap.dedent(SUITE))
    project_settings = settings.model_copy(
        update={
            "root": root,
            "spark": settings.spark.model_copy(update={"jars_dir": settings.path(settings.spark.jars_dir)}),
        }
    )
    return root, project_settings


@pytest.fixture(scope="module")
def repo(project):
    from featurelake.repo import load_repo

    return load_repo(project[0] / "features")


def batch(spark, day: dt.date, *, scale: float = 1.0):
    """A good batch of a day: every carrier at every hour, delays in range, counts >= 0."""
    rows = []
    for hour in range(24):
        ts = dt.datetime.combine(day, dt.time(hour))
        for i, carrier in enumerate(CARRIERS):
            rows.append((carrier, ts, ts, day, float(10 * i + hour) * scale - 5.0, hour % 4 + i))
    schema = (
        "carrier string, event_timestamp timestamp, created_timestamp timestamp, event_date date, "
        "dep_delay_mean_1h double, departures_1h bigint"
    )
    return spark.createDataFrame(rows, schema)


class Publisher:
    """The publish callback: replaceWhere of the interval into the view's table; remembers its calls."""

    def __init__(self, table: str, start: dt.date, end: dt.date):
        self.table, self.start, self.end, self.calls = table, start, end, 0

    def __call__(self, df):
        from featurelake.tables import write_interval

        self.calls += 1
        return write_interval(df, self.table, date_column="event_date", start=self.start, end=self.end)


def run_gate(spark, settings, repo, view_name, df, day, publisher=None):
    from featurelake.runs import Interval
    from featurelake.validation import gate
    from featurelake.validation.targets import view_target

    view = repo.view(view_name)
    publisher = publisher or Publisher(view.offline_table, day, day)
    result = gate(spark, settings, view_target(view, repo.join_keys(view)), df, Interval(day, day), publish=publisher)
    return result, publisher


def version(spark, table):
    from featurelake.tables import latest_commit

    return latest_commit(spark, table).version


def results_of(spark, run_id):
    from featurelake.validation.results import RESULTS_TABLE

    return {
        (r["expectation_type"], tuple(r["columns"])): r
        for r in spark.table(RESULTS_TABLE).where(f"run_id = '{run_id}'").collect()
    }


def counted(spark, df):
    """``df`` with its rows counted as Spark computes them (an accumulator a Python UDF adds to)."""
    from pyspark.sql import functions as F

    computed = spark.sparkContext.accumulator(0)

    @F.udf("double")
    def count_row(value):
        computed.add(1)
        return value

    return df.withColumn("dep_delay_mean_1h", count_row("dep_delay_mean_1h")), computed


def audit_version(spark):
    from featurelake.tables import table_exists

    return version(spark, AUDIT) if table_exists(spark, AUDIT) else None


def test_a_good_batch_passes_and_publishes(spark, project, repo):
    _, settings = project
    audit_before = audit_version(spark)
    rows, computed = counted(spark, batch(spark, DAY1))
    result, publisher = run_gate(spark, settings, repo, "gate_strict", rows, DAY1)
    assert result.success and result.published and publisher.calls == 1
    assert result.commit.version == version(spark, "features.gate_strict_v1")
    # the rows were computed once: the suite validated the rows published (held on the executors meanwhile), and
    # a batch that passes is not written to the audit table
    assert computed.value == 24 * len(CARRIERS)
    assert audit_version(spark) == audit_before
    assert spark.table("features.gate_strict_v1").count() == 24 * len(CARRIERS)
    assert result.row_count == 24 * len(CARRIERS)
    stored = results_of(spark, result.run_id)
    assert len(stored) == len(result.outcomes) and all(r["success"] and r["published"] for r in stored.values())
    # the results name the version that holds the validated rows: the publishing commit
    assert {(r["table_name"], r["delta_version"]) for r in stored.values()} == {
        ("features.gate_strict_v1", result.commit.version)
    }
    assert (result.table, result.delta_version) == ("features.gate_strict_v1", result.commit.version)
    # generated (schema, keys, uniqueness, counts, row count, freshness) and hand-written expectations ran
    kinds = {k for k, _ in stored}
    assert {
        "expect_table_columns_to_match_set",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_not_be_null",
        "expect_compound_columns_to_be_unique",
        "expect_table_row_count_to_be_between",
        "expect_column_max_to_be_between",
        "expect_column_values_to_be_in_set",
    } <= kinds
    assert ("expect_column_values_to_be_between", ("departures_1h",)) in stored  # counts >= 0, generated
    index = settings.state_path / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert index.is_file() and "gate_strict" in index.read_text()
    assert result.data_docs and result.run_id in result.data_docs and Path(result.data_docs[7:]).is_file()


def corrupted(spark, day):
    """Day's batch with a null key, an out-of-range delay and a duplicated (carrier, event_timestamp)."""
    from pyspark.sql import functions as F

    good = batch(spark, day)
    hour = F.hour("event_timestamp")
    bad = good.withColumn("carrier", F.when(hour == 3, F.lit(None)).otherwise(F.col("carrier"))).withColumn(
        "dep_delay_mean_1h", F.when(hour == 5, F.lit(99999.0)).otherwise(F.col("dep_delay_mean_1h"))
    )
    return bad.unionByName(good.where(hour == 7).limit(1))


CORRUPTED_FAILURES = {
    ("expect_column_values_to_not_be_null", ("carrier",)),
    ("expect_column_values_to_be_between", ("dep_delay_mean_1h",)),
    ("expect_compound_columns_to_be_unique", ("carrier", "event_timestamp")),
}
DROPPED_COLUMN_FAILURES = {
    ("expect_table_columns_to_match_set", ()),
    ("expect_column_values_to_be_of_type", ("departures_1h",)),
    ("expect_column_values_to_be_between", ("departures_1h",)),
}
EMPTY_DAY_FAILURES = {
    ("expect_table_row_count_to_be_between", ()),
    ("expect_column_max_to_be_between", ("event_timestamp",)),
}


def blocked(spark, settings, repo, df):
    """Run the strict gate on a bad batch; check nothing was published; return the failed result."""
    from featurelake.validation import ValidationFailed

    table = "features.gate_strict_v1"
    before, rows_before = version(spark, table), spark.table(table).count()
    publisher = Publisher(table, DAY2, DAY2)
    with pytest.raises(ValidationFailed) as caught:
        run_gate(spark, settings, repo, "gate_strict", df, DAY2, publisher)
    result = caught.value.result
    assert publisher.calls == 0 and not result.published and result.commit is None  # publish never ran
    assert version(spark, table) == before and spark.table(table).count() == rows_before
    assert result.published_version_before == before
    message = str(caught.value)
    assert "gate_strict" in message and f"{DAY2}..{DAY2}" in message and f"stays at version {before}" in message
    for o in result.failures:  # every failure is named with what was expected and what was observed
        assert f"- {o.label}: expected {o.expected}; observed {o.observed}" in message
    stored = results_of(spark, result.run_id)
    assert {k for k, r in stored.items() if not r["success"]} == {
        (o.expectation_type, o.columns) for o in result.failures
    }
    assert not any(r["published"] for r in stored.values())
    # the rejected rows are kept for inspection in the audit table, the version the results name
    assert spark.table(AUDIT).count() == df.count()
    audit = (AUDIT, audit_version(spark))
    assert (result.table, result.delta_version) == audit
    assert {(r["table_name"], r["delta_version"]) for r in stored.values()} == {audit}
    # the failing first pass was replaced by the detailed one: one stored GE result, the one in Data Docs
    validations = settings.state_path / "gx" / "uncommitted" / "validations"
    assert len(list(validations.glob(f"*/{result.run_id}/*/*.json"))) == 1
    assert result.data_docs and result.run_id in result.data_docs
    return result


def test_strict_blocks_nulls_out_of_range_duplicates_and_a_dropped_column(spark, project, repo):
    _, settings = project
    result = blocked(spark, settings, repo, corrupted(spark, DAY2).drop("departures_1h"))
    by_kind = {(o.expectation_type, o.columns): o for o in result.failures}
    assert set(by_kind) == CORRUPTED_FAILURES | DROPPED_COLUMN_FAILURES
    n = 24 * len(CARRIERS) + 1
    nulls = by_kind[("expect_column_values_to_not_be_null", ("carrier",))]
    assert nulls.unexpected_count == len(CARRIERS) and nulls.element_count == n
    assert nulls.expected == "no nulls" and nulls.observed.startswith(f"{len(CARRIERS)} of {n} rows fail")
    assert nulls.sample and all(
        row["carrier"] is None and row["event_timestamp"].startswith(f"{DAY2}T03") for row in nulls.sample
    )
    delays = by_kind[("expect_column_values_to_be_between", ("dep_delay_mean_1h",))]
    assert delays.expected == "values between -120 and 1800" and "99999" in delays.observed
    assert {row["dep_delay_mean_1h"] for row in delays.sample} == {99999.0}
    dupes = by_kind[("expect_compound_columns_to_be_unique", ("carrier", "event_timestamp"))]
    keys = Counter((r["carrier"], r["event_timestamp"]) for r in corrupted(spark, DAY2).collect())
    assert dupes.unexpected_count == sum(n for n in keys.values() if n > 1)  # (AA, 07:00) x2, (NULL, 03:00) x3
    schema = by_kind[("expect_table_columns_to_match_set", ())]
    assert schema.observed == "missing [departures_1h]"
    assert by_kind[("expect_column_values_to_be_of_type", ("departures_1h",))].observed.startswith("error:")


def test_strict_blocks_an_empty_day(spark, project, repo):
    _, settings = project
    result = blocked(spark, settings, repo, batch(spark, DAY2).limit(0))
    assert {(o.expectation_type, o.columns) for o in result.failures} == EMPTY_DAY_FAILURES
    assert result.row_count == 0


def test_warn_publishes_and_records_failures(spark, project, repo):
    _, settings = project
    table = "features.gate_warn_v1"
    result, publisher = run_gate(spark, settings, repo, "gate_warn", corrupted(spark, DAY3), DAY3)
    assert not result.success and result.published and publisher.calls == 1
    assert version(spark, table) == result.commit.version
    assert spark.table(table).count() == 24 * len(CARRIERS) + 1
    stored = results_of(spark, result.run_id)
    assert all(r["published"] and r["policy"] == "warn" for r in stored.values())
    assert {k for k, r in stored.items() if not r["success"]} == CORRUPTED_FAILURES


def test_cli_summary_and_exit_codes(spark, project, repo, monkeypatch):
    """`featurelake validate` on published intervals: a failing warn view exits 0, a failing strict view 1."""
    from typer.testing import CliRunner

    import featurelake.config
    from featurelake.cli import app
    from featurelake.tables import write_interval

    _, settings = project
    monkeypatch.setattr(featurelake.config, "get_settings", lambda: settings)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    warn = runner.invoke(app, ["validate", "--view", "gate_warn", "--start", str(DAY3), "--end", str(DAY3)])
    assert warn.exit_code == 0, warn.output
    assert "WARN" in warn.output and "expect_column_values_to_not_be_null" in warn.output
    assert "Data Docs index" in warn.output

    # a bad day that reached the strict view's table without the gate (e.g. written by hand)
    write_interval(corrupted(spark, DAY4), "features.gate_strict_v1", date_column="event_date", start=DAY4, end=DAY4)
    bad = runner.invoke(app, ["validate", "--view", "gate_strict", "--start", str(DAY4), "--end", str(DAY4)])
    assert bad.exit_code == 1, bad.output
    for text in (
        "FAIL",
        "expect_column_values_to_not_be_null",
        "expect_compound_columns_to_be_unique",
        "values between -120 and 1800",
        "99999",
        "failing rows",
        "strict validation failed: gate_strict",
    ):
        assert text in bad.output, text
