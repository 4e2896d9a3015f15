"""Push sources (Feast's ``PushSource``, Tecton's push API): rows written by a call, ``featurelake.push`` or the
feature server's ``POST /push``, into a stream source's events table and the online store.

Rows come as columns of values (``{"field": [v1, v2, ...]}``, Feast's ``df``): each column a declared field of the
source, the timestamp and the join keys of its views required, values typed as declared (timestamps and dates as ISO
strings, naive meaning UTC). Anything else is refused whole, with one line naming the field and the row.

``to`` says where they land (Feast's ``PushMode``):

- ``offline``: the source's Delta table (``table``, partitioned by ``event_date``), by a MERGE that inserts only the
  rows it does not hold yet (equal in every field): a push retried after a failure adds nothing twice. Window views
  over the source include them at their next compute (``featurelake compute`` / ``backfill``).
- ``online``: the online views whose features are fields of the source (views without a computation: Feast's
  feature views over a push source), one record per entity key, its newest pushed row, through the store's
  conditional write (a value never goes back in time: an older row than the one stored changes nothing). A row
  already past the view's ttl is not written.
- ``online_and_offline``: offline first, then online; a retry after a failure in between converges.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from featurelake.errors import InputError
from featurelake.online.encoding import encode_key
from featurelake.online.materialize import to_micros, utc
from featurelake.online.store import OnlineStore, Record
from featurelake.repo.definitions import OFFLINE_DATE, FeatureView, StreamSource, ValueType
from featurelake.streaming.events import BATCH, OFFSET, PARTITION, TOPIC, event_date

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurelake.repo import Repo


class PushMode(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    ONLINE_AND_OFFLINE = "online_and_offline"

    @classmethod
    def parse(cls, value: str) -> PushMode:
        try:
            return cls(value)
        except ValueError:
            raise InputError(f"to {value!r}: give one of {', '.join(m.value for m in cls)}") from None

    @property
    def online(self) -> bool:
        return self is not PushMode.OFFLINE

    @property
    def offline(self) -> bool:
        return self is not PushMode.ONLINE


@dataclass(frozen=True)
class PushResult:
    source: str
    rows: int
    offline_inserted: int | None  # None: not pushed offline
    online: dict[str, int]  # online view -> records written (a newer stored value skips one)


def push_source(repo: Repo, name: str) -> StreamSource:
    """The stream source ``name`` of the repository; InputError naming the known ones otherwise."""
    source = repo.sources.get(name)
    if not isinstance(source, StreamSource):
        known = sorted(n for n, s in repo.sources.items() if isinstance(s, StreamSource))
        raise InputError(f"no push source {name!r} (stream sources: {', '.join(known) or 'none'})")
    return source


def source_views(repo: Repo, source: StreamSource) -> list[FeatureView]:
    return [v for v in repo.views.values() if isinstance(v.source, StreamSource) and v.source.name == source.name]


def online_push_views(repo: Repo, source: StreamSource) -> list[FeatureView]:
    """The online views whose features are the pushed fields themselves (no computation)."""
    return [v for v in source_views(repo, source) if v.online and v.computation is None]


def _parse_time(value: Any, dtype: ValueType) -> Any:
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp
        value = value.to_pydatetime()
    if not isinstance(value, str):
        return value
    parsed = dt.datetime.fromisoformat(value)
    return parsed.date() if dtype is ValueType.DATE else utc(parsed)


def _typed(value: Any, dtype: ValueType) -> Any:
    """``value`` as ``dtype``'s Python value, or ValueError (None stays None; a bool is not a number)."""
    if value is None:
        return None
    if dtype in (ValueType.TIMESTAMP, ValueType.DATE):
        value = _parse_time(value, dtype)
        if dtype is ValueType.TIMESTAMP and isinstance(value, dt.datetime):
            return utc(value)
        if dtype is ValueType.DATE and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        raise ValueError
    if isinstance(value, bool):
        if dtype is ValueType.BOOL:
            return value
        raise ValueError
    if dtype in (ValueType.INT32, ValueType.INT64) and isinstance(value, int):
        if dtype is ValueType.INT32 and not -(2**31) <= value < 2**31:
            raise ValueError
        return value
    if dtype in (ValueType.FLOAT, ValueType.DOUBLE) and isinstance(value, int | float):
        return float(value)
    if dtype is ValueType.STRING and isinstance(value, str):
        return value
    raise ValueError


