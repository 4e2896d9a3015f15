"""Sliding-window aggregations from partial aggregates per tile (pure transforms: no I/O, no clock).

Semantics (the point-in-time contract). Time is cut into tiles of the view's ``tile`` length, aligned on
the Unix epoch (so on UTC midnight). A value stamped ``event_timestamp`` b (always a tile boundary) covers
the source events with ``b - window <= ts < b``: an event at or after b is never included. Rows are emitted
per entity at the boundaries where a window's content changes: the end of every tile holding events (new
events enter) and ``tile end + window`` for each window (those events leave). So expiry is represented:
when a window empties, ``count``/``count_distinct`` become 0 and ``sum``/``mean``/``min``/``max`` null.

Functions: ``count`` counts non-null values, ``sum``/``mean``/``min``/``max`` ignore nulls (null when the
window holds no value), ``count_distinct`` is exact (a sorted set of distinct values per tile; the window
takes the size of the union of its tiles' sets). Events with a null timestamp or a null join key are dropped.

Determinism: a tile's sum adds its values in sorted order and a window adds its tiles in time order, so the
same events give bit-identical doubles however Spark partitions the input.
``created_timestamp`` equals ``event_timestamp``: the value depends only on events before it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelake.errors import InputError
from featurelake.repo.definitions import (
    OFFLINE_CREATED,
    OFFLINE_DATE,
    OFFLINE_TIMESTAMP,
    Aggregation,
    FeatureView,
    WindowComputation,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

TILE_START = "tile_start"
TILE_DATE = "tile_date"
_S = "_tile_s"  # tile start, epoch seconds
_B = "_boundary_s"  # emission boundary, epoch seconds
# Partial aggregates each function needs (count: non-null values; set: sorted distinct values).
PARTIALS = {
    "count": ("count",),
    "sum": ("sum",),
    "mean": ("sum", "count"),
    "min": ("min",),
    "max": ("max",),
    "count_distinct": ("set",),
}


@dataclass(frozen=True)
class WindowPlan:
    """What a window view computes: entity keys, event timestamp column, tile and aggregations."""

    view: str
    keys: tuple[str, ...]
    timestamp_column: str
    tile: dt.timedelta
    aggregations: tuple[Aggregation, ...]

    @classmethod
    def from_view(cls, view: FeatureView, keys: list[str] | tuple[str, ...]) -> WindowPlan:
        if not isinstance(view.computation, WindowComputation):
            raise InputError(f"feature view {view.name!r} has no window aggregations")
        comp = view.computation
        return cls(view.name, tuple(keys), view.source.timestamp_column, comp.tile, comp.aggregations)

    @property
    def tile_seconds(self) -> int:
        return int(self.tile.total_seconds())

    @property
    def windows(self) -> list[dt.timedelta]:
        return sorted({w for a in self.aggregations for w in a.windows})

    @property
    def max_window(self) -> dt.timedelta:
        return self.windows[-1]

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(a.column for a in self.aggregations))

    def partials(self) -> list[tuple[str, str]]:
        """(column, partial kind) pairs the tiles hold, in a stable order."""
        out: dict[tuple[str, str], None] = {}
        for a in self.aggregations:
            for kind in PARTIALS[a.function]:
                out[(a.column, kind)] = None
        return list(out)

    @property
    def feature_names(self) -> list[str]:
        return [a.feature_name(w) for a in self.aggregations for w in a.windows]


def partial_name(column: str, kind: str) -> str:
    return f"{column}__{kind}"


def _day_of(seconds: Column) -> Column:
    """UTC date of epoch seconds, independent of the session time zone."""
    from pyspark.sql import functions as F

    return F.date_from_unix_date(F.floor(seconds / 86400).cast("int"))


def utc_date(timestamp: Column) -> Column:
    """UTC date of a timestamp, independent of the session time zone."""
    from pyspark.sql import functions as F

    return _day_of(F.unix_seconds(timestamp.cast("timestamp")))


def events(df: DataFrame, *, plan: WindowPlan) -> DataFrame:
    """The source rows as events: keys, timestamp and the aggregated columns; null keys/timestamps dropped."""
    from pyspark.sql import functions as F

    missing = [c for c in (*plan.keys, plan.timestamp_column, *plan.columns) if c not in df.columns]
    if missing:
        raise InputError(f"feature view {plan.view!r}: source has no column(s) {', '.join(missing)}")
    cond = F.col(plan.timestamp_column).isNotNull()
    for k in plan.keys:
        cond = cond & F.col(k).isNotNull()
    cols = list(dict.fromkeys((*plan.keys, plan.timestamp_column, *plan.columns)))
    return df.select(*cols).where(cond)


def tile_partials(df: DataFrame, *, plan: WindowPlan) -> DataFrame:
    """Partial aggregates per (keys, tile): ``tile_start``, ``tile_date`` (UTC) and ``<column>__<kind>``."""
    from pyspark.sql import functions as F

    ev = events(df, plan=plan)
    secs = F.unix_seconds(F.col(plan.timestamp_column).cast("timestamp"))
    ev = ev.withColumn(_S, secs - F.pmod(secs, F.lit(plan.tile_seconds)))
    aggs = []
    for column, kind in plan.partials():
        c = F.col(column)
        value = c.cast("double")
        name = partial_name(column, kind)
        if kind == "count":
            aggs.append(F.count(c).alias(name))
        elif kind == "sum":
            ordered = F.array_sort(F.collect_list(value))
            exact = F.aggregate(ordered, F.lit(0.0), lambda acc, x: acc + x)
            aggs.append(F.when(F.count(c) > 0, exact).alias(name))
        elif kind == "min":
            aggs.append(F.min(value).alias(name))
        elif kind == "max":
            aggs.append(F.max(value).alias(name))
        else:
            aggs.append(F.array_sort(F.collect_set(c)).alias(name))
    tiles = ev.groupBy(*plan.keys, _S).agg(*aggs)
    return tiles.select(
        *plan.keys,
        F.timestamp_seconds(F.col(_S)).alias(TILE_START),
        _day_of(F.col(_S)).alias(TILE_DATE),
        *[partial_name(c, k) for c, k in plan.partials()],
    )


def rollup(
    tiles: DataFrame,
    *,
    plan: WindowPlan,
    start: dt.datetime | dt.date | None = None,
    end: dt.datetime | dt.date | None = None,
) -> DataFrame:
    """Feature rows from tiles, for boundaries ``start <= event_timestamp < end`` (naive datetimes are UTC, a
    date is its midnight UTC).

    Exact for a boundary b only when ``tiles`` holds every tile in ``[b - max_window - tile, b)``.
    """
    from functools import reduce

    from pyspark.sql import Window
    from pyspark.sql import functions as F

    tile_s = plan.tile_seconds
    partials = [partial_name(c, k) for c, k in plan.partials()]
    t = tiles.select(*plan.keys, F.unix_seconds(F.col(TILE_START)).alias(_S), *partials)
    # Row at tile s stands for boundary s + tile. Expiry of tile s from window w happens at s + w + tile,
    # i.e. at the grid row s + w.
    starts = [t.select(*plan.keys, _S)] + [
        t.select(*plan.keys, (F.col(_S) + int(w.total_seconds())).alias(_S)) for w in plan.windows
    ]
    grid = reduce(lambda a, b: a.unionByName(b), starts).distinct()
    rows = grid.join(t, [*plan.keys, _S], "left")
    order = Window.partitionBy(*plan.keys).orderBy(_S)
    features = []
    for agg in plan.aggregations:
        for w in agg.windows:
            frame = order.rangeBetween(-(int(w.total_seconds()) - tile_s), 0)
            features.append(_window_value(agg, frame).alias(agg.feature_name(w)))
    out = rows.select(*plan.keys, (F.col(_S) + tile_s).alias(_B), *features)
    # Filter after the window functions: the frames must see the tiles before `start`.
    if start is not None:
        out = out.where(F.col(_B) >= _epoch(start))
    if end is not None:
        out = out.where(F.col(_B) < _epoch(end))
    return _finish(out, plan)


def _finish(out: DataFrame, plan: WindowPlan) -> DataFrame:
    from pyspark.sql import functions as F

    ts = F.timestamp_seconds(F.col(_B))
    return out.select(
        *plan.keys,
        ts.alias(OFFLINE_TIMESTAMP),
        ts.alias(OFFLINE_CREATED),
        _day_of(F.col(_B)).alias(OFFLINE_DATE),
        *plan.feature_names,
    )


def _window_value(agg: Aggregation, frame) -> Column:
    from pyspark.sql import functions as F

    def p(kind: str) -> Column:
        return F.col(partial_name(agg.column, kind))

    fn = agg.function
    if fn == "count":
        return F.coalesce(F.sum(p("count")).over(frame), F.lit(0)).cast("bigint")
    if fn == "sum":
        return F.sum(p("sum")).over(frame).cast("double")
    if fn == "mean":
        n = F.sum(p("count")).over(frame)
        return F.when(n > 0, F.sum(p("sum")).over(frame) / n).cast("double")
    if fn == "min":
        return F.min(p("min")).over(frame).cast("double")
    if fn == "max":
        return F.max(p("max")).over(frame).cast("double")
    return F.size(F.array_distinct(F.flatten(F.collect_list(p("set")).over(frame)))).cast("bigint")


def _epoch(value: dt.datetime | dt.date) -> int:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp())
