"""Materialization: the point-in-time latest value per entity key, written from the executors to the online store.

Full: every row of the offline table (at its current Delta version) is a candidate. Incremental: only rows
that changed since the watermark's Delta version (change data feed: inserts and update post-images), plus
the rows that cross a time boundary since the previous run's as-of time (became valid: ``prev_as_of < ts <=
as_of``; aged out of the ttl: ``prev_as_of - ttl <= ts < as_of - ttl``), read with partition pruning.

Per key the candidates reduce to the PIT value at ``as_of`` (ts <= as_of, ts >= as_of - ttl, highest ts,
then highest created ts); keys without one get a conditional delete (removed only if the stored value is
older than ``as_of - ttl``). Every store write is conditional on ``(ts, cts)``, so replays and overlapping
runs never regress a value, and writes are idempotent: after a crash midway, re-running converges.
Each view version writes its own namespace, ``<view>.v<version>``, so versions are served side by side (see
:mod:`featurelake.online.versions`). The watermark (per namespace, kept in the store itself, so a wiped store
starts over with a full run; it also records the feature types a reader decodes with) advances
only after every partition was written. All views of a run are written by one Spark job.

Expiry: a value with ttl expires ``ts + ttl - as_of`` after the run started (the store's clock is the wall
clock shifted to the as-of time; with the default as-of = now that is exactly ``ts + ttl``).

Deleted offline rows are not retracted online (writes only move forward); tables without change data
feed (e.g. dbt models) are materialized in full each time.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from featurelake import progress
from featurelake.errors import FeaturelakeError, InputError
from featurelake.online.backends import open_store
from featurelake.online.encoding import EPOCH, NO_CREATED
from featurelake.online.store import OnlineStore, Record, StoreConfig, Watermark, WriteStats
from featurelake.repo.definitions import Feature, FeatureView, ValueType
from featurelake.runs import recorded_run
from featurelake.tables import check_table_name, current_version, table_properties

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from featurelake.config import Settings
    from featurelake.repo import Repo

CHANGE_TYPES = ("insert", "update_postimage")


def to_micros(t: dt.datetime) -> int:
    return (utc(t) - EPOCH) // dt.timedelta(microseconds=1)


def utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def parse_as_of(value: str | None) -> dt.datetime:
    """``--as-of``: an ISO date or datetime (naive means UTC); None means now."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        return utc(dt.datetime.fromisoformat(value))
    except ValueError:
        raise InputError(f"--as-of {value!r} is not an ISO date or datetime (e.g. 2013-01-08T06:00)") from None


def _encoded_feature(f: Feature) -> Column:
    from pyspark.sql import functions as F

    col = F.col(f"`{f.name}`")
    if f.dtype == ValueType.TIMESTAMP:
        col = F.unix_micros(col)
    elif f.dtype == ValueType.DATE:
        col = F.unix_date(col)
    elif f.dtype == ValueType.FLOAT:
        col = col.cast("double")
    return col.alias(f.name)


