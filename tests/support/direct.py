"""The window aggregations computed straight from the events (no tiles): the reference the tiled roll-up is
tested and benchmarked against."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame

from featurelake.compute.aggregations import _B, _S, WindowPlan, _epoch, _finish, events


def direct(
    df: DataFrame,
    *,
    plan: WindowPlan,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> DataFrame:
    """The same rows as ``rollup(tile_partials(df))``, computed straight from the events (no tiles).

    Every boundary is joined with the events of its largest window; the benchmark's baseline.
    """
    from functools import reduce

    from pyspark.sql import functions as F

    tile_s = plan.tile_seconds
    ev = events(df, plan=plan)
    secs = F.unix_seconds(F.col(plan.timestamp_column).cast("timestamp"))
    ev = ev.withColumn("_ev_s", secs)
    starts = ev.select(*plan.keys, (F.col("_ev_s") - F.pmod("_ev_s", F.lit(tile_s))).alias(_S))
    grid = reduce(
        lambda a, b: a.unionByName(b),
        [starts] + [starts.select(*plan.keys, (F.col(_S) + int(w.total_seconds())).alias(_S)) for w in plan.windows],
    ).distinct()
    grid = grid.select(*plan.keys, (F.col(_S) + tile_s).alias(_B))
    if start is not None:
        grid = grid.where(F.col(_B) >= _epoch(start))
    if end is not None:
        grid = grid.where(F.col(_B) < _epoch(end))
    maxw = int(plan.max_window.total_seconds())
    joined = grid.alias("g").join(
        ev.alias("e"),
        [F.col(f"g.{k}") == F.col(f"e.{k}") for k in plan.keys]
        + [F.col("e._ev_s") < F.col(f"g.{_B}"), F.col("e._ev_s") >= F.col(f"g.{_B}") - maxw],
        "left",
    )
    features = []
    for agg in plan.aggregations:
        for w in agg.windows:
            inside = F.col("e._ev_s") >= F.col(f"g.{_B}") - int(w.total_seconds())
            v = F.when(inside, F.col(f"e.{agg.column}"))
            fn = agg.function
            if fn == "count":
                e = F.count(v).cast("bigint")
            elif fn == "count_distinct":
                e = F.count_distinct(v).cast("bigint")
            else:
                e = {"sum": F.sum, "mean": F.avg, "min": F.min, "max": F.max}[fn](v.cast("double")).cast("double")
            features.append(e.alias(agg.feature_name(w)))
    out = joined.groupBy(*[F.col(f"g.{k}").alias(k) for k in plan.keys], F.col(f"g.{_B}").alias(_B)).agg(*features)
    return _finish(out, plan)
