"""The read path: typed feature values for entity rows, from the online store."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurelake.errors import InputError
from featurelake.online.backends import open_store
from featurelake.online.encoding import decode_payload, encode_key
from featurelake.online.store import Entry, OnlineStore, StoreConfig

if TYPE_CHECKING:
    from featurelake.config import Settings
    from featurelake.repo import Repo
    from featurelake.repo.definitions import FeatureSelection, FeatureView


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


def _view_values(entry: Entry | None, view: FeatureView, features: tuple[str, ...], now_ms: int) -> ViewValues:
    if entry is None:
        return ViewValues(NOT_FOUND, None, decode_payload(None, view, features))
    if not entry.live(now_ms):
        return ViewValues(OUTSIDE_MAX_AGE, entry.ts, decode_payload(None, view, features))
    return ViewValues(PRESENT, entry.ts, decode_payload(entry.payload, view, features))


class OnlineClient:
    """Reads feature values for entity rows; keep one per process (it holds the store connection)."""

    def __init__(self, repo: Repo, store: OnlineStore):
        self.repo = repo
        self.store = store
        self._plans: dict[tuple, list[tuple[FeatureSelection, list[str]]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, repo: Repo) -> OnlineClient:
        return cls(repo, open_store(StoreConfig.from_settings(settings)))

    def _plan(self, service: str | None, features: Sequence[str] | None) -> list[tuple[FeatureSelection, list[str]]]:
        cache_key = (service, tuple(features or ()))
        if cache_key not in self._plans:
            selections = self.repo.selections_for(service, list(features) if features else None)
            self._plans[cache_key] = [(s, self.repo.join_keys(self.repo.view(s.view))) for s in selections]
        return self._plans[cache_key]

    def selections(
        self, service: str | None = None, features: Sequence[str] | None = None
    ) -> list[tuple[FeatureSelection, list[str]]]:
        """The (view, features) to read with the view's join keys, resolved from the repository (cached)."""
        return self._plan(service, features)

    def lookup(
        self,
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        service: str | None = None,
        features: Sequence[str] | None = None,
        now_ms: int | None = None,
    ) -> list[list[ViewValues]]:
        """Per selected view (in :meth:`selections` order), per entity row: status, timestamp and typed values."""
        plan = self._plan(service, features)
        requests = []
        for sel, keys in plan:
            encoded = []
            for i, row in enumerate(entity_rows):
                missing = [k for k in keys if row.get(k) is None]
                if missing:
                    raise InputError(f"entity row {i} has no value for join key(s) {', '.join(missing)} ({sel.view})")
                try:
                    encoded.append(encode_key([row[k] for k in keys]))
                except ValueError as exc:
                    raise InputError(f"entity row {i}: {exc}") from None
            requests.append((sel.view, encoded))
        now = int(time.time() * 1000) if now_ms is None else now_ms
        entries = self.store.read_entries(requests)
        return [
            [_view_values(entry, self.repo.view(sel.view), sel.features, now) for entry in view_entries]
            for (sel, _), view_entries in zip(plan, entries, strict=True)
        ]

    def get_online_features(
        self,
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        service: str | None = None,
        features: Sequence[str] | None = None,
        now_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """One dict per entity row: the row's values, then ``<view>__<feature>`` -> typed value or None."""
        plan = self._plan(service, features)
        out = [dict(row) for row in entity_rows]
        for (sel, _), per_row in zip(plan, self.lookup(entity_rows, service=service, features=features,
                                                        now_ms=now_ms), strict=True):  # fmt: skip
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
