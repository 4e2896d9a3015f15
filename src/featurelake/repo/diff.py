"""What applying the feature repository over the applied registry changes, and which changes break a view.

A view's existing version is a contract for the tables and training sets built from it: a breaking change
(a feature removed or retyped or derived differently, other join keys or entities, another ttl, another source
relation or timestamp) is refused unless ``version`` is raised; a raised version writes a new offline table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from featurelake.registry import KINDS, RegistryObject


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: str  # added | changed | removed
    breaking: bool = False
    refused: bool = False
    details: tuple[str, ...] = ()

    def describe(self) -> str:
        what = f"{self.kind.replace('_', ' ')} {self.name!r}"
        return f"{what}: {'; '.join(self.details)}" if self.details else what


def _fmt(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list) else str(value)


def _metadata_changes(old: dict[str, Any], new: dict[str, Any], keys: Iterable[str]) -> list[str]:
    out = []
    for key in keys:
        if old.get(key) != new.get(key):
            if key == "description":
                out.append("description changed")
            else:
                out.append(f"{key}: {_fmt(old.get(key))} -> {_fmt(new.get(key))}")
    return out


_SOURCE_SEMANTIC = (
    "kind",
    "table",
    "model",
    "schema",
    "path",
    "format",
    "timestamp_column",
    "created_timestamp_column",
)
_SOURCE_META = ("name", "date_partition_column", "description", "owner", "tags")
_VIEW_META = (
    "online",
    "offline",
    "batch_schedule",
    "validation_policy",
    "expected_freshness",
    "drift",
    "description",
    "owner",
    "tags",
)


def _view_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(breaking, non-breaking) differences between two specs of one feature view."""
    breaking, other = [], []
    old_f = {f["name"]: f for f in old.get("features", [])}
    new_f = {f["name"]: f for f in new.get("features", [])}
    if removed := [f for f in old_f if f not in new_f]:
        breaking.append(f"removes feature(s) {', '.join(removed)}")
    if added := [f for f in new_f if f not in old_f]:
        other.append(f"adds feature(s) {', '.join(added)}")
    for name in (f for f in new_f if f in old_f):
        o, n = old_f[name], new_f[name]
        if o["dtype"] != n["dtype"]:
            breaking.append(f"feature {name} type {o['dtype']} -> {n['dtype']}")
        if o.get("derivation") != n.get("derivation"):
            breaking.append(f"feature {name} derivation {_fmt(o.get('derivation'))} -> {_fmt(n.get('derivation'))}")
        if o.get("description") != n.get("description"):
            other.append(f"feature {name} description changed")
    for key, label in (("entities", "entities"), ("join_keys", "join keys"), ("ttl", "ttl")):
        if old.get(key) != new.get(key):
            breaking.append(f"{label} {_fmt(old.get(key))} -> {_fmt(new.get(key))}")
    if old.get("computation", {}).get("kind") != new.get("computation", {}).get("kind"):
        breaking.append(f"computed by {old.get('computation', {}).get('kind')} -> {new['computation']['kind']}")
    old_s, new_s = old.get("source", {}), new.get("source", {})
    breaking += [f"source {c}" for c in _metadata_changes(old_s, new_s, _SOURCE_SEMANTIC)]
    other += [f"source {c}" for c in _metadata_changes(old_s, new_s, _SOURCE_META)]
    other += _metadata_changes(old, new, _VIEW_META)
    return breaking, other


def diff_registry(applied: Iterable[RegistryObject], current: Iterable[RegistryObject]) -> list[Change]:
    """What applying ``current`` over ``applied`` changes; breaking changes to a view's version are refused."""
    old = {o.key: o for o in applied}
    new = {o.key: o for o in current}
    changes = []
    for key, obj in new.items():
        if key not in old:
            detail = (f"version {obj.version}",) if obj.version is not None else ()
            changes.append(Change(obj.kind, obj.name, "added", details=detail))
            continue
        prev = old[key]
        if prev.fingerprint == obj.fingerprint:
            continue
        changes.append(_change(prev, obj))
    for key, prev in old.items():
        if key not in new:
            changes.append(Change(prev.kind, prev.name, "removed", breaking=prev.kind != "source"))
    order = {"added": 0, "changed": 1, "removed": 2}
    return sorted(changes, key=lambda c: (KINDS.index(c.kind), order[c.action], c.name))


