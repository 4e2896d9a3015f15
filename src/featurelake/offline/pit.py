"""The point-in-time (as-of) join on DataFrames, with no registry: notebooks, tests and the training-set builder.

For each entity row (join keys, event timestamp) and each view: the feature row with equal keys (compared
column by column; a null key matches nothing), ``feature_ts <= event_ts``, ``feature_ts >= event_ts - ttl``
(no lower bound without ttl), the highest ``feature_ts``, ties broken by the highest created timestamp (a
null created timestamp loses). No match: null features. One output row per entity row, duplicates
included, every entity column passed through.

Algorithm (no range join): per view, entity rows and feature rows are unioned and a running
``last(feature, ignorenulls)`` over ``(ts, feature-before-entity, created)`` picks the match. The window is
partitioned by (keys, time bucket) so that one key with many rows is spread over many tasks. With a ttl, a
bucket spans at least ``TTLS_PER_BUCKET`` ttls and the feature rows in the last ttl of a bucket are also put
in the next one, so each bucket holds every row its entity rows can match: at most a quarter more rows, no
aggregation. Without a ttl, the last feature row of earlier buckets reaches a bucket as one "carry" row per
(keys, bucket). Every comparison is on ``unix_micros`` (instants), so the session time zone does not matter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelake.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

P = "__pit_"  # prefix of internal columns; entity and feature columns may not use it
MIN_LONG = -(2**63)
DEFAULT_BUCKET = dt.timedelta(days=7)
# internal columns of the union: (keys...), ts, kind (0 feature, 1 entity), created, entity row, feature struct, bucket
COLUMNS = tuple(f"{P}{n}" for n in ("ts", "kind", "cr", "row", "feat", "bucket"))
METHODS = ("window", "asof")
TTLS_PER_BUCKET = 4  # with a ttl, a bucket spans at least this many ttls: <= 1/4 of the feature rows are doubled


@dataclass(frozen=True)
class ViewInput:
    """One feature view for the join: its rows, keys, timestamp columns, the features to take and the ttl."""

    name: str
    df: DataFrame
    join_keys: Sequence[str]
    features: Sequence[str]
    timestamp_field: str = "event_timestamp"
    created_timestamp_field: str | None = None
    date_partition_field: str | None = None
    ttl: dt.timedelta | None = None
    inputs_only: Sequence[str] = ()  # features joined as input_column()s (request feature views' inputs)

    @property
    def columns_read(self) -> tuple[str, ...]:
        return (*self.features, *self.inputs_only)


def input_column(view: str, feature: str) -> str:
    """The join's column of a feature read only as an input of request feature views (dropped afterwards)."""
    return f"{P}in_{view}__{feature}"


@dataclass(frozen=True)
class _Plan:
    view: ViewInput
    out_names: dict[str, str]  # feature -> output column
    bucket_us: int


def output_names(views: Sequence[ViewInput], entity_columns: Sequence[str], full_feature_names: bool) -> list[dict]:
    """Output column per (view, feature read); raise InputError on a collision. Input-only features get
    :func:`input_column` (entity columns may not start with its prefix)."""
    taken = {c.lower(): "an entity column" for c in entity_columns}
    out = []
    for v in views:
        names = claim_columns(f"view {v.name!r}", v.name, v.features, taken, full_feature_names)
        out.append(names | {f: input_column(v.name, f) for f in v.inputs_only})
    return out


def claim_columns(
    what: str, view: str, features: Sequence[str], taken: dict[str, str], full_feature_names: bool
) -> dict[str, str]:
    """Output column per feature of ``view`` (``what`` names it in errors), added to ``taken`` (lower-case column
    -> its owner); InputError on a collision."""
    names = {}
    for f in features:
        name = f"{view}__{f}" if full_feature_names else f
        if name.lower() in taken:
            hint = "" if full_feature_names else " (use full_feature_names to prefix features with their view)"
            raise InputError(f"output column {name!r} of {what} collides with {taken[name.lower()]}{hint}")
        taken[name.lower()] = f"feature {name!r} of {what}"
        names[f] = name
    return names


