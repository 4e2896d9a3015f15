"""Streaming window views: Spark Structured Streaming from a Kafka topic into the view's Delta tables and the online
store, one micro-batch at a time, exactly once.

Each micro-batch ``n`` of a stream source (``foreachBatch``), online store first, Delta tables after:

1. parses the records (``events.parse``) and collects the events to the driver (one Spark job; a few thousand rows
   at a thousand events a second); events older than the watermark (the event time the batches before ``n``
   reached in every Kafka partition, minus ``allowed_lateness``; kept in memory from batch to batch) are late;
2. adds the events to each view's tiles in memory (``streaming.tiles.ViewTiles``: the raw values per key and tile
   from the watermark minus the longest window on; loaded once per run from the events table, evicted as the
   watermark moves) and writes the online store from them on the driver (conditional writes: a value never goes
   back in time): the keys whose events landed in tiles closed by the batch's as-of time, and every key with a
   boundary since the store's last as-of time (a window moved on). The batch's values are online now
   (``online_at``);
3. appends the events to the source's Delta table (once: the batch id is in its rows, and a run's first batch,
   the only one a crash can have half-written, is not appended again if it is there), beside step 5's appends
   (three Delta commits at once, mostly waiting on the driver); the batch ends, and Spark commits its Kafka
   offsets, when all three are done;
4. every ``streaming.tables_every_s`` (and every batch of ``--until-idle``, and when the query stops), recomputes
   the tiles the events of the batches since the last such merge touched with the batch engine's
   ``tile_partials`` from the events table, rolls their keys up (``rollup``), and merges them into
   ``features.<view>_v<n>__tiles`` and ``features.<view>_v<n>``: tiles and rows are functions of the events table,
   so the batch engine over it gives the same rows. A batch that merged has a ``tables`` step in its record: a
   restart merges what the batches after the last such one appended;
5. appends the refused and late records to ``monitoring.stream_dead_letters`` and records the batch in
   ``monitoring.stream_batches`` (events, refused, late, newest event time, when its values were online, the
   as-of time, seconds per step up to the record; ``events`` only when step 4 waited for it): the watermark after
   a restart, and the lag ``featurelake stream status`` shows.

The Delta checkpoints of the three tables a batch appends to are the stream's (``Checkpoints``): written in a thread
of their own every ``CHECKPOINT_EVERY`` commits and when the query stops, not in the commit of every 10th version,
which stalled that batch by seconds.

The Spark path replaces step 2 when memory cannot give the values: the first batch of a run without a watermark
yet, a view with no watermark in the store on its table (a new view or store), a key whose last boundary is before
the tiles in memory. Then the batch appends its events, merges the tables (step 4) and materializes the online views
from them (``materialize_views``; in full the first time), and memory is loaded from the events table after.
Kafka offsets are in the query's checkpoint (under the warehouse: ``_streams/<source>``); a restart after kill -9
replays from the last committed batch: memory is rebuilt from the events table of the batches before it, the
online writes are conditional, the appends idempotent, the merges recompute the same values.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from featurelake import progress
from featurelake.compute.aggregations import TILE_DATE, TILE_START, WindowPlan, rollup, tile_partials
from featurelake.compute.publish import feature_table_properties
from featurelake.compute.windows import tiles_table
from featurelake.config import format_duration
from featurelake.errors import InputError, ServiceDown
from featurelake.online.backends import open_store
from featurelake.online.materialize import materialize_views, to_micros, utc
from featurelake.online.store import StoreConfig, Watermark
from featurelake.repo.definitions import OFFLINE_DATE, OFFLINE_TIMESTAMP, FeatureView, StreamSource, WindowComputation
from featurelake.streaming.events import BATCH, OFFSET, PARTITION, RAW, REASON, TOPIC, parse
from featurelake.streaming.tiles import ViewTiles, online_records
from featurelake.tables import current_version, ensure_properties, single_row, table_exists, write_checkpoint

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from featurelake.config import Settings
    from featurelake.repo import Repo

log = logging.getLogger(__name__)

DEAD_LETTERS = "monitoring.stream_dead_letters"
BATCHES = "monitoring.stream_batches"
BATCH_SCHEMA = (
    "source string, batch_id bigint, events bigint, refused bigint, late bigint, max_event_ts timestamp, "
    "min_event_ts timestamp, online_at timestamp, partition_max_ts map<int, timestamp>, as_of timestamp, "
    "step_seconds map<string, double>"
)
# The tables a batch appends to: Delta's own checkpoints (in a commit) only every 1000th version, the stream's
# (``Checkpoints``) every CHECKPOINT_EVERY commits of a run.
APPENDED_TABLE_PROPERTIES = {"delta.checkpointInterval": "1000"}
CHECKPOINT_EVERY = 20


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


def _reached_before(
    spark: SparkSession, state: StreamState, source: StreamSource, batch_id: int
) -> dict[int, dt.datetime]:
    """The newest event time per Kafka partition of the batches before ``batch_id``: the run's own record of them
    when it ran batch ``batch_id - 1`` (``state.reached``), else read from the batch records."""
    from pyspark.sql import functions as F

    last = state.reached
    if last is not None and last[0] == batch_id - 1:
        return last[1]
    if not table_exists(spark, BATCHES):
        return {}
    before = spark.table(BATCHES).where((F.col("source") == source.name) & (F.col("batch_id") < batch_id))
    per_partition = before.select(F.explode("partition_max_ts").alias("partition", "ts")).groupBy("partition")
    return {r[0]: r[1] for r in per_partition.agg(F.max("ts")).collect() if r[1] is not None}


def _append_once(
    state: StreamState, df: DataFrame, table: str, done: Column, batch_id: int, partition_by: list[str] | None
) -> None:
    """Append ``df`` to ``table`` unless the table holds batch ``batch_id`` already (its rows match ``done``). Only
    a run's first batch can be a replay (Spark re-runs the last batch its checkpoint did not commit; every batch
    after it is new), so only that batch reads the table to check; Delta's own idempotent writes (``txnAppId``)
    would rebuild the table's state on every append (0.8 s a commit here). New columns are added to the table (a
    batch record of an older release has fewer). By the table's location once the run knows it
    (``state.locations``): a small append by name costs twice as much, in the catalog's round trips."""
    spark = df.sparkSession
    if batch_id == state.first_batch and table_exists(spark, table) and not spark.table(table).where(done).isEmpty():
        return
    writer = df.write.format("delta").mode("append").option("mergeSchema", "true")
    if location := state.locations.get(table):
        writer.save(location)
        state.checkpoints.committed(spark, location)
        return
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.saveAsTable(table)
    ensure_properties(spark, table, APPENDED_TABLE_PROPERTIES)  # also on a table a push or an older run created
    state.locations[table] = _location(spark, table)


