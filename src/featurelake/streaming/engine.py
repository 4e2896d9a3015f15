"""Streaming window views: Spark Structured Streaming from a Kafka topic into the view's Delta tables and the online
store, one micro-batch at a time, exactly once.

Each micro-batch ``n`` of a stream source (``foreachBatch``), online store first, Delta tables after:

1. parses the records (``events.parse``; one Spark job counts the events, the late ones and each Kafka
   partition's newest event time); events older than the watermark (the event time the batches before ``n``
   reached in every Kafka partition, minus ``allowed_lateness``; kept in memory from batch to batch) are late;
2. for each view of the source, recomputes the tiles the batch touched (their keys and tile starts) with the batch
   engine's ``tile_partials`` from every event of theirs (the events table's but batch ``n``'s, plus the batch),
   and rolls those keys up (``rollup``: every boundary their new tiles reach, expiries included) over the tiles
   table's other tiles and the new ones: tiles and rows in memory;
3. writes the online store from those rows (``materialize_computed``: the touched keys' new values, and the
   rows of the feature table whose time came since the last batch; conditional writes, a value never goes back
   in time): the batch's values are online now (``online_at``);
4. appends the events to the source's Delta table (``txnAppId``/``txnVersion`` = the source and ``n``: a batch
   replayed after a crash is not appended twice), merges the tiles into ``features.<view>_v<n>__tiles`` and the
   rows into ``features.<view>_v<n>``. Tiles and rows are functions of the events, so a replay rewrites the same
   values, and the batch engine over the events table gives the same rows;
5. appends the refused and late records to ``monitoring.stream_dead_letters`` and records the batch in
   ``monitoring.stream_batches`` (events, refused, late, newest event time, when its values were online, the
   as-of time, seconds per step): the watermark after a restart, and the lag ``featurelake stream status`` shows.

The first batch of a view (no watermark in the store for its table yet) materializes in full after step 4.
Kafka offsets are in the query's checkpoint (under the warehouse: ``_streams/<source>``); a restart after kill -9
replays from the last committed batch, and steps 2-5 make that replay change nothing twice.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelake import progress
from featurelake.compute.aggregations import TILE_DATE, TILE_START, WindowPlan, rollup, tile_partials
from featurelake.compute.publish import feature_table_properties
from featurelake.compute.windows import tiles_table
from featurelake.config import format_duration
from featurelake.errors import InputError, ServiceDown
from featurelake.online.materialize import advance_watermark, materialize_computed, materialize_views
from featurelake.online.store import StoreConfig
from featurelake.repo.definitions import OFFLINE_DATE, OFFLINE_TIMESTAMP, FeatureView, StreamSource, WindowComputation
from featurelake.streaming.events import BATCH, OFFSET, PARTITION, RAW, REASON, TOPIC, parse
from featurelake.tables import current_version, table_exists

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from featurelake.config import Settings
    from featurelake.repo import Repo

DEAD_LETTERS = "monitoring.stream_dead_letters"
BATCHES = "monitoring.stream_batches"
BATCH_SCHEMA = (
    "source string, batch_id bigint, events bigint, refused bigint, late bigint, max_event_ts timestamp, "
    "min_event_ts timestamp, online_at timestamp, partition_max_ts map<int, timestamp>, as_of timestamp, "
    "step_seconds map<string, double>"
)


@dataclass(frozen=True)
class StreamPlan:
    """A stream source and the window views computed from it, with their join keys."""

    source: StreamSource
    views: tuple[FeatureView, ...]
    keys: dict[str, list[str]]

    @property
    def all_keys(self) -> list[str]:
        return list(dict.fromkeys(k for keys in self.keys.values() for k in keys))


def streamed(view: FeatureView) -> bool:
    """Whether ``featurelake stream run`` computes ``view``: a window view over a stream source with a Kafka topic."""
    return (
        isinstance(view.source, StreamSource)
        and bool(view.source.topic)
        and isinstance(view.computation, WindowComputation)
    )


def stream_plans(repo: Repo, names: list[str] | None) -> list[StreamPlan]:
    """The stream sources of the named views (every streaming view when None), each with all its window views:
    one query per source keeps its views and its events table in step."""
    streaming = [v for v in repo.views.values() if streamed(v)]
    chosen = streaming if not names else [repo.view(n) for n in names]
    for view in chosen:
        if not isinstance(view.source, StreamSource) or not view.source.topic:
            raise InputError(f"feature view {view.name!r} does not read a stream source with a Kafka topic")
        if not isinstance(view.computation, WindowComputation):
            raise InputError(f"feature view {view.name!r}: a stream source feeds window aggregations only")
    if not chosen:
        raise InputError("no feature view reads a stream source")
    sources = {v.source.name: v.source for v in chosen if isinstance(v.source, StreamSource)}
    return [
        StreamPlan(
            source,
            tuple(v for v in streaming if v.source.name == name),
            {v.name: repo.join_keys(v) for v in streaming if v.source.name == name},
        )
        for name, source in sorted(sources.items())
    ]


def bootstrap_servers(settings: Settings) -> str:
    """``streaming.bootstrap_servers``, or the local broker (``featurelake services start --kafka``)."""
    return settings.streaming.bootstrap_servers or f"127.0.0.1:{settings.services.kafka.port}"


def checkpoint_path(settings: Settings, source: StreamSource) -> str:
    return f"{settings.path(settings.storage.warehouse).rstrip('/')}/_streams/{source.name}"


def _reached_before(spark: SparkSession, query: str, source: StreamSource, batch_id: int) -> dict[int, dt.datetime]:
    """The newest event time per Kafka partition of the batches before ``batch_id``: this process's own record of
    them when it ran batch ``batch_id - 1`` of ``query`` (a checkpoint), else read from the batch records."""
    from pyspark.sql import functions as F

    last = _reached.get(query)
    if last is not None and last[0] == batch_id - 1:
        return last[1]
    if not table_exists(spark, BATCHES):
        return {}
    before = spark.table(BATCHES).where((F.col("source") == source.name) & (F.col("batch_id") < batch_id))
    per_partition = before.select(F.explode("partition_max_ts").alias("partition", "ts")).groupBy("partition")
    return {r[0]: r[1] for r in per_partition.agg(F.max("ts")).collect() if r[1] is not None}


def _append_once(df: DataFrame, table: str, app: str, batch_id: int, partition_by: list[str] | None) -> None:
    """Append ``df`` to ``table`` unless batch ``batch_id`` of ``app`` already did (Delta's idempotent writes); new
    columns are added to the table (a batch record of an older release has fewer)."""
    writer = df.write.format("delta").mode("append").option("txnAppId", app).option("txnVersion", batch_id)
    writer = writer.option("mergeSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.saveAsTable(table)


def _merge(
    spark: SparkSession,
    df: DataFrame,
    table: str,
    on: list[str],
    partition_by: str,
    props: dict,
    within: tuple[str, int, int],
) -> None:
    """Upsert ``df`` into ``table`` by ``on`` (created partitioned by ``partition_by`` on first write). ``df``'s rows
    have the timestamp column ``within[0]`` in [``within[1]``, ``within[2]``] (epoch seconds): the merge reads only
    the partitions and files that can hold it (partition pruning, Delta's data skipping on the column's statistics)."""
    from delta.tables import DeltaTable

    if not table_exists(spark, table):
        df.write.format("delta").partitionBy(partition_by).options(**props).saveAsTable(table)
        return
    column, lo, hi = within
    day = 86400
    condition = " AND ".join(
        [f"t.`{c}` = s.`{c}`" for c in on]
        + [
            f"t.`{partition_by}` BETWEEN date_from_unix_date({lo // day}) AND date_from_unix_date({hi // day})",
            f"t.`{column}` BETWEEN timestamp_seconds({lo}) AND timestamp_seconds({hi})",
        ]
    )
    (
        DeltaTable.forName(spark, table)
        .alias("t")
        .merge(df.alias("s"), condition)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


class _Clock:
    """Wall seconds per step of a micro-batch (kept in its record: where a batch's time goes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(self.seconds.get(step, 0.0) + now - self._last, 3)
        self._last = now


@dataclass
class _Computed:
    """One view's part of a micro-batch, in memory (cached): the tiles it touched, recomputed, and the rows of
    their keys from ``since`` until ``until``."""

    view: FeatureView
    keys: list[str]
    tiles: DataFrame
    rows: DataFrame
    since: dt.datetime
    until: dt.datetime
    tile_range: tuple[int, int]  # first and last tile start, epoch seconds

    def unpersist(self) -> None:
        self.tiles.unpersist()
        self.rows.unpersist()


def _compute_view(
    spark: SparkSession, plan: StreamPlan, view: FeatureView, batch: DataFrame, batch_id: int
) -> _Computed | None:
    """The tiles ``batch`` touched (their keys and tile starts), recomputed from every event of theirs: the
    events table's but this batch's, and the batch's own (so the batch need not be appended first, and a replay
    counts nothing twice); then the rows of their keys (``rollup``: every boundary their new tiles reach, expiries
    included) over the other tiles of the tiles table and the new ones. None when no event has a timestamp."""
    from pyspark.sql import functions as F

    keys = plan.keys[view.name]
    window = WindowPlan.from_view(view, keys)
    tile_s, reach = window.tile_seconds, int(window.max_window.total_seconds())
    secs = F.unix_seconds(F.col(plan.source.timestamp_column))
    tile_of = (secs - F.pmod(secs, F.lit(tile_s))).alias("_tile_s")
    touched = batch.select(*keys, tile_of).where(F.col("_tile_s").isNotNull()).distinct().persist()
    try:
        bounds = touched.agg(F.min("_tile_s"), F.max("_tile_s")).first()
        if bounds is None or bounds[0] is None:
            return None
        lo, hi = int(bounds[0]), int(bounds[1])
        day = dt.timedelta(days=1)
        events = batch
        lo_date = dt.datetime.fromtimestamp(lo, dt.UTC).date()
        hi_date = dt.datetime.fromtimestamp(hi, dt.UTC).date()
        if table_exists(spark, plan.source.table):
            before = spark.table(plan.source.table).where(  # partitions, then files by the timestamp's statistics
                F.col(OFFLINE_DATE).between(F.lit(lo_date), F.lit(hi_date))
                & (F.col(plan.source.timestamp_column) >= F.timestamp_seconds(F.lit(lo)))
                & (F.col(plan.source.timestamp_column) < F.timestamp_seconds(F.lit(hi + tile_s)))
                & (F.col(BATCH) != batch_id)
            )
            events = batch.unionByName(before.select(*batch.columns))
        events = events.withColumn("_tile_s", tile_of).join(touched, [*keys, "_tile_s"], "left_semi").drop("_tile_s")
        tiles = tile_partials(events, plan=window).persist()
        t_name = tiles_table(view)
        rollup_tiles = tiles
        if table_exists(spark, t_name):
            read_lo = dt.datetime.fromtimestamp(lo - reach - tile_s, dt.UTC).date() - day
            read_hi = dt.datetime.fromtimestamp(hi, dt.UTC).date()
            others = (
                spark.table(t_name)
                .where(F.col(TILE_DATE).between(F.lit(read_lo), F.lit(read_hi)))
                .where(F.col(TILE_START) >= F.timestamp_seconds(F.lit(lo - reach - tile_s)))
                .join(touched.select(*keys).distinct(), keys, "left_semi")
                .join(tiles.select(*keys, TILE_START), [*keys, TILE_START], "left_anti")
            )
            rollup_tiles = others.unionByName(tiles)
        since = dt.datetime.fromtimestamp(lo + tile_s, dt.UTC)
        until = dt.datetime.fromtimestamp(hi + tile_s + reach + 1, dt.UTC)
        rows = rollup(rollup_tiles, plan=window, start=since, end=until).persist()
        rows.count()  # computed now, from the tiles table before this batch's merge
        return _Computed(view, keys, tiles, rows, since, until, (lo, hi))
    finally:
        touched.unpersist()


def _write_view(spark: SparkSession, settings: Settings, computed: _Computed) -> int | None:
    """Merge the computed tiles into ``features.<view>_v<n>__tiles`` and the rows into the feature table; the
    feature table's version after the merge when it was the only commit since the version before (else None)."""
    view, keys = computed.view, computed.keys
    tile_starts = (TILE_START, computed.tile_range[0], computed.tile_range[1])
    _merge(spark, computed.tiles, tiles_table(view), [*keys, TILE_START], TILE_DATE, {}, tile_starts)
    table = view.offline_table or ""
    before = current_version(spark, table) if table_exists(spark, table) else None
    props = feature_table_properties(settings)
    boundaries = (OFFLINE_TIMESTAMP, int(computed.since.timestamp()), int(computed.until.timestamp()))
    _merge(spark, computed.rows, table, [*keys, OFFLINE_TIMESTAMP], OFFLINE_DATE, props, boundaries)
    after = current_version(spark, table)
    return after if before is not None and after == before + 1 else None


# Per query (checkpoint), the last batch this process ran and the newest event time per Kafka partition up to it:
# the next batch's watermark without reading the batch records back.
_reached: dict[str, tuple[int, dict[int, dt.datetime]]] = {}


def process_batch(
    spark: SparkSession, settings: Settings, repo: Repo, plan: StreamPlan, records: DataFrame, batch_id: int
) -> None:
    """One micro-batch of ``plan``'s source, steps 1-5 of the module's description."""
    from pyspark.sql import functions as F

    source = plan.source
    step = progress.step(f"{source.name}: batch {batch_id}")
    clock = _Clock()
    records = records.persist()  # read from Kafka once
    computed: list[_Computed] = []
    try:
        parsed, refused = parse(records, source, plan.all_keys, batch_id)
        parsed = parsed.persist()
        query = checkpoint_path(settings, source)
        prior = _reached_before(spark, query, source, batch_id)
        # The event time every partition read so far reached (a partition read behind the others does not make
        # its events late), minus the allowed lateness.
        watermark = min(prior.values()) - source.allowed_lateness if prior else None
        ts = F.col(source.timestamp_column)
        is_late = ts < F.lit(watermark) if watermark else F.lit(False)
        per_partition = parsed.groupBy(PARTITION).agg(
            F.count_if(~is_late).alias("events"), F.count_if(is_late).alias("late"), F.max(ts).alias("reached"),
            F.min(F.when(~is_late, ts)).alias("min_ts"), F.max(F.when(~is_late, ts)).alias("max_ts"),
        ).collect()  # fmt: skip
        n_events, n_late = sum(r.events for r in per_partition), sum(r.late for r in per_partition)
        min_ts = min((r.min_ts for r in per_partition if r.min_ts is not None), default=None)
        max_ts = max((r.max_ts for r in per_partition if r.max_ts is not None), default=None)
        reached = {r[PARTITION]: r.reached for r in per_partition}
        n_refused = refused.count()
        events = parsed.where(~is_late) if n_late else parsed
        clock.lap("parse")
        as_of = online_at = None
        app = f"featurelake.stream.{source.name}"
        config = StoreConfig.from_settings(settings)
        if n_events:
            # Online first, from the rows computed in memory; then the Delta tables. A batch replayed after a crash
            # holds the same records: the events append is skipped, tiles and rows recomputed to the same values.
            computed = [c for v in plan.views if (c := _compute_view(spark, plan, v, events, batch_id)) is not None]
            clock.lap("compute")
            as_of = dt.datetime.now(dt.UTC)
            written = {
                c.view.name: materialize_computed(spark, repo, c.view, c.rows, c.since, c.until, config, as_of=as_of)
                for c in computed
                if c.view.online
            }
            online_at = dt.datetime.now(dt.UTC)
            clock.lap("online")
            _append_once(events, source.table, app, batch_id, [OFFLINE_DATE])
            clock.lap("events")
            for c in computed:
                version = _write_view(spark, settings, c)
                read = written.get(c.view.name)
                if read is not None and version is not None:
                    advance_watermark(config, c.view, read, version)
            clock.lap("tables")
            full = [c.view for c in computed if c.view.online and written.get(c.view.name) is None]
            if full:  # no watermark on the table yet (the first batch, a new store): a full materialization
                materialize_views(spark, repo, full, config, as_of=as_of)
                online_at = dt.datetime.now(dt.UTC)
                clock.lap("online (full)")
        if n_refused or n_late:
            late_reason = f"late: before the watermark {watermark} ({format_duration(source.allowed_lateness)} allowed)"
            late = parsed.where(is_late).select(
                TOPIC, PARTITION, OFFSET, F.to_json(F.struct(*source.fields)).alias(RAW),
                F.lit(late_reason).alias(REASON),
            )  # fmt: skip
            dead = refused.unionByName(late).select(
                F.lit(source.name).alias("source"), "*", F.lit(batch_id).cast("bigint").alias(BATCH),
                F.current_timestamp().alias("received_at"),
            )  # fmt: skip
            _append_once(dead.coalesce(1), DEAD_LETTERS, f"{app}.dead", batch_id, None)
        if n_events or n_refused or n_late:
            row = (source.name, batch_id, n_events, n_refused, n_late, max_ts, min_ts, online_at, reached, as_of,
                   clock.seconds)  # fmt: skip
            _append_once(spark.createDataFrame([row], BATCH_SCHEMA), BATCHES, f"{app}.batches", batch_id, None)
        now_reached = dict(prior)
        for partition, t in reached.items():
            if t is not None:
                now_reached[partition] = max(t, now_reached.get(partition, t))
        _reached[query] = (batch_id, now_reached)
        step.done(n_events)
        parsed.unpersist()
    finally:
        for c in computed:
            c.unpersist()
        records.unpersist()


def start_stream(
    spark: SparkSession,
    settings: Settings,
    repo: Repo,
    plan: StreamPlan,
    *,
    available_now: bool = False,
) -> StreamingQuery:
    """Start the query of ``plan``'s source: Kafka (``streaming.bootstrap_servers``) from the earliest offset the
    checkpoint does not hold, a micro-batch every ``streaming.trigger`` (or every event available, then stop)."""
    streaming = settings.streaming
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers(settings))
        .option("subscribe", plan.source.topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "false")
    )
    if streaming.max_events_per_batch:
        reader = reader.option("maxOffsetsPerTrigger", streaming.max_events_per_batch)
    writer = (
        reader.load()
        .writeStream.queryName(f"featurelake_{plan.source.name}")
        .option("checkpointLocation", checkpoint_path(settings, plan.source))
        .foreachBatch(lambda df, batch_id: process_batch(spark, settings, repo, plan, df, batch_id))
    )
    if available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{streaming.trigger_s} seconds")
    try:
        return writer.start()
    except Exception as exc:
        raise ServiceDown(f"stream {plan.source.name}: could not start: {str(exc).splitlines()[0][:300]}") from None
