"""How far behind the stream is, from its batch records (``monitoring.stream_batches``): per stream source, and per
streaming view (each view is as late as its source's query). ``featurelake stream status`` and ``featurelake
status`` both show it.

Lag: the newest event time of the last batch that had events to the time its values were online (event time to
online write). Idle: the time since the last batch was recorded, at the as-of time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelake.streaming.engine import BATCHES, streamed
from featurelake.tables import table_exists

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurelake.repo import Repo


@dataclass(frozen=True)
class SourceLag:
    """A stream source's batch records up to the as-of time (times naive UTC)."""

    source: str
    batches: int
    events: int
    refused: int
    late: int
    newest: dt.datetime | None  # the newest event time of any batch
    last_event: dt.datetime | None  # the newest event time of the last batch with events
    last_online: dt.datetime | None  # when that batch's values were online
    last_batch: dt.datetime  # when the last batch (with events or not) was recorded

    @property
    def lag(self) -> dt.timedelta | None:
        if self.last_event is None or self.last_online is None:
            return None
        return self.last_online - self.last_event

    def idle(self, as_of: dt.datetime) -> dt.timedelta:
        return as_of - self.last_batch


@dataclass(frozen=True)
class ViewLag:
    view: str
    source: str
    lag: SourceLag | None  # None: no batch recorded yet


def source_lags(spark: SparkSession, as_of: dt.datetime | None = None) -> dict[str, SourceLag]:
    """Per stream source, its batches recorded at or before ``as_of`` (naive UTC; None: all of them)."""
    from pyspark.sql import functions as F

    if not table_exists(spark, BATCHES):
        return {}
    batches = spark.table(BATCHES)
    if as_of is not None:
        batches = batches.where(F.col("online_at") <= F.lit(as_of))
    with_events = F.when(F.col("events") > 0, F.col("batch_id"))  # max_by skips rows whose ordering is null
    rows = (
        batches.groupBy("source")
        .agg(
            F.count(F.lit(1)).alias("batches"),
            F.sum("events").alias("events"),
            F.sum("refused").alias("refused"),
            F.sum("late").alias("late"),
            F.max("max_event_ts").alias("newest"),
            F.max_by(F.struct("max_event_ts", "online_at"), with_events).alias("last"),
            F.max("online_at").alias("last_batch"),
        )
        .collect()
    )
    return {
        r.source: SourceLag(
            r.source,
            r.batches,
            r.events,
            r.refused,
            r.late,
            r.newest,
            r["last"].max_event_ts if r["last"] else None,
            r["last"].online_at if r["last"] else None,
            r.last_batch,
        )  # fmt: skip
        for r in rows
    }


def view_lags(spark: SparkSession, repo: Repo, as_of: dt.datetime | None = None) -> list[ViewLag]:
    """Each view ``featurelake stream run`` computes, with its source's lag; sorted by view, empty when none."""
    views = sorted((v for v in repo.views.values() if streamed(v)), key=lambda v: v.name)
    lags = source_lags(spark, as_of) if views else {}
    return [ViewLag(v.name, v.source.name, lags.get(v.source.name)) for v in views]
