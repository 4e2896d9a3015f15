"""Monitoring end to end on a small repository: status and report exit codes, skew before and after an
offline change that was not materialized. In-process CLI on the session's SparkSession (one driver)."""

from __future__ import annotations

import datetime as dt
import os
import sys
import textwrap
from html.parser import HTMLParser

import pytest

pytestmark = pytest.mark.integration

# Materialization writes the online store from Python workers: they must run this interpreter (the venv with
# featurelake). An in-process SparkSession takes its workers' interpreter from PYSPARK_PYTHON when it starts.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

TABLE = "features.mon_events"
DAYS = [dt.date(2024, 1, d) for d in range(1, 6)]
KEYS = [f"k{i}" for i in range(12)]
CHANGED = {"k0", "k1", "k2"}

REPO = {
    "entities.py": """
        from featurelake.repo.definitions import Entity
        thing = Entity(name="thing", join_keys=["thing"])
    """,
    "sources.py": f"""
        from featurelake.repo.definitions import DeltaTableSource
        events = DeltaTableSource(name="mon_events", table="{TABLE}", timestamp_column="ts",
                                  date_partition_column="day")
    """,
    "feature_views.py": """
        from featurelake.repo.definitions import DriftPolicy, Feature, FeatureView, ValueType
        from .entities import thing
        from .sources import events
        mon_view = FeatureView(
            name="mon_view", entities=[thing], source=events, ttl="30d",
            features=[Feature(name="value", dtype=ValueType.DOUBLE), Feature(name="hits", dtype=ValueType.INT64)],
            drift=DriftPolicy(psi_threshold=0.25, reference_days=2),
        )
    """,
}


def write_events(spark, factor: dict[str, float]) -> None:
    rows = [
        (k, dt.datetime(d.year, d.month, d.day, 12), d, (i + 1 + 100 * n) * factor.get(k, 1.0), i + n)
        for n, d in enumerate(DAYS)
        for i, k in enumerate(KEYS)
    ]
    df = spark.createDataFrame(rows, "thing string, ts timestamp, day date, value double, hits bigint")
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").saveAsTable(TABLE)


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mon_repo") / "features"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name, text in REPO.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


@pytest.fixture(scope="module")
def repo(spark, repo_dir):
    from featurelake.repo import load_repo

    write_events(spark, {})
    return load_repo(repo_dir)


def test_status_fresh_then_late_with_exit_code(cli, repo, repo_dir):
    fresh = cli("status", "--as-of", "2024-01-06T00:00", "--repo", str(repo_dir))
    assert fresh.exit_code == 0, fresh.output
    assert "mon_view" in fresh.output and "fresh" in fresh.output
    # Latest value 2024-01-05 12:00; expected freshness 2 x the 1d batch schedule: late from 2024-01-07 12:00 on.
    late = cli("status", "--as-of", "2024-01-07T12:00:01", "--repo", str(repo_dir))
    assert late.exit_code == 1, late.output
    assert "late" in late.output and "mon_view" in late.output
    # the latest value is found both when fresh (among the rows since the freshness bound) and when late (the
    # whole table); the status table shows it
    for out in (fresh, late):
        assert "2024-01-05 12:00:00" in out.output.replace("\n", " "), out.output


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.svgs = [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs)["href"])
        self.svgs += tag == "svg"


