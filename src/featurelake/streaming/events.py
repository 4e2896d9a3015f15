"""Kafka records of a stream source into typed events, and the ones that cannot be: pure transforms, no I/O.

A record's value must be a JSON object; each declared field is read from it as text and cast to its type (a
timestamp as ISO 8601, naive meaning UTC). A record is refused, with one reason, when its value is not a JSON object,
a field holds a value of another type, or the timestamp or a join key is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurelake.repo.definitions import OFFLINE_DATE, StreamSource, ValueType

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

# Where an event came from, kept beside its fields in the events table (the batch id makes replays idempotent and
# the watermark of a batch depend only on the batches before it).
TOPIC, PARTITION, OFFSET, BATCH = "_kafka_topic", "_kafka_partition", "_kafka_offset", "_batch_id"
REASON, RAW = "reason", "value"
_FIELDS = "_fields"


def _typed(text: Column, dtype: ValueType) -> Column:
    from pyspark.sql import functions as F

    if dtype == ValueType.TIMESTAMP:
        return F.try_to_timestamp(text)
    if dtype == ValueType.BOOL:
        lowered = F.lower(text)
        return F.when(lowered == "true", True).when(lowered == "false", False)
    return text.try_cast(str(dtype))


def event_date(ts: Column) -> Column:
    """The UTC day of an event time: the events table's partition (``event_date``)."""
    from pyspark.sql import functions as F

    return F.date_from_unix_date(F.floor(F.unix_seconds(ts) / 86400).cast("int"))


def parse(records: DataFrame, source: StreamSource, keys: list[str], batch_id: int) -> tuple[DataFrame, DataFrame]:
    """(events, refused) of one micro-batch of Kafka records (``value``, ``topic``, ``partition``, ``offset``).

    events: the declared fields typed, ``event_date`` (UTC date of the timestamp) and where each came from;
    refused: ``topic``, ``partition``, ``offset``, ``value`` (as text) and ``reason``.
    """
    from pyspark.sql import functions as F

    text = F.col("value").cast("string")
    parsed = records.select(
        F.col("topic").alias(TOPIC),
        F.col("partition").alias(PARTITION),
        F.col("offset").alias(OFFSET),
        text.alias(RAW),
        F.from_json(text, "map<string,string>", {"mode": "PERMISSIVE"}).alias(_FIELDS),
    )
    raw = {name: F.col(_FIELDS)[name] for name in source.fields}
    typed = {name: _typed(raw[name], dtype) for name, dtype in source.fields.items()}
    problems = [F.when(F.col(_FIELDS).isNull(), F.lit("not a JSON object"))]
    for name, dtype in source.fields.items():
        problems.append(
            F.when(
                raw[name].isNotNull() & typed[name].isNull(),
                F.concat(F.lit(f"field {name}: "), F.substring(raw[name], 1, 80), F.lit(f" is not a {dtype.value}")),
            )
        )
    for name in [source.timestamp_column, *keys]:
        problems.append(F.when(raw[name].isNull(), F.lit(f"no {name}")))
    checked = parsed.select("*", F.coalesce(*problems).alias(REASON), *[typed[n].alias(n) for n in source.fields])
    ts = F.col(source.timestamp_column)
    events = checked.where(F.col(REASON).isNull()).select(
        *source.fields,
        event_date(ts).alias(OFFLINE_DATE),
        TOPIC,
        PARTITION,
        OFFSET,
        F.lit(batch_id).cast("bigint").alias(BATCH),
    )
    refused = checked.where(F.col(REASON).isNotNull()).select(TOPIC, PARTITION, OFFSET, RAW, REASON)
    return events, refused