def _change(prev: RegistryObject, obj: RegistryObject) -> Change:
    o, n = prev.spec, obj.spec
    if obj.kind == "feature_view":
        breaking, other = _view_changes(o, n)
        old_v, new_v = prev.version or 1, obj.version or 1
        if new_v < old_v:
            return Change(
                obj.kind,
                obj.name,
                "changed",
                True,
                True,
                (f"version went down {old_v} -> {new_v}: versions only go up",),
            )
        if new_v > old_v:
            return Change(obj.kind, obj.name, "changed", bool(breaking), False, (f"new version {old_v} -> {new_v}",))
        if breaking:
            refusal = f"breaking change to version {new_v}: raise `version` to {new_v + 1} to apply it"
            return Change(obj.kind, obj.name, "changed", True, True, (*breaking, refusal, *other))
        return Change(obj.kind, obj.name, "changed", False, False, tuple(other))
    if obj.kind == "entity":
        breaking = (
            [f"join keys {_fmt(o['join_keys'])} -> {_fmt(n['join_keys'])}"] if o["join_keys"] != n["join_keys"] else []
        )
        other = _metadata_changes(o, n, ("description", "owner", "tags"))
        return Change(obj.kind, obj.name, "changed", bool(breaking), False, (*breaking, *other))
    if obj.kind == "source":
        breaking = _metadata_changes(o, n, _SOURCE_SEMANTIC)
        other = _metadata_changes(o, n, _SOURCE_META)
        return Change(obj.kind, obj.name, "changed", bool(breaking), False, (*breaking, *other))
    if obj.kind == "request_view":
        return _request_view_change(prev, obj)
    old_sel = {(s["view"], f) for s in o["features"] for f in s["features"]}
    new_sel = {(s["view"], f) for s in n["features"] for f in s["features"]}
    details = []
    if removed := sorted(old_sel - new_sel):
        details.append("removes " + ", ".join(f"{v}:{f}" for v, f in removed))
    if added := sorted(new_sel - old_sel):
        details.append("adds " + ", ".join(f"{v}:{f}" for v, f in added))
    if not details and o["features"] != n["features"]:
        details.append("feature order changed")
    details += _metadata_changes(o, n, ("description", "owner", "tags"))
    return Change(obj.kind, obj.name, "changed", bool(removed), False, tuple(details))


def _request_view_change(prev: RegistryObject, obj: RegistryObject) -> Change:
    """A request feature view has no versions: a feature removed or retyped, or other inputs, break its consumers
    (reported, not refused: models pin training sets, whose manifests record the function's code)."""
    o, n = prev.spec, obj.spec
    old_types = {f["name"]: f["dtype"] for f in o["features"]}
    new_types = {f["name"]: f["dtype"] for f in n["features"]}
    breaking = [f"removes {f}" for f in old_types if f not in new_types]
    breaking += [f"{f}: {t} -> {new_types[f]}" for f, t in old_types.items() if f in new_types and new_types[f] != t]
    breaking += [f"{k} {_fmt(o[k])} -> {_fmt(n[k])}" for k in ("request", "sources") if o[k] != n[k]]
    other = [f"adds {f}" for f in new_types if f not in old_types]
    if o["code"] != n["code"]:
        other.append(f"function code changed ({o['code']} -> {n['code']})")
    other += _metadata_changes(o, n, ("description", "owner", "tags"))
    return Change(obj.kind, obj.name, "changed", bool(breaking), False, (*breaking, *other))
