"""Window views into Delta: tiles per interval and roll-ups of the windows they touch, published through the gate.

For a data interval [start, end] of the source's date partitions (``flight_date``), ``compute_view``

1. rebuilds the tiles of the UTC dates [start - 1, end + 3] (``SLACK``: how far an event's UTC timestamp may
   lie from its partition date; checked, not assumed) from the source partitions that can hold such events,
   and replaces them in ``features.<view>_v<version>__tiles`` (``replaceWhere`` on ``tile_date``);
2. rolls up the rows whose windows see those tiles, i.e. ``event_date`` in [start - 1, end + 3 + 1 + max
   window] but no later than the day after the newest stored tile (rows of later days are computed when
   those days arrive, so a nightly run on the newest day rolls up a few days and a re-run of an old day
   reaches every window its tiles feed), from the new tiles and the stored ones around them (while the new
   ones are written), validates them through the view's gate (write-audit-publish: a strict view that fails
   raises ``ValidationFailed`` and publishes nothing) and, once the tiles are committed, replaces them in
   ``features.<view>_v<version>`` (``replaceWhere`` on ``event_date``).

So re-running an interval gives identical content (``created_timestamp`` is deterministic), late data for an
old day is picked up by re-running that day, and a backfill of any range is one Spark job per table.
Sources without a date partition column are read by the UTC date of their timestamp instead.
"""

from __future__ import annotations

import datetime as dt
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from featurelake import progress
from featurelake.compute.aggregations import TILE_DATE, WindowPlan, rollup, tile_partials, utc_date
from featurelake.compute.publish import ViewResult, check_inputs, publish_validated, read_partitioned_source
from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.repo.definitions import OFFLINE_DATE, FeatureView, WindowComputation
from featurelake.runs import Interval
from featurelake.tables import Commit, single_row, table_exists, write_interval
from featurelake.validation.results import previous_good_run

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# An event's UTC timestamp date lies within [partition date - 1, partition date + 3] (a New York departure
# is at most ~22 h late; arrivals land up to two days after the local flight date in UTC).
SLACK_BEFORE = dt.timedelta(days=1)
SLACK_AFTER = dt.timedelta(days=3)


def tiles_table(view: FeatureView) -> str:
    return f"features.{view.name}_v{view.version}__tiles"


@dataclass(frozen=True)
class TileDates:
    """The date ranges a source interval involves (from the view's definition alone)."""

    tile_lo: dt.date  # tiles of [tile_lo, tile_hi] are rebuilt
    tile_hi: dt.date
    out_hi: dt.date  # feature rows of [tile_lo, out_hi] see them (at most: see rollup_end)
    read_lo: dt.date  # the roll-up reads tiles from here

    @classmethod
    def of(cls, view: FeatureView, plan: WindowPlan, interval: Interval) -> TileDates:
        start, end = interval.start, interval.end
        partitioned = view.source.date_partition_column is not None
        tile_lo, tile_hi = (start - SLACK_BEFORE, end + SLACK_AFTER) if partitioned else (start, end)
        max_days = math.ceil(plan.max_window / dt.timedelta(days=1))
        return cls(
            tile_lo, tile_hi, tile_hi + dt.timedelta(days=1 + max_days), tile_lo - dt.timedelta(days=max_days + 1)
        )


@dataclass(frozen=True)
class IntervalTiles(TileDates):
    """What a source interval rebuilds: its tiles (a DataFrame, not yet written) and the date ranges involved."""

    tiles: DataFrame


def interval_tiles(spark: SparkSession, view: FeatureView, plan: WindowPlan, interval: Interval) -> IntervalTiles:
    """The tiles the source interval rebuilds, from the source partitions that can hold its events
    (the slack between an event's UTC date and its partition date is checked on the interval, not assumed)."""
    from pyspark.sql import functions as F

    dates = TileDates.of(view, plan, interval)
    source, part_col = read_partitioned_source(spark, view)
    ts_day = utc_date(F.col(plan.timestamp_column))
    if part_col:
        check_slack(
            source.where(F.col(part_col).between(F.lit(interval.start), F.lit(interval.end))).where(
                F.col(plan.timestamp_column).isNotNull()
            ),
            view=view.name,
            date_column=part_col,
            timestamp_column=plan.timestamp_column,
        )
        source = source.where(
            F.col(part_col).between(F.lit(dates.tile_lo - SLACK_AFTER), F.lit(dates.tile_hi + SLACK_BEFORE))
        )
    tiles = tile_partials(source.where(ts_day.between(F.lit(dates.tile_lo), F.lit(dates.tile_hi))), plan=plan)
    return IntervalTiles(**vars(dates), tiles=tiles)


