"""Window views into Delta: tiles per interval, roll-ups of the windows they touch, run records.

For a data interval [start, end] of the source's date partitions (``flight_date``), ``compute_view``

1. rebuilds the tiles of the UTC dates [start - 1, end + 3] (``SLACK``: how far an event's UTC timestamp may
   lie from its partition date; checked, not assumed) from the source partitions that can hold such events,
   and replaces them in ``features.<view>_v<version>__tiles`` (``replaceWhere`` on ``tile_date``);
2. rolls up the rows whose windows see those tiles, i.e. ``event_date`` in [start - 1, end + 3 + 1 + max
   window] but no later than the day after the newest stored tile (rows of later days are computed when
   those days arrive, so a nightly run on the newest day rolls up a few days and a re-run of an old day
   reaches every window its tiles feed), from the tile table, validates them through the view's gate
   (write-audit-publish: a strict view that fails raises ``ValidationFailed`` and publishes nothing) and
   replaces them in ``features.<view>_v<version>`` (``replaceWhere`` on ``event_date``).

So re-running an interval gives identical content (``created_timestamp`` is deterministic), late data for an
old day is picked up by re-running that day, and a backfill of any range is one Spark job per table.
Sources without a date partition column are read by the UTC date of their timestamp instead.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelake import progress
from featurelake.compute.aggregations import TILE_DATE, WindowPlan, rollup, tile_partials, utc_date
from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.monitoring.stats import published_interval, record_write_stats
from featurelake.repo.definitions import OFFLINE_DATE, FeatureView, PathSource, WindowComputation
from featurelake.tables import (
    Commit,
    RunRecord,
    check_identifier,
    check_table_name,
    record_runs,
    single_row,
    table_properties,
    write_interval,
)
from featurelake.validation.gate import GateResult, validate_and_publish

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# An event's UTC timestamp date lies within [partition date - 1, partition date + 3] (a New York departure
# is at most ~22 h late; arrivals land up to two days after the local flight date in UTC).
SLACK_BEFORE = dt.timedelta(days=1)
SLACK_AFTER = dt.timedelta(days=3)


@dataclass(frozen=True)
class ViewResult:
    view: str
    tiles: Commit | None  # None for a transform view (no tiles)
    features: Commit
    tile_dates: tuple[dt.date, dt.date]  # dates whose tiles were rebuilt (a transform view: its source dates)
    event_dates: tuple[dt.date, dt.date]  # the slice of the feature table replaced
    records: list[RunRecord]
    validation: GateResult

    def describe(self) -> str:
        replaced = f"event_date {self.event_dates[0]}..{self.event_dates[1]}"
        if self.tiles is None:
            replaced = f"source_date {self.event_dates[0]}..{self.event_dates[1]}"
        tiles = (
            "" if self.tiles is None else f"; tiles v{self.tiles.version} ({self.tile_dates[0]}..{self.tile_dates[1]})"
        )
        return (
            f"{self.view}: {self.features.table} v{self.features.version} ({self.features.rows_written or 0:,} rows, "
            f"{replaced}; validation {self.validation.status}){tiles}"
        )


def tiles_table(view: FeatureView) -> str:
    return f"features.{view.name}_v{view.version}__tiles"


def feature_table_properties(settings: Settings) -> dict[str, str]:
    """Properties of every computed feature table: change data feed (materialization reads it) and retention.

    ``logRetentionDuration`` / ``deletedFileRetentionDuration`` bound how far back ``VERSION AS OF`` reaches,
    hence how old a training set can be and still be reproduced exactly.
    """
    return {
        "delta.enableChangeDataFeed": "true",
        "delta.logRetentionDuration": settings.storage.log_retention,
        "delta.deletedFileRetentionDuration": settings.storage.deleted_file_retention,
    }


def read_source(spark: SparkSession, view: FeatureView) -> DataFrame:
    """The view's source rows (a catalog table or a path); a clear error when it is not there."""
    src = view.source
    if isinstance(src, PathSource):
        try:
            return spark.read.format(src.format).load(src.path)
        except Exception as exc:  # noqa: BLE001 - Spark raises several kinds for a missing/unreadable path
            raise InputError(f"feature view {view.name!r}: cannot read source path {src.path}: {exc}") from None
    table = src.table
    check_table_name(table, "source table")
    if not spark.catalog.tableExists(table):
        raise InputError(
            f"feature view {view.name!r}: source table {table} does not exist "
            "(run `featurelake compute`, which builds the dbt models first, or `dbt build`)"
        )
    return spark.table(table)


