"""Request parsing, response shaping and the metrics text of the feature server (no services)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from featurelake.online.client import NOT_FOUND, OUTSIDE_MAX_AGE, PRESENT, ViewValues
from featurelake.repo.definitions import ValueType
from featurelake.serve.online import (
    Metrics,
    RequestError,
    check_keys,
    encode_response,
    parse_request,
    request_rows,
    shape_response,
)


def test_parse_accepts_feasts_request_and_ignores_its_other_fields():
    req = parse_request(
        b'{"features": ["v:a"], "entities": {"k": [1, "x", true]}, "full_feature_names": true, "top_k": 3}', 10
    )
    assert (req.features, req.entities, req.full_feature_names) == (["v:a"], {"k": [1, "x", True]}, True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff", "not JSON"),
        (b'{"features": ["v:a"], "feature_service": "s", "entities": {"k": [1]}}', "either features"),
        (b'{"features": ["v:a"], "entities": {}}', "entities is empty"),
        (b'{"features": ["v:a"], "entities": {"k": [1, 2], "j": [1]}}', "differ in length: [1, 2]"),
        (b'{"features": ["v:a"], "entities": {"k": [1, 2, 3]}}', "3 entities requested, more than"),
        (b'{"features": ["v:a"], "entities": [1]}', "invalid request: entities"),
    ],
)
def test_parse_refuses_with_one_line(body, message):
    with pytest.raises(RequestError) as err:
        parse_request(body, 2)
    assert err.value.status == 400 and message in str(err.value)


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ({"k": [{"a": 1}]}, "entity key 'k': {'a': 1} is not a string, integer or boolean"),
        ({"k": [1.5]}, "entity key 'k': 1.5 is not a string, integer or boolean"),
        ({"k": [None]}, "entity key 'k' is null in entity 0"),
        ({"j": [1]}, "entities has no column for join key(s) k (view v)"),
    ],
)
def test_join_keys_are_checked_once_the_request_is_planned(entities, message):
    req = parse_request(json.dumps({"features": ["v:a"], "entities": {"d": [2.5], **entities}}).encode(), 10)
    with pytest.raises(RequestError) as err:
        check_keys(req, {"k": "v"})
    assert err.value.status == 400 and str(err.value) == message


def test_request_data_comes_from_entities_or_request_context_typed_from_iso():
    req = parse_request(
        b'{"features": ["r:x"], "entities": {"k": [1, 2]}, "request_context": {"t": ["2013-01-02T03:04:05+00:00",'
        b' "2013-01-02T03:04:05"], "d": ["2013-01-02", null]}}',
        10,
    )
    rows = request_rows(req, {"t": ValueType.TIMESTAMP, "d": ValueType.DATE})
    assert rows[0] == {"k": 1, "t": dt.datetime(2013, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "d": dt.date(2013, 1, 2)}
    assert rows[1]["t"] == dt.datetime(2013, 1, 2, 3, 4, 5) and rows[1]["d"] is None
    with pytest.raises(RequestError, match="request field 't': 'noon' is not an ISO timestamp"):
        request_rows(req.model_copy(update={"request_context": {"t": ["noon", "noon"]}}), {"t": ValueType.TIMESTAMP})
    with pytest.raises(RequestError, match="column\\(s\\) k in both entities and request_context"):
        parse_request(b'{"features": ["r:x"], "entities": {"k": [1]}, "request_context": {"k": [1]}}', 10)


def shaped(req, selections, found) -> dict:
    """The response as a client parses it."""
    return json.loads(encode_response(shape_response(req, selections, found)))


def test_shape_puts_entity_columns_first_and_types_values():
    req = parse_request(b'{"features": ["v:a", "v:t"], "entities": {"k": ["x", "y", "z"]}}', 10)
    ts = dt.datetime(2013, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    found = [
        [
            ViewValues(PRESENT, 1_000_000, {"a": 1.5, "t": ts}),
            ViewValues(NOT_FOUND, None, {"a": None, "t": None}),
            ViewValues(OUTSIDE_MAX_AGE, 2_000_000, {"a": None, "t": None}),
        ]
    ]
    out = shaped(req, [("v", ("a", "t"))], found)
    assert out["metadata"]["feature_names"] == ["k", "a", "t"]
    key, a, t = out["results"]
    assert key == {
        "values": ["x", "y", "z"],
        "statuses": [PRESENT] * 3,
        "event_timestamps": ["1970-01-01T00:00:00Z"] * 3,
    }
    assert a["values"] == [1.5, None, None] and t["values"] == ["2013-01-02T03:04:05.000006Z", None, None]
    assert a["statuses"] == [PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE]
    assert a["event_timestamps"] == ["1970-01-01T00:00:01Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:02Z"]
    full = shaped(req.model_copy(update={"full_feature_names": True}), [("v", ("a", "t"))], found)
    assert full["metadata"]["feature_names"] == ["k", "v__a", "v__t"]


def test_shape_turns_nan_and_infinities_into_null_and_dates_into_iso():
    req = parse_request(b'{"features": ["v:a", "v:d"], "entities": {"k": [1, 2, 3]}}', 10)
    values = [{"a": float("nan"), "d": dt.date(2013, 1, 2)}, {"a": float("inf"), "d": None}, {"a": -0.5, "d": None}]
    out = shaped(req, [("v", ("a", "d"))], [[ViewValues(PRESENT, 0, v) for v in values]])
    assert out["results"][1]["values"] == [None, None, -0.5]
    assert out["results"][2]["values"] == ["2013-01-02", None, None]


def test_metrics_histogram_is_cumulative():
    m = Metrics()
    for seconds in (0.0001, 0.003, 0.003, 5.0):
        m.observe("/p", 200, seconds)
    m.observe("/p", 404, 0.0001)
    text = m.render()
    assert 'featurelake_online_requests_total{path="/p",status="200"} 4' in text
    assert 'featurelake_online_request_seconds_bucket{path="/p",le="0.0005"} 2' in text
    assert 'featurelake_online_request_seconds_bucket{path="/p",le="0.005"} 4' in text
    assert 'featurelake_online_request_seconds_bucket{path="/p",le="1.0"} 4' in text
    assert 'featurelake_online_request_seconds_bucket{path="/p",le="+Inf"} 5' in text
    assert 'featurelake_online_request_seconds_count{path="/p"} 5' in text
