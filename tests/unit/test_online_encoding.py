"""Key and value encoding of the online stores (pure Python)."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurelake.online.encoding import EPOCH, decode_payload, encode_key, key_part, same_value
from featurelake.online.materialize import parse_as_of
from featurelake.online.store import Watermark
from featurelake.repo.definitions import Feature, FeatureView, PathSource, ValueType

key_values = st.lists(st.one_of(st.text(), st.integers()), min_size=1, max_size=4)


@given(key_values, key_values)
def test_distinct_key_tuples_never_share_an_encoding(a, b):
    if [key_part(v) for v in a] != [key_part(v) for v in b]:
        assert encode_key(a) != encode_key(b)
    else:
        assert encode_key(a) == encode_key(b)


@given(key_values)
def test_key_encoding_is_the_json_array_of_the_strings(values):
    assert json.loads(encode_key(values)) == [str(v) for v in values]


def test_key_parts_follow_spark_cast_to_string():
    assert [key_part(v) for v in (True, False, 7, "UA")] == ["true", "false", "7", "UA"]
    with pytest.raises(ValueError, match="null"):
        key_part(None)


def _view() -> FeatureView:
    feats = [
        Feature(name="i", dtype=ValueType.INT32),
        Feature(name="b", dtype=ValueType.INT64),
        Feature(name="d", dtype=ValueType.DOUBLE),
        Feature(name="s", dtype=ValueType.STRING),
        Feature(name="t", dtype=ValueType.TIMESTAMP),
        Feature(name="day", dtype=ValueType.DATE),
        Feature(name="flag", dtype=ValueType.BOOL),
    ]
    src = PathSource(name="src", path="/tmp/x", timestamp_column="ts")
    return FeatureView(name="v", entities=["e"], source=src, features=feats)


def test_payload_decodes_to_the_declared_types_and_null_for_absent_features():
    ts = dt.datetime(2013, 1, 1, 5, 0, 0, 123456, tzinfo=dt.UTC)
    micros = (ts - EPOCH) // dt.timedelta(microseconds=1)
    payload = json.dumps({"i": 3, "b": 2**40, "d": 1.0, "s": "x", "t": micros, "day": 15706, "flag": True})
    got = decode_payload(payload, _view(), ["i", "b", "d", "s", "t", "day", "flag"])
    assert got == {"i": 3, "b": 2**40, "d": 1.0, "s": "x", "t": ts, "day": dt.date(2013, 1, 1), "flag": True}
    assert isinstance(got["d"], float) and isinstance(got["i"], int)
    assert decode_payload("{}", _view(), ["d", "s"]) == {"d": None, "s": None}
    assert decode_payload(None, _view(), ["i"]) == {"i": None}


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_doubles_survive_the_json_roundtrip(x):
    back = decode_payload(json.dumps({"d": x}), _view(), ["d"])["d"]
    assert same_value(back, x) and (math.isnan(x) or back == x)


def test_as_of_parsing():
    assert parse_as_of("2013-01-08") == dt.datetime(2013, 1, 8, tzinfo=dt.UTC)
    assert parse_as_of("2013-01-08T06:00:00+01:00") == dt.datetime(2013, 1, 8, 5, tzinfo=dt.UTC)
    with pytest.raises(Exception, match="--as-of"):
        parse_as_of("yesterday")


def test_watermark_json_roundtrip():
    wm = Watermark("features.t_v1", 4, dt.datetime(2013, 1, 8, tzinfo=dt.UTC), 1_700_000_000_000, "incremental")
    assert Watermark.from_json(wm.to_json()) == wm
