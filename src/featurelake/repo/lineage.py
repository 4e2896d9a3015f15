"""Lineage: table -> dbt model (-> dbt model) -> feature view -> feature service -> training set."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from featurelake.registry import Edge, RegistryObject
from featurelake.repo.schema import DbtManifest


@dataclass(frozen=True)
class TrainingSetRef:
    name: str
    service: str | None
    created_at: dt.datetime | None
    views: tuple[str, ...]


def lineage_edges(
    objects: Iterable[RegistryObject],
    manifest: DbtManifest | None = None,
    training_sets: Iterable[TrainingSetRef] = (),
) -> list[Edge]:
    """Edges table -> dbt model (-> dbt model) -> feature view -> feature service -> training set."""
    edges: set[Edge] = set()
    objects = list(objects)
    for obj in objects:
        if obj.kind not in ("feature_view", "request_view", "feature_service"):
            continue
        node = f"{obj.kind}:{obj.name}"
        for up in obj.upstream:
            edges.add((up, node))
            if manifest is not None and up.startswith("dbt_model:"):
                edges |= manifest.lineage_of(up.removeprefix("dbt_model:"))[1]
    services = {o.name for o in objects if o.kind == "feature_service"}
    views = {o.name for o in objects if o.kind == "feature_view"}
    for ts in training_sets:
        if ts.service and ts.service in services:
            edges.add((f"feature_service:{ts.service}", f"training_set:{ts.name}"))
        elif not ts.service:
            edges |= {(f"feature_view:{v}", f"training_set:{ts.name}") for v in ts.views if v in views}
    return sorted(edges)


def upstream_of(node: str, edges: Iterable[Edge]) -> list[str]:
    """Every node ``node`` is built from, nearest first."""
    return _walk(node, [(b, a) for a, b in edges])


def downstream_of(node: str, edges: Iterable[Edge]) -> list[str]:
    """Every node built from ``node``, nearest first."""
    return _walk(node, list(edges))


def _walk(start: str, edges: list[Edge]) -> list[str]:
    nexts: dict[str, list[str]] = {}
    for a, b in edges:
        nexts.setdefault(a, []).append(b)
    seen, frontier = [start], [start]
    while frontier:
        frontier = [n for f in frontier for n in sorted(nexts.get(f, [])) if n not in seen]
        frontier = list(dict.fromkeys(frontier))
        seen += frontier
    return seen[1:]