def check_rows(repo: Repo, source: StreamSource, columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The pushed columns as typed rows (every declared field, None when not given); InputError with one line
    naming the first problem: an unknown column, columns of different lengths, a missing timestamp or join key,
    a value of another type."""
    if not isinstance(columns, Mapping) or not columns:
        raise InputError(f"push to {source.name}: no rows (give columns of values: {{field: [v1, v2, ...]}})")
    if unknown := sorted(set(columns) - set(source.fields)):
        raise InputError(f"push to {source.name}: unknown field(s) {', '.join(unknown)} "
                         f"(declared: {', '.join(source.fields)})")  # fmt: skip
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(f"push to {source.name}: columns differ in length: {lengths}")
    required = list(dict.fromkeys([source.timestamp_column, *(k for v in source_views(repo, source)
                                                                for k in repo.join_keys(v))]))  # fmt: skip
    if missing := [name for name in required if name not in columns]:
        raise InputError(f"push to {source.name}: no column for required field(s) {', '.join(missing)}")
    n = next(iter(lengths.values()))
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, dtype in source.fields.items():
        values = columns.get(name, [None] * n)
        for i, value in enumerate(values):
            try:
                rows[i][name] = _typed(value, dtype)
            except (ValueError, TypeError):
                raise InputError(f"push to {source.name}: row {i}: field {name}: {value!r} is not a "
                                 f"{dtype.value}") from None  # fmt: skip
            if rows[i][name] is None and name in required:
                raise InputError(f"push to {source.name}: row {i}: field {name} is null (a required field)")
    return rows


def _encoded(value: Any, dtype: ValueType) -> Any:
    """A feature value as the online store holds it (as materialization's ``to_json`` writes it)."""
    if dtype is ValueType.TIMESTAMP:
        return to_micros(value)
    if dtype is ValueType.DATE:
        return (value - dt.date(1970, 1, 1)).days
    return value


def online_records(repo: Repo, view: FeatureView, rows: list[dict[str, Any]], now: dt.datetime) -> list[Record]:
    """Per entity key the newest pushed row (by timestamp) as a conditional upsert; rows past the ttl at ``now``
    are left out. The created timestamp is the push's time, so a row pushed again with a later push wins a tie."""
    source = view.source
    assert isinstance(source, StreamSource)
    keys, ts_col = repo.join_keys(view), source.timestamp_column
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if view.ttl is not None and row[ts_col] < now - view.ttl:
            continue
        key = encode_key([row[k] for k in keys])
        if key not in newest or row[ts_col] >= newest[key][ts_col]:
            newest[key] = row
    created = to_micros(now)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    records = []
    for key, row in newest.items():
        ts_us = to_micros(row[ts_col])
        values = {f.name: _encoded(row[f.name], f.dtype) for f in view.features if row.get(f.name) is not None}
        exp_ms = (ts_us // 1000 + int(view.ttl.total_seconds() * 1000)) if view.ttl is not None else None
        records.append(Record(key, ts_us, created, dumps(values), exp_ms, None))
    return records


def push_online(repo: Repo, source: StreamSource, rows: list[dict[str, Any]], store: OnlineStore) -> dict[str, int]:
    """Write the rows' newest values per key to each online push view of ``source``; records written per view."""
    now = dt.datetime.fromtimestamp(time.time(), dt.UTC)
    written = {}
    for view in online_push_views(repo, source):
        store.prepare(view.online_namespace)
        written[view.name] = store.write(view.online_namespace, online_records(repo, view, rows, now)).written
    return written


def push_offline(spark: SparkSession, source: StreamSource, rows: list[dict[str, Any]]) -> int:
    """Insert the rows the source's table does not hold yet (equal in every field; the table is created on the
    first push); the rows inserted."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from featurelake.tables import table_exists

    schema = ", ".join(f"`{name}` {dtype.value}" for name, dtype in source.fields.items())
    ts = F.col(source.timestamp_column)
    df = (
        spark.createDataFrame([tuple(r[name] for name in source.fields) for r in rows], schema)
        .dropDuplicates()
        .select(
            *source.fields,
            event_date(ts).alias(OFFLINE_DATE),
            F.lit(None).cast("string").alias(TOPIC),
            F.lit(None).cast("int").alias(PARTITION),
            F.lit(None).cast("bigint").alias(OFFSET),
            F.lit(None).cast("bigint").alias(BATCH),
        )
    )
    if not table_exists(spark, source.table):
        df.write.format("delta").partitionBy(OFFLINE_DATE).saveAsTable(source.table)
        return df.count()
    dates = sorted({r[source.timestamp_column].date() for r in rows})
    same = " AND ".join([f"t.`{name}` <=> s.`{name}`" for name in source.fields]
                        + [f"t.`{OFFLINE_DATE}` IN ({', '.join(repr(str(d)) for d in dates)})"])  # fmt: skip
    merged = DeltaTable.forName(spark, source.table).alias("t").merge(df.alias("s"), same)
    metrics = merged.whenNotMatchedInsertAll().execute().first()
    return int(metrics["num_inserted_rows"]) if metrics else 0


def push(
    source_name: str,
    columns: Mapping[str, Sequence[Any]],
    to: str = "online",
    *,
    repo: Repo,
    store: OnlineStore | None = None,
    spark: SparkSession | None = None,
) -> PushResult:
    """Validate the pushed columns against the source, then land them ``to`` the offline table (``spark``) and/or
    the online ``store`` (offline first: see the module's description)."""
    mode = PushMode.parse(to)
    source = push_source(repo, source_name)
    rows = check_rows(repo, source, columns)
    inserted = None
    if mode.offline:
        if spark is None:
            raise InputError("an offline push needs a Spark session")
        inserted = push_offline(spark, source, rows)
    online = {}
    if mode.online:
        if store is None:
            raise InputError("an online push needs an online store")
        online = push_online(repo, source, rows, store)
    return PushResult(source.name, len(rows), inserted, online)