def _location(spark: SparkSession, table: str) -> str:
    return single_row(spark.sql(f"DESCRIBE DETAIL {table}"))["location"]


class Checkpoints:
    """Delta checkpoints of the tables a run appends to, off the batches' path: every ``CHECKPOINT_EVERY`` commits
    of a table, one at a time in a thread of their own (a table whose checkpoint is under way waits for the next
    round). A failed checkpoint is logged and tried again ``CHECKPOINT_EVERY`` commits later."""

    def __init__(self) -> None:
        self._commits: dict[str, int] = {}
        self._writing: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="stream-checkpoints")

    def committed(self, spark: SparkSession, location: str) -> None:
        with self._lock:
            commits = self._commits[location] = self._commits.get(location, 0) + 1
            if commits < CHECKPOINT_EVERY or location in self._writing:
                return
            self._commits[location] = 0
            self._writing.add(location)
        self._pool.submit(self._write, spark, location)

    def _write(self, spark: SparkSession, location: str) -> None:
        try:
            write_checkpoint(spark, location)
        except Exception as error:  # a checkpoint only speeds reads up: the stream goes on without it
            log.warning("checkpoint of %s failed: %s", location, str(error).splitlines()[0][:300])
        finally:
            with self._lock:
                self._writing.discard(location)


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


