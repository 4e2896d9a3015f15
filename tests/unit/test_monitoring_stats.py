"""Statistics of a written interval against an independent pandas computation on the same rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from featurelake.monitoring import FEATURE_STATS_TABLE
from featurelake.monitoring.stats import record_write_stats
from featurelake.repo.definitions import DeltaTableSource, Feature, FeatureView, ValueType
from featurelake.runs import Interval

DAY = dt.date(2024, 3, 1)
QUANTILES = [0.1, 0.5, 0.9]


def stats_view() -> FeatureView:
    return FeatureView(
        name="stats_view",
        entities=["thing"],
        source=DeltaTableSource(name="stats_src", table="features.stats_src", timestamp_column="ts"),
        features=[
            Feature(name="delay", dtype=ValueType.DOUBLE),
            Feature(name="flights", dtype=ValueType.INT64),
            Feature(name="carrier", dtype=ValueType.STRING),
        ],
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 400
    delay = rng.normal(10, 5, n).round(1)
    delay[rng.choice(n, 37, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "thing": [f"k{i % 50}" for i in range(n)],
            "delay": delay,
            "flights": rng.integers(0, 12, n),  # 12 distinct values: a 20-bin histogram is exact
            "carrier": rng.choice(["UA", "AA", "DL", None], n),
        }
    )


def test_stats_match_pandas_and_are_stored(spark, settings, frame):
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("thing", T.StringType()),
            T.StructField("delay", T.DoubleType()),
            T.StructField("flights", T.LongType()),
            T.StructField("carrier", T.StringType()),
        ]
    )
    records = [
        (r.thing, None if pd.isna(r.delay) else float(r.delay), int(r.flights), r.carrier) for r in frame.itertuples()
    ]
    df = spark.createDataFrame(records, schema)
    monitoring = settings.monitoring.model_copy(update={"quantiles": QUANTILES, "histogram_bins": 20})
    stats = {
        s.feature: s
        for s in record_write_stats(
            spark,
            stats_view(),
            df,
            interval=Interval(DAY, DAY),
            table="features.stats_src",
            version=3,
            settings=monitoring,
        )
    }
    n = len(frame)
    for name in ("delay", "flights"):
        col = frame[name].astype(float)
        s = stats[name]
        assert s.row_count == n
        assert s.null_count == int(col.isna().sum())
        assert s.null_fraction == pytest.approx(col.isna().mean())
        assert s.min == pytest.approx(col.min()) and s.max == pytest.approx(col.max())
        assert s.mean == pytest.approx(col.mean())
        assert s.stddev == pytest.approx(col.std(ddof=1))
        # percentile_approx is exact on this few rows: the smallest value with at least q of the rows at or below.
        expected_q = np.quantile(col.dropna().to_numpy(), QUANTILES, method="inverted_cdf")
        assert s.quantiles == pytest.approx(list(expected_q))
        assert s.distinct_count == pytest.approx(col.dropna().nunique(), rel=0.05)
        heights = sum(h for _, h in s.histogram)
        assert heights == pytest.approx(n - s.null_count)
        assert all(col.min() <= x <= col.max() for x, _ in s.histogram)
    exact = dict(frame["flights"].astype(float).value_counts().items())
    assert {x: h for x, h in stats["flights"].histogram} == pytest.approx(exact)
    carrier = stats["carrier"]
    assert carrier.null_count == int(frame["carrier"].isna().sum())
    assert carrier.distinct_count == frame["carrier"].dropna().nunique()
    assert carrier.mean is None and carrier.histogram is None

    stored = spark.table(FEATURE_STATS_TABLE).where("view = 'stats_view' AND delta_version = 3").collect()
    assert {r["feature"] for r in stored} == {"delay", "flights", "carrier"}
    row = next(r for r in stored if r["feature"] == "delay")
    assert (row["interval_start"], row["interval_end"], row["table_name"]) == (DAY, DAY, "features.stats_src")
    assert row["mean"] == pytest.approx(frame["delay"].mean())


def test_missing_feature_column_is_named(spark, settings):
    from featurelake.errors import InputError

    df = spark.createDataFrame([("a", 1.0)], "thing string, delay double")
    with pytest.raises(InputError, match="flights, carrier"):
        record_write_stats(spark, stats_view(), df, interval=Interval(DAY, DAY), table="features.stats_src", version=1)