def check_inputs(view: FeatureView, keys: list[str], start: dt.date, end: dt.date, kind: type, what: str) -> None:
    """Refuse a reversed interval, a view computed another way and join keys that are not identifiers."""
    if start > end:
        raise InputError(f"--start {start} is after --end {end}")
    if not isinstance(view.computation, kind):
        raise InputError(f"feature view {view.name!r} is not computed by {what}")
    for k in keys:
        check_identifier(k, "join key")


def read_partitioned_source(spark: SparkSession, view: FeatureView) -> tuple[DataFrame, str | None]:
    """The view's source rows and its date partition column (checked to exist), if it has one."""
    source = read_source(spark, view)
    part_col = view.source.date_partition_column
    if part_col and part_col not in source.columns:
        raise InputError(f"feature view {view.name!r}: source has no date partition column {part_col!r}")
    return source, part_col


@dataclass(frozen=True)
class IntervalTiles:
    """What a source interval rebuilds: its tiles (a DataFrame, not yet written) and the date ranges involved."""

    tiles: DataFrame
    tile_lo: dt.date  # tiles of [tile_lo, tile_hi] are rebuilt
    tile_hi: dt.date
    out_hi: dt.date  # feature rows of [tile_lo, out_hi] see them (at most: see rollup_end)
    read_lo: dt.date  # the roll-up reads tiles from here


def interval_tiles(
    spark: SparkSession, view: FeatureView, plan: WindowPlan, start: dt.date, end: dt.date
) -> IntervalTiles:
    """The tiles the source interval [start, end] rebuilds, from the source partitions that can hold its events
    (the slack between an event's UTC date and its partition date is checked on the interval, not assumed)."""
    from pyspark.sql import functions as F

    source, part_col = read_partitioned_source(spark, view)
    tile_lo, tile_hi = (start - SLACK_BEFORE, end + SLACK_AFTER) if part_col else (start, end)
    max_days = math.ceil(plan.max_window / dt.timedelta(days=1))
    ts_day = utc_date(F.col(plan.timestamp_column))
    if part_col:
        check_slack(
            source.where(F.col(part_col).between(F.lit(start), F.lit(end))).where(
                F.col(plan.timestamp_column).isNotNull()
            ),
            view=view.name,
            date_column=part_col,
            timestamp_column=plan.timestamp_column,
        )
        source = source.where(F.col(part_col).between(F.lit(tile_lo - SLACK_AFTER), F.lit(tile_hi + SLACK_BEFORE)))
    return IntervalTiles(
        tiles=tile_partials(source.where(ts_day.between(F.lit(tile_lo), F.lit(tile_hi))), plan=plan),
        tile_lo=tile_lo,
        tile_hi=tile_hi,
        out_hi=tile_hi + dt.timedelta(days=1 + max_days),
        read_lo=tile_lo - dt.timedelta(days=max_days + 1),
    )


def rollup_end(spark: SparkSession, tiles: str, interval: IntervalTiles) -> dt.date:
    """The last event date the roll-up of ``interval`` reaches in the stored tiles table ``tiles``.

    Rows after the newest stored tile's day are computed when their days arrive: a nightly run on the newest
    day rolls up a few days; a re-run of an older day (late data) reaches every window its tiles feed. Only
    tiles after ``tile_hi`` can move that bound, so the lookup reads those partitions alone (none at night).
    """
    from pyspark.sql import functions as F

    later = spark.table(tiles).where(F.col(TILE_DATE) > F.lit(interval.tile_hi))
    newest = single_row(later.agg(F.max(TILE_DATE)))[0] or interval.tile_hi
    return min(interval.out_hi, newest + dt.timedelta(days=1))


def check_slack(df: DataFrame, *, view: str, date_column: str, timestamp_column: str) -> None:
    """Refuse source rows whose timestamp's UTC date is outside [partition date - 1, partition date + 3]."""
    from pyspark.sql import functions as F

    day = utc_date(F.col(timestamp_column))
    part = F.col(date_column)
    bad = (
        df.where((day < F.date_sub(part, SLACK_BEFORE.days)) | (day > F.date_add(part, SLACK_AFTER.days)))
        .limit(1)
        .collect()
    )
    if bad:
        row = bad[0]
        raise InputError(
            f"feature view {view!r}: source row with {date_column}={row[date_column]} has {timestamp_column}="
            f"{row[timestamp_column]}, outside the {SLACK_BEFORE.days}/{SLACK_AFTER.days} day slack the "
            "incremental computation relies on"
        )


