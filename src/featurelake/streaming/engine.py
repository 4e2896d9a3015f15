"""Streaming window views: Spark Structured Streaming from a Kafka topic into the view's Delta tables and the online
store, one micro-batch at a time, exactly once.

Each micro-batch ``n`` of a stream source (``foreachBatch``):

1. parses the records (``events.parse``); the refused ones, and events older than the watermark (the event time
   the batches before ``n`` reached in every Kafka partition, minus ``allowed_lateness``), go to
   ``monitoring.stream_dead_letters``;
2. appends the events to the source's Delta table (``txnAppId``/``txnVersion`` = the source and ``n``: a batch
   replayed after a crash is not appended twice);
3. for each view of the source, recomputes from that table the tiles the batch touched (their keys and tile
   starts) with the batch engine's ``tile_partials`` and merges them into ``features.<view>_v<n>__tiles``, then
   rolls those keys up (``rollup``: every boundary their new tiles reach, expiries included) and merges the rows
   into ``features.<view>_v<n>``. Tiles and rows are functions of the events table, so a replay rewrites the
   same values, and the batch engine over the same table gives the same rows;
4. materializes the views incrementally (the rows that changed, and the ones whose time came since the last
   batch: conditional writes, a value never goes back in time);
5. records the batch in ``monitoring.stream_batches`` (events, refused, late, newest event time, when its values
   were online): the next batch's watermark, and the lag ``featurelake stream status`` shows.

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
from featurelake.online.materialize import materialize_views
from featurelake.online.store import StoreConfig
from featurelake.repo.definitions import OFFLINE_DATE, OFFLINE_TIMESTAMP, FeatureView, StreamSource, WindowComputation
from featurelake.streaming.events import BATCH, OFFSET, PARTITION, RAW, REASON, TOPIC, parse
from featurelake.tables import table_exists

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


def stream_plans(repo: Repo, names: list[str] | None) -> list[StreamPlan]:
    """The stream sources of the named views (every streaming view when None), each with all its window views:
    one query per source keeps its views and its events table in step."""
    streaming = [v for v in repo.views.values() if isinstance(v.source, StreamSource)]
    chosen = streaming if not names else [repo.view(n) for n in names]
    for view in chosen:
        if not isinstance(view.source, StreamSource):
            raise InputError(f"feature view {view.name!r} does not read a stream source")
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


def _watermark(spark: SparkSession, source: StreamSource, batch_id: int) -> dt.datetime | None:
    """The event time the batches before ``batch_id`` reached in every Kafka partition they read (the oldest of the
    partitions' newest event times: a partition read behind the others does not make its events late) minus the
    allowed lateness; None before the first batch."""
    from pyspark.sql import functions as F

    if not table_exists(spark, BATCHES):
        return None
    before = spark.table(BATCHES).where((F.col("source") == source.name) & (F.col("batch_id") < batch_id))
    per_partition = before.select(F.explode("partition_max_ts").alias("partition", "ts")).groupBy("partition")
    reached = per_partition.agg(F.max("ts").alias("ts")).agg(F.min("ts")).first()
    return reached[0] - source.allowed_lateness if reached and reached[0] is not None else None


def _append_once(df: DataFrame, table: str, app: str, batch_id: int, partition_by: list[str] | None) -> None:
    """Append ``df`` to ``table`` unless batch ``batch_id`` of ``app`` already did (Delta's idempotent writes); new
    columns are added to the table (a batch record of an older release has fewer)."""
    writer = df.write.format("delta").mode("append").option("txnAppId", app).option("txnVersion", batch_id)
    writer = writer.option("mergeSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.saveAsTable(table)


def _merge(spark: SparkSession, df: DataFrame, table: str, on: list[str], partition_by: str, props: dict) -> None:
    """Upsert ``df`` into ``table`` by ``on`` (created partitioned by ``partition_by`` on first write)."""
    from delta.tables import DeltaTable

    if not table_exists(spark, table):
        df.write.format("delta").partitionBy(partition_by).options(**props).saveAsTable(table)
        return
    condition = " AND ".join(f"t.`{c}` = s.`{c}`" for c in on)
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


def _update_view(
    spark: SparkSession, settings: Settings, plan: StreamPlan, view: FeatureView, batch: DataFrame, clock: _Clock
) -> None:
    """Recompute the tiles ``batch`` touched from the events table, merge them, roll their keys up, merge the rows."""
    from pyspark.sql import functions as F

    keys = plan.keys[view.name]
    window = WindowPlan.from_view(view, keys)
    tile_s, reach = window.tile_seconds, int(window.max_window.total_seconds())
    secs = F.unix_seconds(F.col(plan.source.timestamp_column))
    touched = (
        batch.select(*keys, (secs - F.pmod(secs, F.lit(tile_s))).alias("_tile_s"))
        .where(F.col("_tile_s").isNotNull())
        .distinct()
        .persist()
    )
    try:
        bounds = touched.agg(F.min("_tile_s"), F.max("_tile_s")).first()
        if bounds is None or bounds[0] is None:
            return
        lo, hi = int(bounds[0]), int(bounds[1])
        day = dt.timedelta(days=1)
        lo_date = dt.datetime.fromtimestamp(lo, dt.UTC).date()
        hi_date = dt.datetime.fromtimestamp(hi, dt.UTC).date()
        events = spark.table(plan.source.table).where(F.col(OFFLINE_DATE).between(F.lit(lo_date), F.lit(hi_date)))
        events = events.withColumn("_tile_s", secs - F.pmod(secs, F.lit(tile_s)))
        events = events.join(touched, [*keys, "_tile_s"], "left_semi").drop("_tile_s")
        t_name = tiles_table(view)
        _merge(spark, tile_partials(events, plan=window), t_name, [*keys, TILE_START], TILE_DATE, {})
        clock.lap(f"{view.name}: tiles")
        read_lo = dt.datetime.fromtimestamp(lo - reach - tile_s, dt.UTC).date() - day
        read_hi = dt.datetime.fromtimestamp(hi, dt.UTC).date()
        tiles = (
            spark.table(t_name)
            .where(F.col(TILE_DATE).between(F.lit(read_lo), F.lit(read_hi)))
            .join(touched.select(*keys).distinct(), keys, "left_semi")
        )
        first = dt.datetime.fromtimestamp(lo + tile_s, dt.UTC)
        rows = rollup(tiles, plan=window, start=first, end=dt.datetime.fromtimestamp(hi + tile_s + reach + 1, dt.UTC))
        props = feature_table_properties(settings)
        _merge(spark, rows, view.offline_table or "", [*keys, OFFLINE_TIMESTAMP], OFFLINE_DATE, props)
        clock.lap(f"{view.name}: rows")
    finally:
        touched.unpersist()


def process_batch(
    spark: SparkSession, settings: Settings, repo: Repo, plan: StreamPlan, records: DataFrame, batch_id: int
) -> None:
    """One micro-batch of ``plan``'s source, steps 1-5 of the module's description."""
    from pyspark.sql import functions as F

    source = plan.source
    step = progress.step(f"{source.name}: batch {batch_id}")
    clock = _Clock()
    records = records.persist()  # read from Kafka once
    try:
        parsed, refused = parse(records, source, plan.all_keys, batch_id)
        watermark = _watermark(spark, source, batch_id)
        ts = F.col(source.timestamp_column)
        late = parsed.where(ts < F.lit(watermark)) if watermark else parsed.limit(0)
        events = (parsed.where(ts >= F.lit(watermark)) if watermark else parsed).persist()
        late_reason = f"late: before the watermark {watermark} ({format_duration(source.allowed_lateness)} allowed)"
        dead = refused.unionByName(
            late.select(TOPIC, PARTITION, OFFSET, F.to_json(F.struct(*source.fields)).alias(RAW),
                        F.lit(late_reason).alias(REASON))  # fmt: skip
        ).select(
            F.lit(source.name).alias("source"), "*", F.lit(batch_id).cast("bigint").alias(BATCH),
            F.current_timestamp().alias("received_at"),
        )  # fmt: skip
        app = f"featurelake.stream.{source.name}"
        n_refused, n_late = refused.count(), late.count()
        if n_refused or n_late:
            _append_once(dead.coalesce(1), DEAD_LETTERS, f"{app}.dead", batch_id, None)
        stats = events.agg(F.count(F.lit(1)), F.min(ts), F.max(ts)).first()
        assert stats is not None
        clock.lap("parse")
        as_of = None
        if stats[0]:
            # A batch replayed after a crash holds the same records: the append is skipped, the rest recomputed.
            _append_once(events, source.table, app, batch_id, [OFFLINE_DATE])
            clock.lap("events")
            for view in plan.views:
                _update_view(spark, settings, plan, view, events, clock)
            online = [v for v in plan.views if v.online]
            as_of = dt.datetime.now(dt.UTC)
            materialize_views(spark, repo, online, StoreConfig.from_settings(settings), as_of=as_of)
            clock.lap("online")
        if stats[0] or n_refused or n_late:
            reached = {r[0]: r[1] for r in parsed.groupBy(PARTITION).agg(F.max(ts)).collect()}
            row = (source.name, batch_id, stats[0], n_refused, n_late, stats[2], stats[1], dt.datetime.now(dt.UTC),
                   reached, as_of, clock.seconds)  # fmt: skip
            _append_once(spark.createDataFrame([row], BATCH_SCHEMA), BATCHES, f"{app}.batches", batch_id, None)
        step.done(stats[0])
        events.unpersist()
    finally:
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
