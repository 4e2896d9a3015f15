"""Versions online: each view version lives in its own namespace (``<view>.v<version>``); a serving pointer per view
says which version a request without a pin gets (the defined version until the first promote). ``promote`` switches
it with one record write (atomic in every store) after that version was materialized and passed the consistency
check since; promoting back works the same way, as long as the older namespace is still in the store. ``retire``
removes a namespace that is neither served nor pinned by a feature service. ``featurelake apply`` notes the registry
version it wrote and its definitions' fingerprint (:func:`record_registry`), so a server tells which it serves."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelake.errors import InputError
from featurelake.online.store import OnlineStore, Watermark
from featurelake.repo.definitions import online_namespace

if TYPE_CHECKING:
    from featurelake.repo import Repo

CHECKED = "checked:"  # + namespace: the last passing consistency check (":" never occurs in a namespace)
SERVING = "serving:"  # + view: the version served to requests without a pin
REGISTRY = "registry"  # the last applied registry version and its definitions' fingerprint


@dataclass(frozen=True)
class Promotion:
    view: str
    version: int
    previous: int | None


def record_check(store: OnlineStore, namespace: str, watermark: Watermark, sampled: int) -> None:
    """Note that ``namespace`` as materialized at ``watermark`` matched the offline values."""
    doc = {"written_at_ms": watermark.written_at_ms, "checked_ms": int(time.time() * 1000), "sampled": sampled}
    store.set_doc(CHECKED + namespace, json.dumps(doc))


def served_version(store: OnlineStore, view: str) -> int | None:
    """The promoted version of ``view``, None before any promote."""
    raw = store.get_doc(SERVING + view)
    return int(json.loads(raw)["version"]) if raw else None


def promote(store: OnlineStore, view: str, version: int) -> Promotion:
    """Serve ``view`` at ``version`` from now on; refused unless that version's latest materialization passed
    ``featurelake online check``."""
    namespace = online_namespace(view, version)
    watermark = store.get_watermark(namespace)
    if watermark is None:
        raise InputError(
            f"{view} v{version} is not in {store.config.identity}: materialize it first (with version={version} "
            "defined)"
        )
    checked = store.get_doc(CHECKED + namespace)
    if not checked or json.loads(checked)["written_at_ms"] != watermark.written_at_ms:
        raise InputError(
            f"{view} v{version} has not passed the consistency check since it was last materialized: run "
            f"`featurelake online check --view {view}` with version {version} defined"
        )
    previous = served_version(store, view)
    doc = {"version": version, "previous": previous, "promoted_ms": int(time.time() * 1000)}
    store.set_doc(SERVING + view, json.dumps(doc))
    return Promotion(view, version, previous)


@dataclass(frozen=True)
class Retirement:
    view: str
    version: int
    removed: int | None  # values removed (None: the store cannot tell)


def retire(store: OnlineStore, repo: Repo, view: str, version: int) -> Retirement:
    """Remove ``view`` at ``version`` from the store: its check record and watermark first (so it cannot be promoted
    any more, and a crash midway leaves a namespace that retiring again removes), then its values. Refused for the
    version served (promoted, or defined when never promoted) and for a version a feature service of ``repo`` pins."""
    defined = repo.view(view).version  # an unknown view: one line naming the known ones
    promoted = served_version(store, view)
    if version == (defined if promoted is None else promoted):
        how = "defined and never promoted" if promoted is None else "promoted"
        raise InputError(f"{view} v{version} is the version served ({how}): promote another version first")
    pins = sorted(
        name for name, s in repo.services.items() if any(f.view == view and f.version == version for f in s.features)
    )
    if pins:
        raise InputError(f"{view} v{version} is pinned by feature service(s) {', '.join(pins)}: unpin it first")
    namespace = online_namespace(view, version)
    materialized = store.get_watermark(namespace) is not None
    store.delete_doc(CHECKED + namespace)
    store.delete_doc(namespace)
    removed = store.drop_namespace(namespace)
    if not materialized and removed == 0:
        raise InputError(f"{view} v{version} is not in {store.config.identity}")
    return Retirement(view, version, removed)


def record_registry(store: OnlineStore, version: int, fingerprint: str) -> None:
    """Note that registry ``version`` (a Delta version of monitoring.registry) holds definitions ``fingerprint``."""
    store.set_doc(REGISTRY, json.dumps({"version": version, "fingerprint": fingerprint}))


def applied_registry(store: OnlineStore) -> tuple[int, str] | None:
    """(version, fingerprint) of the last registry applied, None before any apply noted it."""
    raw = store.get_doc(REGISTRY)
    if not raw:
        return None
    doc = json.loads(raw)
    return int(doc["version"]), str(doc["fingerprint"])
