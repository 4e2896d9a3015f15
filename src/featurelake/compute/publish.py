"""The publish step every engine shares: reading a view's source, checking its inputs, and gate -> publish ->
statistics into the view's offline table (``publish_validated``), with the table properties it keeps."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.monitoring.stats import append_stats, compute_stats, interval_rows
from featurelake.repo.definitions import FeatureView, PathSource
from featurelake.runs import Interval, Run
from featurelake.tables import (
    Commit,
    check_identifier,
    check_table_name,
    ensure_properties,
    overwrite_where,
    write_interval,
)
from featurelake.validation.gate import GateResult, gate
from featurelake.validation.targets import view_target

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class ViewResult:
    """What computing one view over an interval published (and, for a window view, the tiles it rebuilt)."""

    view: str
    features: Commit
    event_dates: Interval  # the slice of the feature table replaced (a transform view: its source dates)
    validation: GateResult
    tiles: Commit | None = None  # a window view's tiles
    tile_dates: Interval | None = None  # the dates whose tiles were rebuilt

    @property
    def replaced(self) -> str:
        return f"{'source_date' if self.tiles is None else 'event_date'} {self.event_dates}"

    def describe(self) -> str:
        tiles = "" if self.tiles is None else f"; tiles v{self.tiles.version} ({self.tile_dates})"
        return (
            f"{self.view}: {self.features.table} v{self.features.version} ({self.features.rows_written or 0:,} rows, "
            f"{self.replaced}; validation {self.validation.status}){tiles}"
        )

    def record(self, run: Run) -> None:
        """Add this view's writes to ``run``: its tiles (a window view), then its feature rows."""
        if self.tiles is not None:
            run.wrote(self.tiles, f"view {self.view}: tile_date {self.tile_dates}")
        run.wrote(self.features, f"view {self.view}: {self.replaced}; validation {self.validation.status}")


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


def check_inputs(view: FeatureView, keys: list[str], kind: type, what: str) -> None:
    """Refuse a view computed another way and join keys that are not identifiers."""
    if not isinstance(view.computation, kind):
        raise InputError(f"feature view {view.name!r} is not computed by {what}")
    for k in keys:
        check_identifier(k, "join key")


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


def read_partitioned_source(spark: SparkSession, view: FeatureView) -> tuple[DataFrame, str | None]:
    """The view's source rows and its date partition column (checked to exist), if it has one."""
    source = read_source(spark, view)
    part_col = view.source.date_partition_column
    if part_col and part_col not in source.columns:
        raise InputError(f"feature view {view.name!r}: source has no date partition column {part_col!r}")
    return source, part_col


def publish_validated(
    spark: SparkSession,
    settings: Settings,
    view: FeatureView,
    keys: list[str],
    candidate: DataFrame | Commit,
    interval: Interval,
    *,
    date_column: str | None,
    replace: Interval | None,
    row_dates: Interval | None = None,
    baseline: Future[tuple[int, int] | None] | None = None,
    after: Future[Commit] | None = None,
) -> tuple[Commit, GateResult]:
    """Publish the computed rows of ``interval`` through the view's gate, then record their statistics.

    Write-audit-publish: the gate validates ``candidate`` (the rows, or the audit table's commit holding them:
    see ``gate``) and, unless a strict suite fails (``ValidationFailed``, nothing published), publishes them into
    the view's offline table: replacing the ``replace`` range of ``date_column``, or the whole table when
    ``replace`` is None (partitioned by ``date_column``). The row count is checked per day of ``row_dates``
    (default: ``replace``): a window view's run rewrites more days than it computed. The statistics of the
    published interval land in ``monitoring.feature_stats``, keyed by the publishing commit; they are computed
    from the rows the gate published (the same rows: held on the executors, or the audit version). ``baseline``:
    the gate's row-count baseline when the caller started looking it up (see ``gate``). ``after``: a commit
    still being written that the rows must be published after (a window view's tiles); its error is raised
    instead of publishing.
    """
    table = view.offline_table or ""
    props = feature_table_properties(settings)
    monitoring = settings.monitoring
    statistics: list[Future[list[dict[str, object]]]] = []

    def publish(audited: DataFrame) -> Commit:
        # the statistics of the published rows (the audited rows again) are computed while they are written
        published = interval_rows(audited, view, interval, date_column=date_column)
        statistics.append(
            pool.submit(
                compute_stats,
                published,
                view,
                histogram_bins=monitoring.histogram_bins,
                quantiles=monitoring.quantiles,
            )
        )
        if after is not None:
            after.result()
        if replace is None:
            partitions = [date_column] if date_column else None
            return overwrite_where(audited, table, None, partition_by=partitions, properties=props)
        assert date_column is not None  # a range of dates replaces the partitions of a date column
        return write_interval(
            audited, table, date_column=date_column, start=replace.start, end=replace.end, properties=props
        )

    target = view_target(view, keys)
    with ThreadPoolExecutor(1, thread_name_prefix="featurelake-statistics") as pool:
        result = gate(
            spark,
            settings,
            target,
            candidate,
            interval,
            publish=publish,
            row_dates=row_dates or replace,
            baseline=baseline,
        )
        assert result.commit is not None and statistics  # a gate that did not raise has published
        ensure_properties(spark, table, props)
        values = statistics[0].result()
    append_stats(spark, view, values, interval=interval, table=table, version=result.commit.version)
    return result.commit, result