def rollup_end(spark: SparkSession, tiles: str, interval: TileDates) -> dt.date:
    """The last event date the roll-up of ``interval`` reaches in the stored tiles table ``tiles``.

    Rows after the newest stored tile's day are computed when their days arrive: a nightly run on the newest
    day rolls up a few days; a re-run of an older day (late data) reaches every window its tiles feed. Only
    tiles after ``tile_hi`` can move that bound, so the lookup reads those partitions alone (none at night).
    """
    from pyspark.sql import functions as F

    if not table_exists(spark, tiles):  # the view's first run: no stored tiles yet
        return min(interval.out_hi, interval.tile_hi + dt.timedelta(days=1))
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


def _report_written(step: progress.Step, write: Future[Commit]) -> None:
    """Report ``step`` done with the rows ``write`` committed (a failed write is raised by whoever waits for it)."""
    if write.exception() is None:
        step.done(write.result().rows_written)


def compute_view(
    spark: SparkSession, settings: Settings, view: FeatureView, keys: list[str], interval: Interval
) -> ViewResult:
    """(Re)compute the tiles and feature rows a source interval affects (two Delta commits: the tiles, then the rows).

    The tiles are computed once, held on the executors, and written while the roll-up (of them and the stored
    tiles around them) goes through the gate: the rows are published after the tiles' commit, never before."""
    from pyspark.sql import functions as F

    check_inputs(view, keys, WindowComputation, "window aggregations")
    plan = WindowPlan.from_view(view, keys)
    t_name = tiles_table(view)
    # Small Spark jobs that wait mostly on the driver run beside the tiles: the gate's row-count baseline (it
    # needs only the view's name) and the roll-up's bound (the stored tiles after tile_hi, which the write
    # leaves as they are).
    with ThreadPoolExecutor(3, thread_name_prefix="featurelake-beside-tiles") as pool:
        baseline = pool.submit(previous_good_run, spark, view.name, "gate")
        later = pool.submit(rollup_end, spark, t_name, TileDates.of(view, plan, interval))
        affected = interval_tiles(spark, view, plan, interval)
        tile_dates = Interval(affected.tile_lo, affected.tile_hi)
        tiles_step = progress.step(f"{view.name}: tiles {tile_dates}")
        tiles_stored = table_exists(spark, t_name)
        tiles = affected.tiles.localCheckpoint(eager=True)
        written = pool.submit(
            write_interval, tiles, t_name, date_column=TILE_DATE, start=tile_dates.start, end=tile_dates.end
        )
        written.add_done_callback(partial(_report_written, tiles_step))
        out_hi = later.result()
        event_dates = Interval(affected.tile_lo, out_hi)
        rows_step = progress.step(f"{view.name}: windows {event_dates}, gate, publish")
        # the tiles the roll-up reads: the new ones, and the stored ones of the other days its windows reach
        # (cached: the roll-up refers to them once per window, for the boundary grid, and once for the values)
        window_tiles = tiles
        if tiles_stored:
            tile_day = F.col(TILE_DATE)
            around = spark.table(t_name).where(
                tile_day.between(F.lit(affected.read_lo), F.lit(out_hi))
                & ~tile_day.between(F.lit(affected.tile_lo), F.lit(affected.tile_hi))
            )
            window_tiles = around.unionByName(tiles)
        window_tiles = window_tiles.persist()
        try:
            rows = rollup(window_tiles, plan=plan, start=affected.tile_lo, end=out_hi + dt.timedelta(days=1))
            commit, gate = publish_validated(
                spark,
                settings,
                view,
                keys,
                rows,
                interval,
                date_column=OFFLINE_DATE,
                replace=event_dates,
                baseline=baseline,
                after=written,
            )
        except Exception as exc:
            if (failed := written.exception()) is not None and failed is not exc:
                exc.add_note(f"(the tiles of {tile_dates} were not written either: {failed})")
            raise
        finally:
            window_tiles.unpersist()
    rows_step.done(commit.rows_written)
    return ViewResult(view.name, commit, event_dates, gate, tiles=written.result(), tile_dates=tile_dates)
