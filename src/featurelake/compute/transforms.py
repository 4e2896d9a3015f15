"""Transform views into Delta: the view's pure PySpark function over an interval's source rows, behind the gate.

For a data interval [start, end] of the source's date partitions (of the UTC dates of its timestamps when it
has none), ``compute_transform_view`` reads those source rows, applies ``function(df, **params)``, checks that
the result has the join keys, ``event_timestamp`` and every feature with its declared type, and adds
``created_timestamp`` (the function's when it returns one, else the event time: deterministic, so a re-run
gives the same rows), ``event_date`` (the event's UTC date) and ``source_date`` (the source partition a row
came from). The rows replace the interval's ``source_date`` slice of ``features.<view>_v<version>`` through
the view's validation gate: re-running a day replaces exactly what that day produced, late data included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurelake import progress
from featurelake.compute.aggregations import utc_date
from featurelake.compute.publish import ViewResult, check_inputs, publish_validated, read_partitioned_source
from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.repo.definitions import (
    OFFLINE_CREATED,
    OFFLINE_DATE,
    OFFLINE_SOURCE_DATE,
    OFFLINE_TIMESTAMP,
    FeatureView,
    TransformComputation,
)
from featurelake.repo.schema import transform_output_problems
from featurelake.runs import Interval

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


def transform_rows(view: FeatureView, keys: list[str], source: DataFrame, source_day: Column) -> DataFrame:
    """Apply the view's function to ``source`` and shape its result into the offline table's columns."""
    from pyspark.sql import functions as F

    computation = view.computation
    assert isinstance(computation, TransformComputation)
    out = computation.function(source.withColumn(OFFLINE_SOURCE_DATE, source_day), **computation.params)
    problems = transform_output_problems(view, keys, out.schema)
    if problems:
        raise InputError("transform output does not match its definition:\n  " + "\n  ".join(problems))
    if OFFLINE_SOURCE_DATE not in out.columns:
        raise InputError(
            f"feature view {view.name!r}: the transform dropped the {OFFLINE_SOURCE_DATE!r} column of its input "
            "(keep it so each output row is attributed to its source day)"
        )
    ts = F.col(OFFLINE_TIMESTAMP)
    created = F.col(OFFLINE_CREATED) if OFFLINE_CREATED in out.columns else ts
    return out.select(
        *[F.col(f"`{k}`") for k in keys],
        ts,
        created.cast("timestamp").alias(OFFLINE_CREATED),
        *[F.col(f"`{f.name}`") for f in view.features],
        utc_date(ts).alias(OFFLINE_DATE),
        F.col(OFFLINE_SOURCE_DATE),
    )


def compute_transform_view(
    spark: SparkSession, settings: Settings, view: FeatureView, keys: list[str], interval: Interval
) -> ViewResult:
    """(Re)compute the rows of a source interval of a transform view: one validated Delta commit."""
    from pyspark.sql import functions as F

    check_inputs(view, keys, TransformComputation, "a PySpark transform")
    step = progress.step(f"{view.name}: transform {interval}, gate, publish")
    source, part_col = read_partitioned_source(spark, view)
    day = F.col(part_col) if part_col else utc_date(F.col(view.source.timestamp_column))
    rows = transform_rows(view, keys, source.where(day.between(F.lit(interval.start), F.lit(interval.end))), day)
    commit, gate = publish_validated(
        spark, settings, view, keys, rows, interval, date_column=OFFLINE_SOURCE_DATE, replace=interval
    )
    step.done(commit.rows_written)
    return ViewResult(view.name, commit, interval, gate)