def _compute_view(spark: SparkSession, plan: StreamPlan, view: FeatureView, pending: DataFrame) -> _Computed | None:
    """The tiles the ``pending`` events (already in the events table) touched, recomputed from every event of
    theirs in the events table; then the rows of their keys (``rollup``: every boundary their new tiles reach,
    expiries included) over the other tiles of the tiles table and the new ones. None when no event has a
    timestamp."""
    from pyspark.sql import functions as F

    keys = plan.keys[view.name]
    window = WindowPlan.from_view(view, keys)
    tile_s, reach = window.tile_seconds, int(window.max_window.total_seconds())
    secs = F.unix_seconds(F.col(plan.source.timestamp_column))
    tile_of = (secs - F.pmod(secs, F.lit(tile_s))).alias("_tile_s")
    touched = pending.select(*keys, tile_of).where(F.col("_tile_s").isNotNull()).distinct().persist()
    try:
        bounds = touched.agg(F.min("_tile_s"), F.max("_tile_s")).first()
        if bounds is None or bounds[0] is None:
            return None
        lo, hi = int(bounds[0]), int(bounds[1])
        day = dt.timedelta(days=1)
        lo_date = dt.datetime.fromtimestamp(lo, dt.UTC).date()
        hi_date = dt.datetime.fromtimestamp(hi, dt.UTC).date()
        events = spark.table(plan.source.table).where(  # partitions, then files by the timestamp's statistics
            F.col(OFFLINE_DATE).between(F.lit(lo_date), F.lit(hi_date))
            & (F.col(plan.source.timestamp_column) >= F.timestamp_seconds(F.lit(lo)))
            & (F.col(plan.source.timestamp_column) < F.timestamp_seconds(F.lit(hi + tile_s)))
        )
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
        rows.count()  # computed now, from the tiles table before this flush's merge
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


_US = "_ts_us"  # an event's time in epoch microseconds, next to its fields in the rows collected


@dataclass
class StreamState:
    """What one run of a source's query carries from batch to batch on the driver: each view's open tiles (None:
    not loaded yet), the last batch whose events the tiles and feature tables hold (None: not read yet), and the
    last batch it ran with the newest event time per Kafka partition up to it (the next batch's watermark without
    reading the batch records back)."""

    tiles: dict[str, ViewTiles] | None = None
    reached: tuple[int, dict[int, dt.datetime]] | None = None
    flushed_through: int | None = None
    flushed_at: float = 0.0  # time.monotonic() of the last flush
    locations: dict[str, str] = field(default_factory=dict)  # where the tables it appends to are
    checkpoints: Checkpoints = field(default_factory=Checkpoints)
    first_batch: int | None = None  # the run's first batch: the only one a crash can have left half-written


def _flushed_through(spark: SparkSession, source: StreamSource, batch_id: int) -> int:
    """The last batch before ``batch_id`` that merged the tiles and rows tables (its record has a ``tables`` step;
    a flush merges every batch up to it); -1 when none did."""
    from pyspark.sql import functions as F

    if not table_exists(spark, BATCHES):
        return -1
    done = (
        spark.table(BATCHES)
        .where((F.col("source") == source.name) & (F.col("batch_id") < batch_id))
        .where(F.map_contains_key("step_seconds", F.lit("tables")))
        .agg(F.max("batch_id"))
        .first()
    )
    return -1 if done is None or done[0] is None else int(done[0])


def _lower_bound(watermark: dt.datetime, window: WindowPlan) -> int:
    """The first tile a view's memory must hold once events before ``watermark`` are refused: every window of a
    boundary an accepted event reaches."""
    return int(watermark.timestamp()) - int(window.max_window.total_seconds()) - window.tile_seconds