def _check(entity_df: DataFrame, views: Sequence[ViewInput], ts_col: str) -> None:
    from pyspark.sql import types as T

    def fields(df: DataFrame) -> dict[str, T.DataType]:
        return {f.name: f.dataType for f in df.schema.fields}

    ent = fields(entity_df)
    if len(set(entity_df.columns)) != len(entity_df.columns):
        raise InputError(f"entity columns repeat: {entity_df.columns}")
    if bad := [c for c in ent if c.startswith(P)]:
        raise InputError(f"entity columns may not start with {P!r}: {bad}")
    if ts_col not in ent:
        raise InputError(f"entity rows have no timestamp column {ts_col!r} (columns: {', '.join(ent)})")
    if not isinstance(ent[ts_col], T.TimestampType):
        raise InputError(f"entity timestamp column {ts_col!r} is {ent[ts_col].simpleString()}, expected timestamp")
    if not views:
        raise InputError("no feature views to join")
    if len({v.name for v in views}) != len(views):
        raise InputError(f"feature views repeat: {[v.name for v in views]}")
    for v in views:
        cols = fields(v.df)
        if not v.join_keys:
            raise InputError(f"feature view {v.name!r} has no join keys")
        if not v.columns_read:
            raise InputError(f"feature view {v.name!r}: no features selected")
        if missing := [k for k in v.join_keys if k not in ent]:
            raise InputError(f"entity rows lack join key(s) {missing} of feature view {v.name!r}")
        needed = [*v.join_keys, v.timestamp_field, *v.columns_read]
        needed += [c for c in (v.created_timestamp_field, v.date_partition_field) if c]
        if missing := [c for c in needed if c not in cols]:
            raise InputError(f"feature view {v.name!r}: its rows lack column(s) {missing}")
        for c in (v.timestamp_field, v.created_timestamp_field):
            if c and not isinstance(cols[c], T.TimestampType):
                raise InputError(f"feature view {v.name!r}: {c!r} is {cols[c].simpleString()}, expected timestamp")
        if v.ttl is not None and v.ttl.total_seconds() <= 0:
            raise InputError(f"feature view {v.name!r}: ttl must be positive")


def _plan(v: ViewInput, names: dict[str, str], bucket: dt.timedelta) -> _Plan:
    size = micros(bucket)
    if v.ttl is not None:
        size = max(size, TTLS_PER_BUCKET * micros(v.ttl))
    return _Plan(v, names, size)


def micros(d: dt.timedelta) -> int:
    return int(d / dt.timedelta(microseconds=1))


def spine_range(entity_df: DataFrame, ts_col: str) -> tuple[int, int] | None:
    """(min, max) of the entity timestamps in epoch microseconds; None when there are none (one small job)."""
    from pyspark.sql import functions as F

    row = entity_df.agg(F.min(F.unix_micros(ts_col)), F.max(F.unix_micros(ts_col))).first()
    return None if row is None or row[0] is None else (int(row[0]), int(row[1]))


def prune(v: ViewInput, span: tuple[int, int] | None) -> DataFrame:
    """The view's rows that can match an entity timestamp in ``span``: partition filter (±1 day for local
    partition dates) plus the exact timestamp bounds."""
    from pyspark.sql import functions as F

    if span is None:
        return v.df
    lo_us, hi_us = span
    ts = F.unix_micros(F.col(v.timestamp_field))
    cond = ts <= F.lit(hi_us)
    epoch = dt.datetime(1970, 1, 1)
    hi_date = (epoch + dt.timedelta(microseconds=hi_us)).date() + dt.timedelta(days=1)
    lo_date = None
    if v.ttl is not None:
        lo = lo_us - int(v.ttl / dt.timedelta(microseconds=1))
        cond = cond & (ts >= F.lit(lo))
        lo_date = (epoch + dt.timedelta(microseconds=lo)).date() - dt.timedelta(days=1)
    if v.date_partition_field:
        part = F.col(v.date_partition_field)
        cond = cond & (part <= F.lit(hi_date))
        if lo_date is not None:
            cond = cond & (part >= F.lit(lo_date))
    return v.df.where(cond)