def latest_values(
    df: DataFrame,
    *,
    keys: list[str],
    timestamp: str,
    created: str | None,
    features: list[Feature],
    as_of: dt.datetime,
    ttl: dt.timedelta | None,
    clock_offset_ms: int,
    horizon: dt.datetime | None = None,
) -> DataFrame:
    """Per entity key, the PIT value at ``as_of`` as store records (pure).

    Columns: the join keys (as strings), ``ts``/``cts`` (µs), ``payload`` (value JSON, null = conditional
    delete), ``exp_ms`` (wall-clock expiry: ``ts + ttl + clock_offset_ms``) and ``cutoff_us``. ``horizon``
    (default ``as_of``; later when replaying an older as-of into a store that is already further) moves the
    ttl lower bound to ``horizon - ttl``, so a replay cannot bring back values that already expired.
    """
    from pyspark.sql import functions as F

    ts = F.col(f"`{timestamp}`")
    valid = ts <= F.lit(as_of)
    cutoff = max(as_of, horizon or as_of) - ttl if ttl is not None else None
    if cutoff is not None:
        valid = valid & (ts >= F.lit(cutoff))
    cts = F.unix_micros(F.col(f"`{created}`")) if created else F.lit(None).cast("bigint")
    rec = F.struct(
        F.unix_micros(ts).alias("ts"),
        F.coalesce(cts, F.lit(NO_CREATED)).alias("cts"),
        F.struct(*[_encoded_feature(f) for f in features]).alias("f"),
    )
    present = ts.isNotNull()
    for k in keys:
        present = present & F.col(f"`{k}`").isNotNull()
    # Grouped by the keys as they are (a long sorts faster than its string), cast to strings after.
    grouped = (
        df.where(present).groupBy(*[F.col(f"`{k}`").alias(k) for k in keys]).agg(F.max(F.when(valid, rec)).alias("w"))
    )
    w = F.col("w")
    exp = (w.ts / 1000).cast("bigint") + F.lit(int(ttl.total_seconds() * 1000) + clock_offset_ms) if ttl else None
    out = grouped.select(
        *[F.col(f"`{k}`").cast("string").alias(k) for k in keys],
        w.ts.alias("ts"),
        w.cts.alias("cts"),
        F.when(w.isNotNull(), F.to_json(w.f)).alias("payload"),
        (exp if exp is not None else F.lit(None).cast("bigint")).alias("exp_ms"),
        F.lit(to_micros(cutoff) if cutoff else None).cast("bigint").alias("cutoff_us"),
    )
    return out if cutoff is not None else out.where(w.isNotNull())


@dataclass(frozen=True)
class MaterializeResult:
    view: str
    table: str
    store: str
    mode: str
    reason: str
    from_version: int | None
    to_version: int
    as_of: dt.datetime
    written: int
    deleted: int
    skipped: int
    seconds: float


def _snapshot(spark: SparkSession, table: str, version: int) -> DataFrame:
    return spark.sql(f"SELECT * FROM {check_table_name(table)} VERSION AS OF {int(version)}")


def _between(view: FeatureView, lo: dt.datetime, hi: dt.datetime, *, include_hi: bool) -> Column:
    """``lo < ts <= hi`` (or ``lo <= ts < hi``), with a date-partition filter for pruning."""
    from pyspark.sql import functions as F

    ts = F.col(f"`{view.timestamp_field}`")
    cond = (ts > F.lit(lo)) & (ts <= F.lit(hi)) if include_hi else (ts >= F.lit(lo)) & (ts < F.lit(hi))
    if view.date_partition_field:  # partitions may be local dates: widen by a day on each side
        day = F.col(f"`{view.date_partition_field}`")
        one = dt.timedelta(days=1)
        cond = cond & (day >= F.lit(lo.date() - one)) & (day <= F.lit(hi.date() + one))
    return cond


def changed_rows(spark: SparkSession, table: str, after: int, version: int) -> DataFrame:
    """The rows inserted or updated in ``table`` by versions ``after + 1`` .. ``version`` (change data feed)."""
    from pyspark.sql import functions as F

    cdf = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", after + 1)
        .option("endingVersion", version)
        .table(table)
    )
    return cdf.where(F.col("_change_type").isin(*CHANGE_TYPES))


def _incremental_rows(
    spark: SparkSession, view: FeatureView, table: str, wm: Watermark, version: int, as_of: dt.datetime, cols: list
) -> DataFrame | None:
    """The candidate rows since the watermark; None when nothing changed and the as-of time did not move."""
    from functools import reduce

    parts = []
    if version > wm.version:
        parts.append(changed_rows(spark, table, wm.version, version).select(*cols))
    lo, hi = sorted((wm.as_of, as_of))
    if lo < hi:  # the as-of time moved: rows that became valid or aged out in between
        window = _between(view, lo, hi, include_hi=True)
        if view.ttl is not None:
            window = window | _between(view, lo - view.ttl, hi - view.ttl, include_hi=False)
        parts.append(_snapshot(spark, table, version).where(window).select(*cols))
    if not parts:
        return None
    return reduce(lambda a, b: a.unionByName(b), parts)