def test_report_pages_and_breach_exit_code(cli, spark, settings, repo, repo_dir, tmp_path):
    from featurelake.monitoring.drift import latest_drift
    from featurelake.monitoring.stats import interval_rows, record_write_stats
    from featurelake.runs import Interval

    view = repo.view("mon_view")
    version_0 = spark.sql(f"SELECT * FROM {TABLE} VERSION AS OF 0")
    for day in map(Interval, DAYS, DAYS):
        record_write_stats(spark, view, interval_rows(version_0, view, day), interval=day, table=TABLE, version=0)
    out = tmp_path / "report"
    ok = cli("report", "--out", str(out), "--as-of", "2024-01-06T00:00", "--start", "2024-01-05", "--end",
             "2024-01-05", "--repo", str(repo_dir))  # fmt: skip
    measured = {d["feature"]: d for d in latest_drift(spark) if d["view"] == "mon_view"}
    assert set(measured) == {"value", "hits"}
    assert measured["value"]["reference"] == "interval:2024-01-03..2024-01-04"
    # Values grow by 100 a day: day 5 lies above all of the reference days' values, a drift by any measure.
    assert measured["value"]["drifted"] and ok.exit_code == 1, ok.output
    assert "mon_view: feature value drifted" in ok.output
    index = Links()
    index.feed((out / "index.html").read_text())
    assert index.links == ["mon_view.html"]
    page = Links()
    text = (out / "mon_view.html").read_text()
    page.feed(text)
    assert page.svgs >= 4 and "Distribution over time" in text and "Validation history" in text
    assert "http" not in text.replace("http://www.w3.org/2000/svg", "")  # nothing loaded from the network
    late = cli("report", "--out", str(out), "--as-of", "2024-02-01T00:00", "--repo", str(repo_dir))
    assert late.exit_code == 1 and "mon_view: late" in late.output


def test_skew_is_zero_after_materialization_and_not_after_an_unmaterialized_change(spark, settings, repo):
    from featurelake.artifacts import artifacts_root
    from featurelake.monitoring.skew import measure_skew
    from featurelake.offline.training_set import build_training_set
    from featurelake.online.materialize import materialize

    write_events(spark, {})
    entities = f"SELECT thing, ts + INTERVAL 1 HOUR AS event_timestamp FROM {TABLE}"
    build_training_set(
        spark, repo, name="mon_train", entities=entities, features=["mon_view"], overwrite=True,
        artifacts=artifacts_root(settings),
    )  # fmt: skip
    materialize(spark, settings, repo, ["mon_view"], as_of=dt.datetime(2024, 1, 6, tzinfo=dt.UTC), full=True)
    sample = len(DAYS) * len(KEYS)  # every training row
    before = measure_skew(spark, settings, repo, "mon_train", sample=sample)
    assert {(s.feature, s.sampled, s.offline_mismatches, s.online_compared, s.online_mismatches) for s in before} == {
        ("value", sample, 0, len(KEYS), 0),
        ("hits", sample, 0, len(KEYS), 0),
    }

    write_events(spark, dict.fromkeys(CHANGED, 2.0))  # offline values of three keys change; not materialized
    after = {s.feature: s for s in measure_skew(spark, settings, repo, "mon_train", sample=sample)}
    training = spark.table("training.mon_train").toPandas()
    expected_offline = training["thing"].isin(CHANGED).mean()
    assert after["value"].offline_rate == pytest.approx(expected_offline)
    assert after["value"].online_rate == pytest.approx(len(CHANGED) / len(KEYS))
    assert after["hits"].offline_rate == 0 and after["hits"].online_rate == 0
    assert after["value"].examples


def test_a_failed_materialization_is_recorded_and_shows_the_view_failing_until_a_run_succeeds(
    cli, spark, settings, repo, repo_dir, tmp_path
):
    from featurelake.online.materialize import materialize

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("a file where the store's folder should be")
    store = settings.online_store.model_copy(update={"sqlite_path": str(not_a_dir / "online.db")})
    broken = settings.model_copy(update={"online_store": store})
    as_of = dt.datetime(2024, 1, 6, tzinfo=dt.UTC)
    with pytest.raises(OSError):
        materialize(spark, broken, repo, ["mon_view"], as_of=as_of, full=True)
    latest = spark.sql(
        f"SELECT job, status, message, delta_version FROM monitoring.runs WHERE target = '{TABLE}' "
        "ORDER BY started_at DESC LIMIT 1"
    ).first()
    assert (latest["job"], latest["status"], latest["delta_version"]) == ("materialize", "failed", None)
    assert str(not_a_dir) in latest["message"]
    failing = cli("status", "--as-of", "2024-01-06T00:00", "--repo", str(repo_dir))
    assert failing.exit_code == 1 and "failing" in failing.output, failing.output

    materialize(spark, settings, repo, ["mon_view"], as_of=as_of, full=True)
    fresh = cli("status", "--as-of", "2024-01-06T00:00", "--repo", str(repo_dir))
    assert fresh.exit_code == 0 and "fresh" in fresh.output, fresh.output