def matchable_rows(v: ViewInput, span: tuple[int, int] | None) -> DataFrame:
    """The view's rows that can match an entity row: pruned to the spine's reach, every join key and the time set."""
    from pyspark.sql import functions as F

    fdf = prune(v, span)
    for k in v.join_keys:
        fdf = fdf.where(F.col(k).isNotNull())
    return fdf.where(F.col(v.timestamp_field).isNotNull())


def created_micros(v: ViewInput) -> Column:
    """A row's created time in epoch microseconds (the tie-break of equal times), MIN_LONG when unknown."""
    from pyspark.sql import functions as F

    if not v.created_timestamp_field:
        return F.lit(MIN_LONG)
    return F.coalesce(F.unix_micros(F.col(v.created_timestamp_field)), F.lit(MIN_LONG))


def _bucket(col: str, size: int) -> Column:
    from pyspark.sql import functions as F

    return F.expr(f"({col} - pmod({col}, {size}L)) div {size}L")  # floor division, exact on longs


def _join_view(spine: DataFrame, plan: _Plan, ts_col: str, span: tuple[int, int] | None) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    v = plan.view
    key_types = {f.name: f.dataType for f in spine.schema.fields}
    kcols = [f"{P}k{i}" for i in range(len(v.join_keys))]
    ts, kind, cr, row, feat, bucket = COLUMNS

    fdf = matchable_rows(v, span)
    f_ts = F.unix_micros(F.col(v.timestamp_field))
    f_cr = created_micros(v)
    feat_struct = F.struct(f_ts.alias("t"), *[F.col(f).alias(f"f{i}") for i, f in enumerate(plan.out_names)])
    feat_type = fdf.select(feat_struct.alias("s")).schema["s"].dataType
    row_type = T.StructType(spine.schema.fields)

    features = fdf.select(
        *[F.col(k).cast(key_types[k]).alias(c) for k, c in zip(v.join_keys, kcols, strict=True)],
        f_ts.alias(ts),
        F.lit(0).alias(kind),
        f_cr.alias(cr),
        F.lit(None).cast(row_type).alias(row),
        feat_struct.alias(feat),
    ).withColumn(bucket, _bucket(ts, plan.bucket_us))
    entities = spine.select(
        *[F.col(k).alias(c) for k, c in zip(v.join_keys, kcols, strict=True)],
        F.unix_micros(F.col(ts_col)).alias(ts),
        F.lit(1).alias(kind),
        F.lit(MIN_LONG).alias(cr),
        F.struct(*[F.col(c) for c in spine.columns]).alias(row),
        F.lit(None).cast(feat_type).alias(feat),
    ).withColumn(bucket, _bucket(ts, plan.bucket_us))

    if v.ttl is not None:  # rows within the ttl before the next bucket are also put in that bucket
        nxt = F.col(bucket) + 1
        doubled = F.col(ts) >= nxt * F.lit(plan.bucket_us) - F.lit(micros(v.ttl))
        features = features.withColumn(
            bucket, F.explode(F.when(doubled, F.array(bucket, nxt)).otherwise(F.array(bucket)))
        )
        rows = entities.unionByName(features)
    else:  # the last row of any earlier bucket, carried into the buckets holding entity rows
        rows = entities.unionByName(features).unionByName(_carry(features, entities, kcols))

    w = (
        Window.partitionBy(*kcols, bucket)
        .orderBy(F.col(ts), F.col(kind), F.col(cr))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    # An explicit partition count: AQE would coalesce to a count that need not be a multiple of the cores.
    rows = rows.repartition(int(spine.sparkSession.conf.get("spark.sql.shuffle.partitions") or 8), *kcols, bucket)
    matched = rows.withColumn("m", F.last(F.col(feat), ignorenulls=True).over(w)).where(F.col(kind) == 1)
    ok = F.col("m").isNotNull()
    if v.ttl is not None:
        ok = ok & (F.col("m").getField("t") >= F.col(ts) - F.lit(micros(v.ttl)))
    return matched.select(
        *[F.col(row).getField(c).alias(c) for c in spine.columns],
        *[F.when(ok, F.col("m").getField(f"f{i}")).alias(out) for i, out in enumerate(plan.out_names.values())],
    )


def _carry(features: DataFrame, entities: DataFrame, kcols: list[str]) -> DataFrame:
    """Without a ttl: per (keys, bucket) holding entity rows, the last feature row of the earlier buckets."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ts, kind, cr, row, feat, bucket = COLUMNS
    e = f"{P}e"
    last = features.groupBy(*kcols, bucket).agg(
        F.max_by(F.struct(F.col(feat), F.col(cr)), F.struct(F.col(ts), F.col(cr))).alias("c")
    )
    wanted = entities.select(*kcols, bucket).distinct().withColumn("c", F.lit(None).cast(last.schema["c"].dataType))
    # A wanted bucket sorts before the feature rows of its own bucket: only earlier buckets are carried
    # (a same-bucket row later than the entity rows would otherwise hide the earlier match).
    both = last.withColumn(e, F.lit(1)).unionByName(wanted.withColumn(e, F.lit(0)))
    w = Window.partitionBy(*kcols).orderBy(bucket, e).rowsBetween(Window.unboundedPreceding, -1)
    carry = both.withColumn("c", F.last("c", ignorenulls=True).over(w)).where((F.col(e) == 0) & F.col("c").isNotNull())
    return carry.select(
        *kcols,
        F.col("c").getField(feat).getField("t").alias(ts),
        F.lit(0).alias(kind),
        F.col("c").getField(cr).alias(cr),
        F.lit(None).cast(entities.schema[row].dataType).alias(row),
        F.col("c").getField(feat).alias(feat),
        F.col(bucket),
    )


def point_in_time_join(
    entity_df: DataFrame,
    views: Sequence[ViewInput],
    *,
    event_timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
    skew_bucket: dt.timedelta = DEFAULT_BUCKET,
    prune_features: bool = True,
    method: str = "window",
) -> DataFrame:
    """Entity rows with each view's features as of their ``event_timestamp_column`` (see the module docstring).

    Feature columns are named like the features, or ``<view>__<feature>`` with ``full_feature_names``; a
    name clash with an entity column or another view's feature raises InputError. ``skew_bucket`` is the
    time span of the window partitions (smaller spreads a hot key over more tasks). ``prune_features`` reads
    the entity rows' time range once (one small aggregate) to skip feature rows and date partitions that
    cannot match. ``method``: ``"window"`` (the algorithm above) or ``"asof"`` (:mod:`featurelake.offline.asof`:
    hash groups of keys handed to pandas' ``merge_asof``; ``skew_bucket`` does not apply).
    """
    if skew_bucket.total_seconds() <= 0:
        raise InputError("skew_bucket must be a positive duration")
    if method not in METHODS:
        raise InputError(f"unknown point-in-time join method {method!r} (one of {', '.join(METHODS)})")
    _check(entity_df, views, event_timestamp_column)
    names = output_names(views, entity_df.columns, full_feature_names)
    span = spine_range(entity_df, event_timestamp_column) if prune_features else None
    out = entity_df
    for v, n in zip(views, names, strict=True):
        if method == "asof":
            from featurelake.offline import asof

            out = asof.join_view(out, v, n, event_timestamp_column, span)
        else:
            out = _join_view(out, _plan(v, n, skew_bucket), event_timestamp_column, span)
    return out
