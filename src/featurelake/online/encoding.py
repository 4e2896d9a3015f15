"""How entity keys and feature values are laid out in every online store.

Entity key: the view's join-key values, in join-key order, each as a string (Spark ``CAST(... AS STRING)``;
booleans ``true``/``false``), encoded as a compact JSON array: ``["EWR","LAX"]``. JSON quoting makes the
composite key unambiguous whatever the values contain (no separator can collide).

Value: one JSON object ``{"feature": value, ...}`` per (view, entity key), written by Spark ``to_json``;
a null feature is absent. Timestamps are stored as microseconds since the epoch (UTC), dates as days since
the epoch, floats as doubles; the reader restores the types from the view's feature definitions.

Alongside the value every store keeps ``ts`` (event timestamp, microseconds), ``cts`` (created timestamp,
microseconds, :data:`NO_CREATED` when the view has none) and an expiry (``exp_ms``, wall-clock ms, or none
without ttl). Writes are conditional on ``(ts, cts)`` so an older event never replaces a newer one.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

from featurelake.repo.definitions import FeatureView, ValueType

NO_CREATED = -(2**53) + 1  # sorts below any created timestamp; exact in Lua (double) and DynamoDB numbers
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def key_part(value: Any) -> str:
    """One join-key value as the string Spark's ``CAST(value AS STRING)`` gives."""
    if value is None:
        raise ValueError("a join key value cannot be null")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        raise ValueError(f"timestamp/date join keys are not supported online (got {value!r})")
    return str(value)


def encode_key(values: list[Any] | tuple[Any, ...]) -> str:
    return json.dumps([key_part(v) for v in values], ensure_ascii=False, separators=(",", ":"))


_DECODERS: dict[ValueType, Any] = {
    ValueType.INT32: int,
    ValueType.INT64: int,
    ValueType.DOUBLE: float,
    ValueType.FLOAT: float,
    ValueType.BOOL: bool,
    ValueType.TIMESTAMP: lambda raw: EPOCH + dt.timedelta(microseconds=int(raw)),
    ValueType.DATE: lambda raw: dt.date(1970, 1, 1) + dt.timedelta(days=int(raw)),
    ValueType.STRING: str,
}


def decode_value(raw: Any, dtype: ValueType) -> Any:
    """A feature value from its JSON form back to its Python type (None stays None)."""
    return None if raw is None else _DECODERS[dtype](raw)


def decode_payload(payload: str | None, view: FeatureView, features: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The named features of one stored value (all None when the key is missing)."""
    return decode_typed(payload, {f.name: f.dtype for f in view.features}, features)


def decode_typed(
    payload: str | None, types: Mapping[str, ValueType], features: list[str] | tuple[str, ...]
) -> dict[str, Any]:
    """The named features of one stored value, typed by ``types`` (name -> type)."""
    data = json.loads(payload) if payload is not None else {}
    return {name: decode_value(data.get(name), types[name]) for name in features}


def same_value(a: Any, b: Any) -> bool:
    """Equality for the consistency check: NaN equals NaN; a naive datetime is taken as UTC."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        a = a if a.tzinfo else a.replace(tzinfo=dt.UTC)
        b = b if b.tzinfo else b.replace(tzinfo=dt.UTC)
    return a == b