def _load_tiles(
    spark: SparkSession, plan: StreamPlan, watermark: dt.datetime, before_batch: int
) -> dict[str, ViewTiles]:
    """Each view's tiles from the lower bound on, from the events table's events of the batches before
    ``before_batch`` (one Spark job per view, values collected per tile)."""
    from pyspark.sql import functions as F

    out = {}
    for view in plan.views:
        keys = plan.keys[view.name]
        window = WindowPlan.from_view(view, keys)
        tiles = ViewTiles(window, _lower_bound(watermark, window))
        if table_exists(spark, plan.source.table):
            secs = F.unix_seconds(F.col(plan.source.timestamp_column))
            lower = F.timestamp_seconds(F.lit(tiles.lower))
            day = dt.datetime.fromtimestamp(tiles.lower, dt.UTC).date() - dt.timedelta(days=1)
            events = spark.table(plan.source.table).where(
                (F.col(OFFLINE_DATE) >= F.lit(day))
                & (F.col(plan.source.timestamp_column) >= lower)
                & ((F.col(BATCH) < before_batch) | F.col(BATCH).isNull())  # null: pushed (featurelake.push)
            )
            for k in keys:
                events = events.where(F.col(k).isNotNull())
            grouped = events.groupBy(*keys, (secs - F.pmod(secs, F.lit(tiles.tile))).alias("_tile_s")).agg(
                *[F.collect_list(c).alias(c) for c in window.columns]
            )
            for row in grouped.collect():
                tiles.add_tile(tuple(row[k] for k in keys), int(row["_tile_s"]), {c: row[c] for c in window.columns})
        out[view.name] = tiles
    return out


