"""Training-serving skew: do the values a training set used still agree with what the pipeline serves?

For a sample of a training set's rows (its table ``VERSION AS OF`` the manifest's version), per feature:

- training vs offline: the training value against the point-in-time value the view's offline table gives
  *now* for the same entity row (same keys and event timestamp, the manifest's ttl and timestamp fields).
  Non-zero when a feature table was rewritten since the training set was built (recomputed days, late data,
  a changed transform): a model trained on one set of values would be served another.
- online vs offline: for the sampled rows' keys, the value the online store holds against the value the
  offline table gives now at the view's materialization time (its watermark's as-of). The store holds one
  value per key, the latest, so it is compared with the offline latest value, not with a training row that
  may be older. Non-zero when the offline table changed after the last materialization (or the store was
  written by something else). Expiry after the materialization is the store's clock, not skew: values are
  read as the materialization left them.

Together the two compare training and serving through the offline table as of now; each is reported as a
mismatch rate per feature.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.offline.manifest import ViewRef, load_manifest
from featurelake.offline.pit import point_in_time_join
from featurelake.online.backends import open_store
from featurelake.online.encoding import EPOCH, decode_payload, encode_key, same_value
from featurelake.online.store import OnlineStore, StoreConfig
from featurelake.repo.definitions import FeatureView, ValueType
from featurelake.tables import check_identifier

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from featurelake.repo import Repo

ROW_ID = "__skew_row"
MAX_EXAMPLES = 3


@dataclass
class FeatureSkew:
    """Mismatch counts of one feature of one view."""

    view: str
    feature: str
    sampled: int  # training rows compared with the offline table
    offline_mismatches: int = 0
    online_compared: int | None = None  # keys compared with the online store (None: not online / materialized)
    online_mismatches: int | None = None
    examples: list[str] = field(default_factory=list)

    @property
    def offline_rate(self) -> float:
        return self.offline_mismatches / self.sampled if self.sampled else 0.0

    @property
    def online_rate(self) -> float | None:
        if self.online_compared is None or self.online_mismatches is None:
            return None
        return self.online_mismatches / self.online_compared if self.online_compared else 0.0

    def note(self, example: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)


def _comparable(column: str, dtype: ValueType | None) -> Column:
    """A feature column as compared: timestamps as epoch microseconds (no time zone involved)."""
    from pyspark.sql import functions as F

    col = F.col(f"`{column}`")
    return F.unix_micros(col) if dtype == ValueType.TIMESTAMP else col


def _online_comparable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return (aware - EPOCH) // dt.timedelta(microseconds=1)
    return value


def _offline_now(
    entities: DataFrame, entry: ViewRef, ts_col: str, dtypes: dict[str, ValueType]
) -> dict[int, dict[str, Any]]:
    """Per row id, the view's features point-in-time from its offline table's latest version."""
    view = entry.to_input(entities.sparkSession, latest=True)
    joined = point_in_time_join(entities, [view], event_timestamp_column=ts_col, full_feature_names=True)
    columns = [_comparable(f"{entry.name}__{f}", dtypes.get(f)).alias(f) for f in entry.features]
    return {r[ROW_ID]: r.asDict() for r in joined.select(ROW_ID, *columns).collect()}


def _compare_online(
    spark: SparkSession,
    store: OnlineStore,
    view: FeatureView,
    entry: ViewRef,
    keys: list[dict[str, Any]],
    results: dict[str, FeatureSkew],
) -> None:
    """Online values of ``keys`` against the offline latest values at the view's materialization time."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    watermark = store.get_watermark(view.online_namespace)
    if watermark is None or not view.online:
        return
    join_keys = entry.join_keys
    schema = T.StructType([T.StructField(k, T.StringType()) for k in join_keys])
    as_of = watermark.as_of if watermark.as_of.tzinfo else watermark.as_of.replace(tzinfo=dt.UTC)
    spine = spark.createDataFrame([tuple(k[j] for j in join_keys) for k in keys], schema).withColumn(
        "__skew_as_of", F.lit(as_of).cast("timestamp")
    )
    current = entry.to_input(spark, latest=True)
    typed = current.df.select(
        *[F.col(f"`{k}`").cast("string").alias(k) for k in join_keys],
        *[c for c in current.df.columns if c not in join_keys],
    )
    dtypes = {f.name: f.dtype for f in view.features}
    joined = point_in_time_join(
        spine, [replace(current, df=typed)], event_timestamp_column="__skew_as_of", full_feature_names=True
    )
    columns = [_comparable(f"{view.name}__{f}", dtypes.get(f)).alias(f) for f in entry.features]
    rows = joined.select(*join_keys, *columns).collect()
    encoded = [encode_key([r[k] for k in join_keys]) for r in rows]
    payloads = store.read([(view.online_namespace, encoded)], 0)[0]  # as the materialization left them (expiry ignored)
    for feature in entry.features:
        results[feature].online_compared = len(rows)
        results[feature].online_mismatches = 0
    for row, key, payload in zip(rows, encoded, payloads, strict=True):
        online = decode_payload(payload, view, entry.features)
        for feature in entry.features:
            served = _online_comparable(online[feature])
            if not same_value(row[feature], served):
                skew = results[feature]
                skew.online_mismatches = (skew.online_mismatches or 0) + 1
                skew.note(f"online {key}: offline {row[feature]!r}, online {served!r}")


