"""Consistency check: online values against the offline point-in-time values for a sample of entity keys."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from featurelake.errors import FeaturelakeError
from featurelake.online.encoding import EPOCH, decode_payload, encode_key, same_value
from featurelake.online.store import OnlineStore
from featurelake.online.versions import record_check
from featurelake.repo.definitions import FeatureView, ValueType

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurelake.repo import Repo


@dataclass
class CheckResult:
    view: str
    table: str
    version: int
    as_of: dt.datetime
    sampled: int
    mismatches: int
    examples: list[str] = field(default_factory=list)

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.sampled if self.sampled else 0.0


def check_view(
    spark: SparkSession, repo: Repo, store: OnlineStore, view_name: str, *, sample: int, seed: int = 0
) -> CheckResult:
    """Sample ``sample`` entity keys of the offline table and compare each with the online store.

    A view with a ttl samples the keys with a row in the two ttls before the watermark's as-of time: those
    online, and those whose value expired within the last ttl (keys older than that are gone as surely as
    these, and reading them would cost the table's whole history). Expected values follow the PIT rule at the
    watermark's as-of time on the Delta version it read (a window ``row_number`` here, independent of the
    materialization's aggregation); a value whose ttl ran out since (on the store's clock) is expected to be gone.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    view = repo.view(view_name)
    wm = store.get_watermark(view.online_namespace)
    if wm is None:
        raise FeaturelakeError(f"feature view {view.name!r} was never materialized into {store.config.identity}")
    keys = repo.join_keys(view)
    df = spark.sql(f"SELECT * FROM {wm.table} VERSION AS OF {wm.version}")  # table name from our own watermark
    key_cols = [F.col(f"`{k}`").cast("string").alias(k) for k in keys]
    ts = F.col(f"`{view.timestamp_field}`")
    candidates = F.lit(True) if view.ttl is None else ts.between(F.lit(wm.as_of - 2 * view.ttl), F.lit(wm.as_of))
    for k in keys:
        candidates = candidates & F.col(f"`{k}`").isNotNull()
    sampled = df.where(candidates).select(*key_cols).distinct()
    sampled = sampled.orderBy(F.rand(seed)).limit(sample)
    valid = ts <= F.lit(wm.as_of)
    if view.ttl is not None:
        valid = valid & (ts >= F.lit(wm.as_of - view.ttl))
    feats = [
        F.unix_micros(F.col(f"`{f.name}`")).alias(f.name) if f.dtype == ValueType.TIMESTAMP else F.col(f"`{f.name}`")
        for f in view.features
    ]
    latest = (
        df.where(valid)
        .select(*key_cols, F.unix_micros(ts).alias("_ts"), *feats, *order_cols(view))
        .withColumn("_rn", F.row_number().over(Window.partitionBy(*keys).orderBy(*order_sorts(view))))
        .where("_rn = 1")
    )
    rows = sampled.join(latest, keys, "left").collect()  # at most `sample` rows

    store_now = wm.as_of + dt.timedelta(milliseconds=int(time.time() * 1000) - wm.written_at_ms)
    encoded = [encode_key([r[k] for k in keys]) for r in rows]
    payloads = store.read([(view.online_namespace, encoded)], int(time.time() * 1000))[0]
    names = view.feature_names
    mismatches, examples = 0, list[str]()
    for row, key, payload in zip(rows, encoded, payloads, strict=True):
        expected: dict[str, Any] | None = None
        if row["_ts"] is not None:
            event = EPOCH + dt.timedelta(microseconds=row["_ts"])
            if view.ttl is None or event + view.ttl > store_now:
                expected = {f.name: _typed(row[f.name], f.dtype) for f in view.features}
        got = None if payload is None else decode_payload(payload, view, names)
        ok = (expected is None and got is None) or (
            expected is not None and got is not None and all(same_value(expected[n], got[n]) for n in names)
        )
        if not ok:
            mismatches += 1
            if len(examples) < 5:
                examples.append(f"{key}: offline {expected} online {got}")
    if not mismatches:
        record_check(store, view.online_namespace, wm, len(rows))
    return CheckResult(view.name, wm.table, wm.version, wm.as_of, len(rows), mismatches, examples)


def order_cols(view: FeatureView) -> list:
    from pyspark.sql import functions as F

    return [F.col(f"`{view.created_timestamp_field}`").alias("_cts")] if view.created_timestamp_field else []


def order_sorts(view: FeatureView) -> list:
    from pyspark.sql import functions as F

    sorts = [F.col("_ts").desc()]
    if view.created_timestamp_field:
        sorts.append(F.col("_cts").desc_nulls_last())
    return sorts


def _typed(value: Any, dtype: ValueType) -> Any:
    if value is None:
        return None
    if dtype == ValueType.TIMESTAMP:
        return EPOCH + dt.timedelta(microseconds=value)
    return float(value) if dtype in (ValueType.FLOAT, ValueType.DOUBLE) else value