def _online_from_memory(
    plan: StreamPlan, state: StreamState, config: StoreConfig, touched: dict[str, set[tuple]], as_of: dt.datetime
) -> bool:
    """Write each online view's changed values at ``as_of`` from its tiles in memory: the keys whose events this
    batch added in tiles closed by ``as_of``, and every key whose last boundary came since the store's as-of time
    (a window moved on). False, writing nothing, when a view has no watermark in the store on its table yet or a
    value cannot be rolled up from memory exactly: the Spark path is due."""
    assert state.tiles is not None
    at_us = to_micros(as_of)
    wall_ms = int(time.time() * 1000)
    views = [v for v in plan.views if v.online]
    writes = []
    with open_store(config) as store:
        for view in views:
            store.prepare(view.online_namespace)
            wm = store.get_watermark(view.online_namespace)
            if wm is None or wm.table != view.offline_table:
                return False
            tiles = state.tiles[view.name]
            prev_s = int(wm.as_of.timestamp())
            moved = [k for k in tiles.entity_keys() if (tiles.latest_boundary(k, at_us // 1_000_000) or 0) > prev_s]
            horizon = max(utc(as_of), wm.as_of)
            records, unknown = online_records(
                tiles,
                dict.fromkeys([*touched[view.name], *moved]),
                features=[f.name for f in view.features],
                at_us=at_us,
                ttl=view.ttl,
                horizon_us=to_micros(horizon),
                clock_offset_ms=wall_ms - at_us // 1000,
            )
            if unknown:
                return False
            done = Watermark(wm.table, wm.version, horizon, wall_ms, "stream", wm.features)
            writes.append((view.online_namespace, records, done))
        for namespace, records, done in writes:
            store.write(namespace, records)
            store.purge_expired(namespace, wall_ms)
            store.set_watermark(namespace, done)
    return True


def flush_tables(spark: SparkSession, settings: Settings, plan: StreamPlan, after: int) -> None:
    """Merge the tiles and rows of the events of the batches after ``after`` (already in the events table) into
    each view's tiles table and feature table; move the store's watermark past the rows' merge when it was the only
    commit since the version the watermark holds (the rows merged are online already, or become valid later, which
    the as-of window of the next materialization catches)."""
    from pyspark.sql import functions as F

    if not table_exists(spark, plan.source.table):
        return
    pending = spark.table(plan.source.table).where(F.col(BATCH) > after)
    config = StoreConfig.from_settings(settings)
    computed = [c for v in plan.views if (c := _compute_view(spark, plan, v, pending)) is not None]
    try:
        for c in computed:
            version = _write_view(spark, settings, c)
            if not c.view.online or version is None:
                continue
            with open_store(config) as store:
                wm = store.get_watermark(c.view.online_namespace)
                if wm is not None and wm.table == c.view.offline_table and wm.version == version - 1:
                    store.set_watermark(c.view.online_namespace, replace(wm, version=version))
    finally:
        for c in computed:
            c.unpersist()


def finish_stream(spark: SparkSession, settings: Settings, plan: StreamPlan) -> None:
    """After the source's query stopped: merge what its last batches left to the tiles and feature tables, and
    checkpoint the tables the batches append to (their own checkpoints are the stream's)."""
    flush_tables(spark, settings, plan, _flushed_through(spark, plan.source, 2**62))
    for table in (plan.source.table, BATCHES, DEAD_LETTERS):
        if table_exists(spark, table):
            write_checkpoint(spark, _location(spark, table))


def process_batch(
    spark: SparkSession,
    settings: Settings,
    repo: Repo,
    plan: StreamPlan,
    records: DataFrame,
    batch_id: int,
    state: StreamState,
    *,
    flush_every_batch: bool = False,
) -> None:
    """One micro-batch of ``plan``'s source, the steps of the module's description."""
    from pyspark.sql import functions as F

    source = plan.source
    step = progress.step(f"{source.name}: batch {batch_id}")
    if state.first_batch is None:
        state.first_batch = batch_id
    clock = _Clock()
    records = records.persist()  # read from Kafka once
    appends, writes = ThreadPoolExecutor(2, thread_name_prefix=f"{source.name}-appends"), []
    try:
        parsed, refused = parse(records, source, plan.all_keys, batch_id)
        prior = _reached_before(spark, state, source, batch_id)
        # The event time every partition read so far reached (a partition read behind the others does not make
        # its events late), minus the allowed lateness.
        watermark = min(prior.values()) - source.allowed_lateness if prior else None
        ts_name = source.timestamp_column
        columns = list(dict.fromkeys([*plan.all_keys, ts_name, *(c for v in plan.views for c in _columns(v))]))
        # One Spark job reads the batch: its events' values and the refused records' reasons.
        collected = (
            parsed.select(*columns, PARTITION, F.unix_micros(F.col(ts_name)).alias(_US))
            .unionByName(refused.select(PARTITION, REASON), allowMissingColumns=True)
            .collect()
        )
        rows = [r for r in collected if r[REASON] is None]
        n_refused = len(collected) - len(rows)
        accepted = [r for r in rows if watermark is None or r[ts_name] >= watermark]
        n_events, n_late = len(accepted), len(rows) - len(accepted)
        min_ts = min((r[ts_name] for r in accepted), default=None)
        max_ts = max((r[ts_name] for r in accepted), default=None)
        reached: dict[int, dt.datetime] = {}
        for r in rows:
            p = r[PARTITION]
            reached[p] = max(r[ts_name], reached.get(p, r[ts_name]))
        ts = F.col(ts_name)
        is_late = ts < F.lit(watermark) if watermark else F.lit(False)
        clock.lap("parse")
        as_of = online_at = None
        this_batch = F.col(BATCH) == batch_id  # in the events table and the dead letters
        of_source = F.col("source") == source.name
        config = StoreConfig.from_settings(settings)
        if n_events:
            if state.tiles is None and watermark is not None:
                state.tiles = _load_tiles(spark, plan, watermark, batch_id)
                clock.lap("load")
            touched: dict[str, set[tuple]] = {}
            if state.tiles is not None:
                for view in plan.views:
                    tiles, keys = state.tiles[view.name], plan.keys[view.name]
                    mine = touched[view.name] = set()
                    for r in accepted:
                        key = tuple(r[k] for k in keys)
                        seconds = r[_US] // 1_000_000
                        tiles.add(key, seconds, r.asDict())
                        mine.add((key, seconds - seconds % tiles.tile + tiles.tile))
            as_of = dt.datetime.now(dt.UTC)
            now_s = int(as_of.timestamp())
            closed = {name: {k for k, end in keys_ends if end <= now_s} for name, keys_ends in touched.items()}
            fast = state.tiles is not None and _online_from_memory(plan, state, config, closed, as_of)
            if fast:
                online_at = dt.datetime.now(dt.UTC)
                clock.lap("online")
            # Appended once (a batch replayed after a crash is not appended twice), beside the dead letters' and the
            # batch record's appends (Delta commits to three tables, mostly waiting on the driver); the batch
            # returns, and its Kafka offsets are committed, once all three are.
            events = parsed.where(~is_late) if n_late else parsed
            by_date = [OFFLINE_DATE]
            events_written = appends.submit(_append_once, state, events, source.table, this_batch, batch_id, by_date)
            writes.append(events_written)
            if state.flushed_through is None:
                state.flushed_through = _flushed_through(spark, source, batch_id)
            due = time.monotonic() - state.flushed_at >= settings.streaming.tables_every_s
            if not fast or flush_every_batch or due:
                events_written.result()  # the merge reads the batch's events from the table
                clock.lap("events")
                flush_tables(spark, settings, plan, state.flushed_through)
                state.flushed_through, state.flushed_at = batch_id, time.monotonic()
                clock.lap("tables")
            if not fast:  # the Spark path: values online from the feature tables just merged
                online = [v for v in plan.views if v.online]
                if online:
                    materialize_views(spark, repo, online, config, as_of=as_of)
                online_at = dt.datetime.now(dt.UTC)
                clock.lap("online (tables)")
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
            dead, dead_done = dead.coalesce(1), of_source & this_batch
            writes.append(appends.submit(_append_once, state, dead, DEAD_LETTERS, dead_done, batch_id, None))
        if n_events or n_refused or n_late:
            row = (source.name, batch_id, n_events, n_refused, n_late, max_ts, min_ts, online_at, reached, as_of,
                   clock.seconds)  # fmt: skip
            record = spark.createDataFrame([row], BATCH_SCHEMA)
            _append_once(state, record, BATCHES, of_source & (F.col("batch_id") == batch_id), batch_id, None)
        for write in writes:
            write.result()
        now_reached = dict(prior)
        for partition, t in reached.items():
            if t is not None:
                now_reached[partition] = max(t, now_reached.get(partition, t))
        state.reached = (batch_id, now_reached)
        if now_reached:
            new_watermark = min(now_reached.values()) - source.allowed_lateness
            if state.tiles is None and n_events:  # after the Spark path: memory from the events table on
                state.tiles = _load_tiles(spark, plan, new_watermark, batch_id + 1)
            elif state.tiles is not None:
                for view in plan.views:
                    tiles = state.tiles[view.name]
                    tiles.evict(_lower_bound(new_watermark, tiles.plan))
        step.done(n_events)
    finally:
        for write in writes:
            write.cancel()
        appends.shutdown(wait=True)
        records.unpersist()


def _columns(view: FeatureView) -> list[str]:
    assert isinstance(view.computation, WindowComputation)
    return [a.column for a in view.computation.aggregations]


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
    state = StreamState()
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
        .foreachBatch(
            lambda df, batch_id: process_batch(
                spark, settings, repo, plan, df, batch_id, state, flush_every_batch=available_now
            )
        )
    )
    if available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{streaming.trigger_s} seconds")
    try:
        return writer.start()
    except Exception as exc:
        raise ServiceDown(f"stream {plan.source.name}: could not start: {str(exc).splitlines()[0][:300]}") from None