def measure_skew(
    spark: SparkSession,
    settings: Settings,
    repo: Repo,
    training_set: str,
    *,
    sample: int,
    seed: int = 0,
    store: OnlineStore | None = None,
) -> list[FeatureSkew]:
    """Mismatch counts per (view, feature) of a training set against the offline table and the online store."""
    from pyspark.sql import functions as F

    if sample < 1:
        raise InputError(f"--sample must be at least 1 (got {sample})")
    manifest = load_manifest(spark, check_identifier(training_set, "training set name"))
    ts_col = manifest.spec.event_timestamp_column
    training = manifest.read_table(spark)
    entries = manifest.views
    all_keys = list(dict.fromkeys(k for e in entries for k in e.join_keys))
    missing = [c for c in [*all_keys, ts_col] if c not in training.columns]
    if missing:
        raise InputError(f"training set {training_set!r}: table {manifest.table} has no column(s) {', '.join(missing)}")
    dtypes = {e.name: {f.name: f.dtype for f in repo.view(e.name).features} for e in entries}
    train_cols = [
        _comparable(e.columns[f], dtypes[e.name].get(f)).alias(f"{e.name}__{f}") for e in entries for f in e.features
    ]
    picked = (
        training.select(*[F.col(f"`{c}`") for c in [*all_keys, ts_col]], *train_cols)
        .orderBy(F.rand(seed))
        .limit(sample)
        .withColumn(ROW_ID, F.monotonically_increasing_id())
        .localCheckpoint()  # one fixed sample for the comparison and the joins
    )
    rows = picked.collect()
    entities = picked.select(ROW_ID, *all_keys, ts_col)
    out: list[FeatureSkew] = []
    owned = store is None
    store = store or open_store(StoreConfig.from_settings(settings))
    try:
        for entry in entries:
            view = repo.view(entry.name)
            results = {f: FeatureSkew(view.name, f, len(rows)) for f in entry.features}
            offline = _offline_now(entities.select(ROW_ID, *entry.join_keys, ts_col), entry, ts_col, dtypes[view.name])
            for row in rows:
                now = offline[row[ROW_ID]]
                for f in entry.features:
                    trained = row[f"{view.name}__{f}"]
                    if not same_value(trained, now[f]):
                        results[f].offline_mismatches += 1
                        where = ", ".join(f"{k}={row[k]}" for k in entry.join_keys)
                        results[f].note(
                            f"training {where} @ {row[ts_col]}: trained on {trained!r}, offline now {now[f]!r}"
                        )
            distinct_keys = dict.fromkeys(
                tuple(str(row[k]) for k in entry.join_keys)
                for row in rows
                if all(row[k] is not None for k in entry.join_keys)
            )
            key_rows = [dict(zip(entry.join_keys, k, strict=True)) for k in distinct_keys]
            if key_rows:
                _compare_online(spark, store, view, entry, key_rows, results)
            out.extend(results.values())
    finally:
        if owned:
            store.close()
    return out