def _write(df: DataFrame, config: StoreConfig, views: list[str], fail_after: int | None) -> dict[str, WriteStats]:
    """The records of every view written from the executors, their Arrow batches handed to Python (no row
    pickling): each task opens the store once and writes each batch view by view. Returns the counts per view,
    summed from the tasks' results (a retried task counts once)."""

    def write_batches(batches: Any) -> Any:
        import pyarrow as pa
        from pyspark import TaskContext

        from featurelake.online.backends import open_store as open_

        ctx = TaskContext.get()
        if fail_after is not None and ctx is not None and ctx.partitionId() >= fail_after:
            raise RuntimeError(f"injected failure in partition {ctx.partitionId()}")
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        totals = {view: WriteStats() for view in views}
        with open_(config) as store:
            for batch in batches:
                per_view: dict[str, list[Record]] = {}
                cols = batch.to_pydict()  # "view" and the Record's fields, by name
                rows = zip(cols["view"], cols["key"], *(cols[f] for f in Record._fields[1:]), strict=True)
                for view, key, *rest in rows:
                    per_view.setdefault(view, []).append(Record(dumps(key), *rest))
                for view, records in per_view.items():
                    totals[view].add(store.write(view, records))
        yield pa.RecordBatch.from_pylist([{"view": view, **asdict(stats)} for view, stats in totals.items()])

    # spread over a task per core (one connection each to the store), whatever the partitions Spark's adaptive
    # execution left after the aggregation (one for a small change)
    partitions = max(2, df.sparkSession.sparkContext.defaultParallelism)
    counts = "view string, written long, deleted long, skipped long"
    tasks = df.repartition(partitions).mapInArrow(write_batches, counts)
    totals = {view: WriteStats() for view in views}
    for row in tasks.collect():
        totals[row.view].add(WriteStats(row.written, row.deleted, row.skipped))
    return totals


@dataclass
class _ViewRun:
    """One view's part of a materialization: what it reads and from which watermark."""

    view: FeatureView
    table: str
    keys: list[str]
    version: int
    watermark: Watermark | None
    mode: str
    reason: str
    horizon: dt.datetime
    rows: DataFrame | None  # None: no change since the watermark and the same as-of time


def _plan_view(
    spark: SparkSession, repo: Repo, view: FeatureView, store: OnlineStore, as_of: dt.datetime, full: bool
) -> _ViewRun:
    from pyspark.errors import AnalysisException

    table = view.offline_table
    if table is None:
        raise FeaturelakeError(f"feature view {view.name!r} has no catalog table to materialize from")
    if not spark.catalog.tableExists(table):
        raise FeaturelakeError(f"offline table {table} of feature view {view.name!r} does not exist yet")
    keys = repo.join_keys(view)
    cols = list(dict.fromkeys([*keys, view.timestamp_field, *filter(None, [view.created_timestamp_field])]))
    cols = [f"`{c}`" for c in [*cols, *(f.name for f in view.features)]]
    version = current_version(spark, table)
    store.prepare(view.online_namespace)
    wm = store.get_watermark(view.online_namespace)
    mode, reason = "incremental", f"changes since version {wm.version if wm else None}"
    if full:
        mode, reason = "full", "--full"
    elif wm is None:
        mode, reason = "full", "first run for this store"
    elif wm.table != table or wm.version > version:
        mode, reason = "full", f"offline table changed ({wm.table}@{wm.version} -> {table}@{version})"
    elif table_properties(spark, table).get("delta.enableChangeDataFeed", "").lower() != "true":
        mode, reason = "full", f"change data feed is off on {table}"
    rows: DataFrame | None = None
    if mode == "incremental" and wm is not None:
        try:
            rows = _incremental_rows(spark, view, table, wm, version, as_of, cols)
        except AnalysisException as exc:
            mode, reason = "full", f"change data unavailable ({str(exc).splitlines()[0][:120]})"
    if mode == "full":
        rows = _snapshot(spark, table, version).select(*cols)
    horizon = max(as_of, wm.as_of) if wm is not None and wm.table == table else as_of
    return _ViewRun(view, table, keys, version, wm, mode, reason, horizon, rows)