def compute_view(
    spark: SparkSession,
    settings: Settings,
    view: FeatureView,
    keys: list[str],
    start: dt.date,
    end: dt.date,
    *,
    job: str = "compute",
    run_id: str | None = None,
) -> ViewResult:
    """(Re)compute the tiles and feature rows a source interval [start, end] affects (two Delta commits)."""
    from pyspark.sql import functions as F

    check_inputs(view, keys, start, end, WindowComputation, "window aggregations")
    plan = WindowPlan.from_view(view, keys)
    run_id = run_id or uuid.uuid4().hex
    started, t0 = dt.datetime.now(dt.UTC).replace(tzinfo=None), time.monotonic()
    interval = interval_tiles(spark, view, plan, start, end)
    tile_lo, tile_hi, read_lo = interval.tile_lo, interval.tile_hi, interval.read_lo
    t_name = tiles_table(view)
    tiles_step = progress.step(f"{view.name}: tiles {tile_lo}..{tile_hi}")
    t_commit = write_interval(interval.tiles, t_name, date_column=TILE_DATE, start=tile_lo, end=tile_hi)
    tiles_step.done(t_commit.rows_written)
    t1 = time.monotonic()

    out_hi = rollup_end(spark, t_name, interval)
    rows_step = progress.step(f"{view.name}: windows {tile_lo}..{out_hi}, gate, publish")
    # The roll-up refers to the tiles once per window (the boundary grid) and once more for the values: cached,
    # they are read from the table once.
    stored = spark.table(t_name).where(F.col(TILE_DATE).between(F.lit(read_lo), F.lit(out_hi))).persist()
    try:
        rows = rollup(stored, plan=plan, start=tile_lo, end=out_hi + dt.timedelta(days=1))
        o_name = view.offline_table or ""
        o_commit, gate = publish_validated(
            spark, settings, view, keys, rows, start=start, end=end, date_column=OFFLINE_DATE, replace=(tile_lo, out_hi)
        )
    finally:
        stored.unpersist()
    rows_step.done(o_commit.rows_written)
    t2 = time.monotonic()
    records = [
        RunRecord(
            run_id,
            job,
            t_name,
            start,
            end,
            t_commit.version,
            t_commit.rows_written,
            started,
            t1 - t0,
            "success",
            f"view {view.name}: tile_date {tile_lo}..{tile_hi}",
        ),
        RunRecord(
            run_id,
            job,
            o_name,
            start,
            end,
            o_commit.version,
            o_commit.rows_written,
            started,
            t2 - t0,
            "success",
            f"view {view.name}: event_date {tile_lo}..{out_hi}; validation {gate.status}",
        ),
    ]
    record_runs(spark, records)
    return ViewResult(view.name, t_commit, o_commit, (tile_lo, tile_hi), (tile_lo, out_hi), records, gate)


def publish_validated(
    spark: SparkSession,
    settings: Settings,
    view: FeatureView,
    keys: list[str],
    rows: DataFrame,
    *,
    start: dt.date,
    end: dt.date,
    date_column: str,
    replace: tuple[dt.date, dt.date],
) -> tuple[Commit, GateResult]:
    """Publish the computed rows of data interval [start, end] through the view's gate, then record statistics.

    Write-audit-publish: the gate validates ``rows`` and, unless a strict suite fails (``ValidationFailed``,
    nothing written), replaces the ``replace`` range of ``date_column`` in the view's offline table with them
    (the row count is checked per day of that range: a window view's run rewrites more days than it computed).
    The statistics of the published interval land in ``monitoring.feature_stats``, keyed by the publishing
    commit; they are computed from the audited version the gate published (the same rows, already read).
    """
    table = view.offline_table or ""
    props = feature_table_properties(settings)
    lo, hi = replace
    gate = validate_and_publish(
        spark,
        settings,
        view,
        rows,
        start=start,
        end=end,
        keys=keys,
        publish=lambda audited: write_interval(
            audited, table, date_column=date_column, start=lo, end=hi, properties=props
        ),
        row_dates=replace,
    )
    commit = gate.commit
    assert commit is not None  # a gate that did not raise has published
    ensure_properties(spark, table, props)
    assert gate.delta_version is not None
    published = published_interval(spark, view, gate.table, gate.delta_version, start, end, date_column=date_column)
    record_write_stats(
        spark, view, published, start=start, end=end, table=table, version=commit.version, settings=settings.monitoring
    )
    return commit, gate


def ensure_properties(spark: SparkSession, table: str, properties: dict[str, str]) -> None:
    """Set table properties that differ from ``properties`` (a new commit only when something changes)."""
    current = table_properties(spark, table)
    changed = {k: v for k, v in properties.items() if current.get(k) != v}
    if changed:
        for k, v in changed.items():
            if not k.replace(".", "").replace("_", "").isalnum() or "'" in v:
                raise InputError(f"table property {k}={v!r} is not safe to set")
        assignments = ", ".join(f"'{k}' = '{v}'" for k, v in changed.items())
        spark.sql(f"ALTER TABLE {check_table_name(table)} SET TBLPROPERTIES ({assignments})")
