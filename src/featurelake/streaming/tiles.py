"""A window view's open tiles in the stream process's memory, and the online records rolled up from them.

The stream engine's hot path (``featurelake.streaming.engine``) keeps, per window view, the raw values of every
event at or after a lower bound (``lower``, a tile start; the events the view's windows can still reach), grouped by
entity key and tile, and rolls a key's windows up at a boundary with the same arithmetic as the batch engine
(``featurelake.compute.aggregations``): a tile's sum adds its values in sorted order from 0.0, a window adds its
tiles' sums in time order, count counts non-null values, mean is sum / count, count_distinct the size of the union.
So the values are bit-identical to the feature table's rows for the same events. Pure: no Spark, no I/O, no clock.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from featurelake.compute.aggregations import WindowPlan
from featurelake.online.encoding import encode_key
from featurelake.online.store import Record

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _tile_sum(values: list[Any]) -> float:
    acc = 0.0
    for x in sorted(float(v) for v in values):
        acc += x
    return acc


class ViewTiles:
    """Events of one window view from ``lower`` (epoch seconds) on, per entity key and tile start."""

    def __init__(self, plan: WindowPlan, lower: int) -> None:
        self.plan = plan
        self.tile = plan.tile_seconds
        self.reach = int(plan.max_window.total_seconds())
        self.lower = lower - lower % self.tile
        self.columns = plan.columns
        self._tiles: dict[tuple, dict[int, dict[str, list[Any]]]] = {}
        self._starts: dict[tuple, list[int]] = {}  # per key, its tile starts sorted

    def __len__(self) -> int:
        return len(self._tiles)

    def add(self, key: tuple, seconds: int, values: Mapping[str, Any]) -> bool:
        """Add one event (its time in epoch seconds, its columns); False (nothing added) when before ``lower``."""
        start = seconds - seconds % self.tile
        if start < self.lower:
            return False
        tiles = self._tiles.setdefault(key, {})
        tile = tiles.get(start)
        if tile is None:
            tile = tiles[start] = {c: [] for c in self.columns}
            bisect.insort(self._starts.setdefault(key, []), start)
        for c in self.columns:
            v = values.get(c)
            if v is not None:
                tile[c].append(v)
        return True

    def evict(self, lower: int) -> None:
        """Forget tiles before ``lower`` (the bound only moves forward)."""
        lower -= lower % self.tile
        if lower <= self.lower:
            return
        self.lower = lower
        for key in list(self._tiles):
            starts = self._starts[key]
            cut = bisect.bisect_left(starts, lower)
            for s in starts[:cut]:
                del self._tiles[key][s]
            del starts[:cut]
            if not starts:
                del self._tiles[key], self._starts[key]

    def exact_from(self) -> int:
        """The first boundary whose windows all lie at or after ``lower``: rolled up exactly from here on."""
        return self.lower + self.reach

    def latest_boundary(self, key: tuple, at: int) -> int | None:
        """The key's last boundary at or before ``at`` (epoch seconds) where a window changes: a tile end, or a tile
        end plus a window (its events leave); None when it has none in memory."""
        starts = self._starts.get(key)
        if not starts:
            return None
        best = None
        for shift in [0, *(int(w.total_seconds()) for w in self.plan.windows)]:
            i = bisect.bisect_right(starts, at - self.tile - shift)  # tiles with s + tile + shift <= at
            if i:
                b = starts[i - 1] + self.tile + shift
                best = b if best is None else max(best, b)
        return best

    def values_at(self, key: tuple, boundary: int) -> dict[str, Any]:
        """Every feature of ``key`` at ``boundary``: windows over the tiles ``boundary - window <= start <
        boundary``, as the batch engine's ``rollup`` computes them."""
        starts = self._starts.get(key, [])
        tiles = self._tiles.get(key, {})
        out: dict[str, Any] = {}
        for agg in self.plan.aggregations:
            for w in agg.windows:
                lo = bisect.bisect_left(starts, boundary - int(w.total_seconds()))
                hi = bisect.bisect_left(starts, boundary)
                values = [tiles[s][agg.column] for s in starts[lo:hi]]
                out[agg.feature_name(w)] = _window(agg.function, values)
        return out

    def add_tile(self, key: tuple, start: int, values: Mapping[str, list[Any]]) -> None:
        """Add a tile's non-null values per column (loading from the events table)."""
        if start < self.lower:
            return
        tiles = self._tiles.setdefault(key, {})
        if start not in tiles:
            tiles[start] = {c: [] for c in self.columns}
            bisect.insort(self._starts.setdefault(key, []), start)
        for c in self.columns:
            tiles[start][c].extend(v for v in values.get(c) or [] if v is not None)

    def entity_keys(self) -> Iterable[tuple]:
        return self._tiles.keys()


def _window(function: str, tiles: list[list[Any]]) -> Any:
    """One window's value from its tiles' values (in time order)."""
    n = sum(len(t) for t in tiles)
    if function == "count":
        return n
    if function == "count_distinct":
        return len({v for t in tiles for v in t})
    if n == 0:
        return None
    if function == "min":
        return min(float(v) for t in tiles for v in t)
    if function == "max":
        return max(float(v) for t in tiles for v in t)
    total = None
    for t in tiles:
        if t:
            total = (total or 0.0) + _tile_sum(t)
    assert total is not None
    return total if function == "sum" else total / n


def online_records(
    tiles: ViewTiles,
    keys: Iterable[tuple],
    *,
    features: list[str],
    at_us: int,
    ttl: dt.timedelta | None,
    horizon_us: int,
    clock_offset_ms: int,
) -> tuple[list[Record], list[tuple]]:
    """The store records of ``keys`` at ``at_us`` (µs), as ``materialize.latest_values`` writes them: the row at the
    key's last boundary at or before it, or a conditional delete when that is past the ttl at ``horizon_us``.
    Second: the keys whose value memory cannot give exactly (their last boundary is before ``exact_from``)."""
    cutoff_us = horizon_us - int(ttl.total_seconds() * 1_000_000) if ttl is not None else None
    at_s = at_us // 1_000_000
    records, unknown = [], []
    for key in keys:
        b = tiles.latest_boundary(key, at_s)
        if cutoff_us is not None and (b is None or b * 1_000_000 < cutoff_us):
            if tiles.exact_from() * 1_000_000 >= cutoff_us:  # a valid row may come from tiles before `lower`
                unknown.append(key)
            else:
                records.append(Record(encode_key(key), None, None, None, None, cutoff_us))
            continue
        if b is None or b < tiles.exact_from():
            unknown.append(key)
            continue
        b_us = b * 1_000_000
        values = tiles.values_at(key, b)
        payload = _dumps({f: values[f] for f in features if values[f] is not None})
        exp_ms = b_us // 1000 + int(ttl.total_seconds() * 1000) + clock_offset_ms if ttl is not None else None
        records.append(Record(encode_key(key), b_us, b_us, payload, exp_ms, cutoff_us))
    return records, unknown