def materialize_views(
    spark: SparkSession,
    repo: Repo,
    views: list[FeatureView],
    config: StoreConfig,
    *,
    as_of: dt.datetime,
    full: bool = False,
    fail_after_partitions: int | None = None,
) -> list[MaterializeResult]:
    """Materialize ``views`` in one Spark job; ``fail_after_partitions`` makes tasks of later partitions fail
    (crash tests). Watermarks move only after every partition was written."""
    from functools import reduce

    from pyspark.sql import functions as F

    started = time.perf_counter()
    as_of = utc(as_of)
    with open_store(config) as store:
        runs = [_plan_view(spark, repo, view, store, as_of, full) for view in views]
    wall_ms = int(time.time() * 1000)
    records = [
        latest_values(
            run.rows,
            keys=run.keys,
            timestamp=run.view.timestamp_field,
            created=run.view.created_timestamp_field,
            features=list(run.view.features),
            as_of=as_of,
            ttl=run.view.ttl,
            clock_offset_ms=wall_ms - to_micros(as_of) // 1000,
            horizon=run.horizon,
        ).select(
            F.lit(run.view.online_namespace).alias("view"),
            F.array(*[F.col(f"`{k}`") for k in run.keys]).alias("key"),
            "ts",
            "cts",
            "payload",
            "exp_ms",
            "cutoff_us",
        )
        for run in runs
        if run.rows is not None
    ]
    stats = {run.view.online_namespace: WriteStats() for run in runs}
    step = progress.step(f"materialize {len(runs)} views into {config.identity}")
    if records:
        union = reduce(lambda a, b: a.unionAll(b), records)
        stats.update(_write(union, config, [run.view.online_namespace for run in runs], fail_after_partitions))
    step.done(sum(s.written for s in stats.values()))
    with open_store(config) as store:
        for run in runs:
            namespace, types = run.view.online_namespace, {f.name: str(f.dtype) for f in run.view.features}
            store.purge_expired(namespace, wall_ms)
            store.set_watermark(namespace, Watermark(run.table, run.version, run.horizon, wall_ms, run.mode, types))
    seconds = time.perf_counter() - started
    return [
        MaterializeResult(
            run.view.name,
            run.table,
            config.identity,
            run.mode,
            run.reason,
            run.watermark.version if run.watermark else None,
            run.version,
            as_of,
            stats[run.view.online_namespace].written,
            stats[run.view.online_namespace].deleted,
            stats[run.view.online_namespace].skipped,
            seconds,
        )
        for run in runs
    ]


def online_views(repo: Repo, names: list[str] | None) -> list[FeatureView]:
    """The named views (all online views when ``names`` is None); an offline-only view named raises."""
    if names is None:
        return [v for v in repo.views.values() if v.online]
    views = [repo.view(n) for n in names]
    offline_only = [v.name for v in views if not v.online]
    if offline_only:
        raise InputError(f"feature view(s) {', '.join(offline_only)} are not online (online=False)")
    return views


def materialize(
    spark: SparkSession,
    settings: Settings,
    repo: Repo,
    view_names: list[str] | None,
    *,
    as_of: dt.datetime,
    full: bool = False,
    store: OnlineStore | None = None,
) -> list[MaterializeResult]:
    """Materialize the named views (all online views when None) into the configured store; a failure is
    recorded in ``monitoring.runs`` for each of them (one Spark job writes them all) before it is raised."""
    config = store.config if store else StoreConfig.from_settings(settings)
    views = online_views(repo, view_names)
    with recorded_run(spark, "materialize", [v.offline_table or v.name for v in views], None) as run:
        results = materialize_views(spark, repo, views, config, as_of=as_of, full=full)
        for r in results:
            run.record(
                r.table,
                "success",
                f"view {r.view} -> {r.store} as of {r.as_of.isoformat()}: {r.mode} ({r.reason}), "
                f"written {r.written}, deleted {r.deleted}, unchanged {r.skipped}",
                version=r.to_version,
                rows=r.written,
            )
    return results
