"""Descriptive statistics of every written interval of a feature table, in one Spark aggregation.

Per feature: row count, null count and fraction, and the number of distinct values (HyperLogLog); numeric
features (int, bigint, float, double, boolean as 0/1) also get min, max, mean, sample standard deviation,
approximate quantiles (``percentile_approx``) and a histogram (``histogram_numeric``: bin centers and heights).
All of it is one ``agg`` over the published interval, one scan; the result is appended to
``monitoring.feature_stats``, one row per (view, feature, interval, Delta version).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from featurelake.config import MonitoringSettings
from featurelake.errors import InputError
from featurelake.monitoring import FEATURE_STATS_TABLE
from featurelake.repo.definitions import FeatureView, ValueType
from featurelake.runs import Interval
from featurelake.tables import append_rows, check_identifier, check_table_name, single_row

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

NUMERIC = (ValueType.INT32, ValueType.INT64, ValueType.FLOAT, ValueType.DOUBLE, ValueType.BOOL)


@dataclass(frozen=True)
class FeatureStats:
    """Statistics of one feature over one written interval of its table."""

    view: str
    view_version: int
    feature: str
    dtype: str
    table_name: str
    delta_version: int
    interval_start: dt.date
    interval_end: dt.date
    row_count: int
    null_count: int
    null_fraction: float | None
    distinct_count: int
    min: float | None
    max: float | None
    mean: float | None
    stddev: float | None
    quantile_probs: list[float]
    quantiles: list[float] | None
    histogram: list[tuple[float, float]] | None  # (bin center, height)
    computed_at: dt.datetime


def interval_rows(df: DataFrame, view: FeatureView, interval: Interval, *, date_column: str | None = None) -> DataFrame:
    """The rows of ``df`` in the data interval, on ``date_column`` (default: the view's date partition); all of
    them when the view has none."""
    from pyspark.sql import functions as F

    part = date_column or view.date_partition_field
    if part is None:
        return df
    column = F.col(f"`{check_identifier(part, 'date partition column')}`")
    return df.where(column.between(F.lit(interval.start), F.lit(interval.end)))


def compute_stats(
    df: DataFrame, view: FeatureView, *, histogram_bins: int, quantiles: list[float]
) -> list[dict[str, object]]:
    """The statistics of each feature of ``view`` in ``df`` (one aggregation, one pass); one dict per feature."""
    from pyspark.sql import functions as F

    missing = [f.name for f in view.features if f.name not in df.columns]
    if missing:
        raise InputError(f"feature view {view.name!r}: the written rows have no column(s) {', '.join(missing)}")
    probs = F.array(*[F.lit(float(q)) for q in quantiles])
    aggs = [F.count(F.lit(1)).alias("rows")]
    for i, f in enumerate(view.features):
        col = F.col(f"`{f.name}`")
        aggs += [F.count(col).alias(f"c{i}"), F.approx_count_distinct(col).alias(f"d{i}")]
        if f.dtype in NUMERIC:
            x = col.cast("int").cast("double") if f.dtype == ValueType.BOOL else col.cast("double")
            aggs += [
                F.min(x).alias(f"min{i}"),
                F.max(x).alias(f"max{i}"),
                F.avg(x).alias(f"mean{i}"),
                F.stddev_samp(x).alias(f"sd{i}"),
                F.percentile_approx(x, probs).alias(f"q{i}"),
                F.histogram_numeric(x, F.lit(histogram_bins)).alias(f"h{i}"),
            ]
    row = single_row(df.agg(*aggs))
    rows = int(row["rows"])
    out = []
    for i, f in enumerate(view.features):
        numeric = f.dtype in NUMERIC
        nulls = rows - int(row[f"c{i}"])
        histogram = row[f"h{i}"] if numeric else None
        out.append(
            {
                "feature": f.name,
                "dtype": f.dtype.value,
                "row_count": rows,
                "null_count": nulls,
                "null_fraction": nulls / rows if rows else None,
                "distinct_count": int(row[f"d{i}"]),
                "min": row[f"min{i}"] if numeric else None,
                "max": row[f"max{i}"] if numeric else None,
                "mean": row[f"mean{i}"] if numeric else None,
                "stddev": row[f"sd{i}"] if numeric else None,
                "quantile_probs": [float(q) for q in quantiles],
                "quantiles": list(row[f"q{i}"]) if numeric and row[f"q{i}"] is not None else None,
                "histogram": merged_bins(histogram) if histogram else None,
            }
        )
    return out


def merged_bins(histogram: list) -> list[tuple[float, float]]:
    """``histogram_numeric``'s bins sorted by center, equal centers summed (Spark's merge of partial histograms
    from several partitions can leave two bins with the same center)."""
    heights: dict[float, float] = {}
    for b in histogram:
        heights[float(b["x"])] = heights.get(float(b["x"]), 0.0) + float(b["y"])
    return sorted(heights.items())


def feature_stats_schema():
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("view", T.StringType(), False),
            T.StructField("view_version", T.IntegerType(), False),
            T.StructField("feature", T.StringType(), False),
            T.StructField("dtype", T.StringType(), False),
            T.StructField("table_name", T.StringType(), False),
            T.StructField("delta_version", T.LongType(), False),
            T.StructField("interval_start", T.DateType(), False),
            T.StructField("interval_end", T.DateType(), False),
            T.StructField("row_count", T.LongType(), False),
            T.StructField("null_count", T.LongType(), False),
            T.StructField("null_fraction", T.DoubleType()),
            T.StructField("distinct_count", T.LongType(), False),
            T.StructField("min", T.DoubleType()),
            T.StructField("max", T.DoubleType()),
            T.StructField("mean", T.DoubleType()),
            T.StructField("stddev", T.DoubleType()),
            T.StructField("quantile_probs", T.ArrayType(T.DoubleType()), False),
            T.StructField("quantiles", T.ArrayType(T.DoubleType())),
            T.StructField(
                "histogram",
                T.ArrayType(T.StructType([T.StructField("x", T.DoubleType()), T.StructField("y", T.DoubleType())])),
            ),
            T.StructField("computed_at", T.TimestampType(), False),
        ]
    )


def record_write_stats(
    spark: SparkSession,
    view: FeatureView,
    df: DataFrame,
    *,
    interval: Interval,
    table: str,
    version: int,
    settings: MonitoringSettings | None = None,
) -> list[FeatureStats]:
    """Compute the statistics of ``df`` (the rows a write published for ``interval``) and append them.

    ``table``/``version`` name the Delta commit the rows belong to (its rows of the interval: ``interval_rows``).
    """
    cfg = settings or MonitoringSettings()
    values = compute_stats(df, view, histogram_bins=cfg.histogram_bins, quantiles=cfg.quantiles)
    return append_stats(spark, view, values, interval=interval, table=table, version=version)


def append_stats(
    spark: SparkSession,
    view: FeatureView,
    values: list[dict[str, object]],
    *,
    interval: Interval,
    table: str,
    version: int,
) -> list[FeatureStats]:
    """Append the statistics ``compute_stats`` gave for the rows of ``interval`` in ``table`` at ``version``."""
    check_table_name(table)
    computed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    stats = [
        FeatureStats(
            view=view.name,
            view_version=view.version,
            table_name=table,
            delta_version=int(version),
            interval_start=interval.start,
            interval_end=interval.end,
            computed_at=computed_at,
            **feature,  # type: ignore[arg-type]
        )
        for feature in values
    ]
    append_rows(spark, FEATURE_STATS_TABLE, [asdict(s) for s in stats], feature_stats_schema())
    return stats
