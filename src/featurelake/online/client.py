"""The read path: typed feature values for entity rows, from the online store, and request feature views computed
on them."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurelake.errors import InputError
from featurelake.online.backends import open_store
from featurelake.online.encoding import decode_typed, encode_key
from featurelake.online.store import Entry, OnlineStore, StoreConfig
from featurelake.online.versions import served_version
from featurelake.repo.definitions import RequestFeatureError, ValueType, online_namespace, typed_value

if TYPE_CHECKING:
    from featurelake.config import Settings
    from featurelake.repo import Repo
    from featurelake.repo.definitions import FeatureSelection
    from featurelake.repo.loader import FeatureReads


def output_name(view: str, feature: str) -> str:
    """Column name of a feature in the online result: ``<view>__<feature>`` (views may share feature names)."""
    return f"{view}__{feature}"


PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE = "PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"


@dataclass(frozen=True)
class ViewValues:
    """One view's answer for one entity row: status, event timestamp (microseconds, None when not found) and the
    selected features' typed values (all None unless PRESENT: a value past its ttl is not served)."""

    status: str
    ts_us: int | None
    values: dict[str, Any]


def _request_values(rows: Sequence[Mapping[str, Any]], fields: Mapping[str, ValueType]) -> list[dict[str, Any]]:
    """Each row's request fields, typed as declared; InputError names a missing or mistyped one."""
    out = []
    for i, row in enumerate(rows):
        values = {}
        for name, dtype in fields.items():
            if name not in row:
                raise InputError(f"entity row {i} has no request field {name!r} ({dtype.value})")
            try:
                values[name] = typed_value(row[name], dtype, f"request field {name!r} of entity row {i}")
            except RequestFeatureError as exc:
                raise InputError(str(exc)) from None
        out.append(values)
    return out


def _view_values(
    entry: Entry | None, types: Mapping[str, ValueType], features: tuple[str, ...], now_ms: int
) -> ViewValues:
    if entry is None:
        return ViewValues(NOT_FOUND, None, decode_typed(None, types, features))
    if not entry.live(now_ms):
        return ViewValues(OUTSIDE_MAX_AGE, entry.ts, decode_typed(None, types, features))
    return ViewValues(PRESENT, entry.ts, decode_typed(entry.payload, types, features))


class OnlineClient:
    """Reads feature values for entity rows, computing request feature views; keep one per process (it holds the
    store connection)."""

    def __init__(self, repo: Repo, store: OnlineStore, pointer_ttl_s: float = 1.0):
        self.repo = repo
        self.store = store
        self.pointer_ttl_s = pointer_ttl_s  # how long a promoted version is taken as current before re-reading it
        self._plans: dict[tuple, FeatureReads] = {}
        self._serving: dict[str, tuple[int, float]] = {}  # view -> (version, monotonic time read)
        self._types: dict[str, dict[str, ValueType]] = {}  # namespace of another version -> its feature types

    @classmethod
    def from_settings(cls, settings: Settings, repo: Repo) -> OnlineClient:
        return cls(repo, open_store(StoreConfig.from_settings(settings)))

    def plan(self, service: str | None = None, features: Sequence[str] | None = None) -> FeatureReads:
        """What a request reads and computes, resolved from the repository (cached per request shape)."""
        cache_key = (service, tuple(features or ()))
        if cache_key not in self._plans:
            self._plans[cache_key] = self.repo.reads_for(service, list(features) if features else None)
        return self._plans[cache_key]

    def version(self, sel: FeatureSelection) -> int:
        """The version a selection reads: its pin, else the promoted one (re-read after ``pointer_ttl_s``), else
        the defined one."""
        if sel.version is not None:
            return sel.version
        cached = self._serving.get(sel.view)
        if cached is None or time.monotonic() - cached[1] > self.pointer_ttl_s:
            served = served_version(self.store, sel.view)
            cached = (self.repo.view(sel.view).version if served is None else served, time.monotonic())
            self._serving[sel.view] = cached
        return cached[0]

    def _feature_types(self, sel: FeatureSelection, version: int, features: tuple[str, ...]) -> dict[str, ValueType]:
        """The defined view's types, or another version's from its watermark (what it was materialized with)."""
        view = self.repo.view(sel.view)
        if version == view.version:
            return {f.name: f.dtype for f in view.features}
        namespace = online_namespace(sel.view, version)
        if namespace not in self._types:
            watermark = self.store.get_watermark(namespace)
            if watermark is None:
                raise InputError(f"feature view {sel.view!r} v{version} is not in the online store")
            self._types[namespace] = {name: ValueType(t) for name, t in watermark.features.items()}
        types = self._types[namespace]
        missing = [f for f in features if f not in types]
        if missing:
            raise InputError(f"feature view {sel.view!r} v{version} has no feature(s) {', '.join(missing)}")
        return types

    def lookup(
        self,
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        service: str | None = None,
        features: Sequence[str] | None = None,
        now_ms: int | None = None,
    ) -> list[list[ViewValues]]:
        """Per selected view (in ``plan(...).selections`` order), per entity row: status, timestamp and typed values.

        Rows carry the join keys and the request fields of the request feature views selected; a request feature
        view's values are PRESENT (computed) with no timestamp.
        """
        plan = self.plan(service, features)
        fields = _request_values(entity_rows, plan.request_fields)
        requests, types, wanted = [], [], []
        for sel in plan.reads:
            keys = plan.join_keys[sel.view]
            encoded = []
            for i, row in enumerate(entity_rows):
                missing = [k for k in keys if row.get(k) is None]
                if missing:
                    raise InputError(f"entity row {i} has no value for join key(s) {', '.join(missing)} ({sel.view})")
                try:
                    encoded.append(encode_key([row[k] for k in keys]))
                except ValueError as exc:
                    raise InputError(f"entity row {i}: {exc}") from None
            version = self.version(sel)
            wanted.append(plan.features_read(sel))
            requests.append((online_namespace(sel.view, version), encoded))
            types.append(self._feature_types(sel, version, wanted[-1]))
        now = int(time.time() * 1000) if now_ms is None else now_ms
        entries = self.store.read_entries(requests) if requests else []
        read = {
            sel.view: [_view_values(entry, view_types, names, now) for entry in view_entries]
            for sel, view_types, names, view_entries in zip(plan.reads, types, wanted, entries, strict=True)
        }
        out = []
        for sel in plan.selections:
            if sel.view in read:
                out.append(
                    [ViewValues(v.status, v.ts_us, {f: v.values[f] for f in sel.features}) for v in read[sel.view]]
                )
                continue
            rv = self.repo.request_views[sel.view]
            computed = []
            for i, row_fields in enumerate(fields):
                inputs = {name: row_fields[name] for name in rv.request}
                for src in plan.sources[rv.name]:
                    inputs.update({f: read[src.view][i].values[f] for f in src.features})
                values = rv.compute(inputs)
                computed.append(ViewValues(PRESENT, None, {f: values[f] for f in sel.features}))
            out.append(computed)
        return out

    def get_online_features(
        self,
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        service: str | None = None,
        features: Sequence[str] | None = None,
        now_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """One dict per entity row: the row's values, then ``<view>__<feature>`` -> typed value or None."""
        plan = self.plan(service, features)
        out = [dict(row) for row in entity_rows]
        per_view = self.lookup(entity_rows, service=service, features=features, now_ms=now_ms)
        for sel, per_row in zip(plan.selections, per_view, strict=True):
            for result, found in zip(out, per_row, strict=True):
                result.update({output_name(sel.view, f): v for f, v in found.values.items()})
        return out

    def close(self) -> None:
        self.store.close()


def get_online_features(
    entity_rows: Sequence[Mapping[str, Any]],
    *,
    service: str | None = None,
    features: Sequence[str] | None = None,
    settings: Settings | None = None,
    repo: Repo | None = None,
) -> list[dict[str, Any]]:
    """Typed feature values (None for missing keys) for ``entity_rows``, by service or ``view:feature`` list.

    One-shot convenience; a serving process should keep an :class:`OnlineClient`.
    """
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo

    settings = settings or get_settings()
    repo = repo or feature_repo(settings)
    client = OnlineClient.from_settings(settings, repo)
    try:
        return client.get_online_features(entity_rows, service=service, features=features)
    finally:
        client.close()
