"""Definitions as the registry records them: a canonical JSON spec per entity, source, feature view, request feature
view and service."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from featurelake.config import format_duration
from featurelake.registry import KINDS, RegistryObject
from featurelake.repo.definitions import (
    DbtComputation,
    DbtModelSource,
    DeltaTableSource,
    Entity,
    FeatureService,
    FeatureView,
    PathSource,
    RequestFeatureView,
    Source,
    StreamSource,
    TransformComputation,
    WindowComputation,
    function_fingerprint,
    function_ref,
)
from featurelake.repo.loader import Repo


def _meta(obj: Entity | Source | FeatureView | RequestFeatureView | FeatureService) -> dict[str, Any]:
    return {"description": obj.description, "owner": obj.owner, "tags": dict(sorted(obj.tags.items()))}


def source_spec(src: Source) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": src.name, "kind": src.kind}
    if isinstance(src, DeltaTableSource):
        spec["table"] = src.table
    elif isinstance(src, DbtModelSource):
        spec.update(model=src.model, schema=src.schema_, table=src.table)
    elif isinstance(src, PathSource):
        spec.update(path=src.path, format=src.format)
    elif isinstance(src, StreamSource):
        spec.update(
            topic=src.topic,
            table=src.table,
            fields={name: str(dtype) for name, dtype in src.fields.items()},
            allowed_lateness=format_duration(src.allowed_lateness),
        )
    spec.update(
        timestamp_column=src.timestamp_column,
        created_timestamp_column=src.created_timestamp_column,
        date_partition_column=src.date_partition_column,
    )
    return {**spec, **_meta(src)}


def source_node(src: Source) -> str:
    if isinstance(src, DbtModelSource):
        return f"dbt_model:{src.model}"
    if isinstance(src, PathSource):
        return f"path:{src.path}"
    return f"table:{getattr(src, 'table', src.name)}"


def view_spec(repo: Repo, view: FeatureView) -> dict[str, Any]:
    comp = view.computation
    derivations: dict[str, dict[str, Any]] = {}
    comp_spec: dict[str, Any]
    if isinstance(comp, WindowComputation):
        tile = format_duration(comp.tile)
        comp_spec = {"kind": "window", "tile": tile}
        for agg in comp.aggregations:
            for w in agg.windows:
                derivations[agg.feature_name(w)] = {
                    "column": agg.column,
                    "function": agg.function,
                    "window": format_duration(w),
                    "tile": tile,
                }
    elif isinstance(comp, TransformComputation):
        params = json.loads(json.dumps(comp.params, sort_keys=True, default=str))
        comp_spec = {"kind": "transform", "function": function_ref(comp.function), "params": params}
        derivations = {f: {"function": comp_spec["function"], "params": params} for f in view.feature_names}
    elif isinstance(comp, DbtComputation):
        comp_spec = {"kind": "dbt"}
    else:
        comp_spec = {"kind": "source"}
    return {
        "version": view.version,
        "entities": list(view.entities),
        "join_keys": repo.join_keys(view),
        "source": source_spec(view.source),
        "computation": comp_spec,
        "features": [
            {
                "name": f.name,
                "dtype": f.dtype.value,
                "description": f.description,
                "derivation": derivations.get(f.name),
            }
            for f in view.features
        ],
        "ttl": format_duration(view.ttl),
        "online": view.online,
        "offline": view.offline,
        "batch_schedule": format_duration(view.batch_schedule),
        "validation_policy": view.validation_policy,
        "expected_freshness": format_duration(view.expected_freshness),
        "drift": view.drift.model_dump(),
        "offline_table": view.offline_table,
        "timestamp_field": view.timestamp_field,
        "created_timestamp_field": view.created_timestamp_field,
        "date_partition_field": view.date_partition_field,
        **_meta(view),
    }


def request_view_spec(repo: Repo, rv: RequestFeatureView) -> dict[str, Any]:
    return {
        "request": {k: t.value for k, t in rv.request.items()},
        "sources": [{"view": s.view, "features": list(s.features)} for s in repo.resolve(rv.sources)],
        "function": function_ref(rv.function),
        "code": function_fingerprint(rv.function),
        "features": [{"name": f.name, "dtype": f.dtype.value, "description": f.description} for f in rv.features],
        **_meta(rv),
    }


def definitions_fingerprint(objects: list[RegistryObject]) -> str:
    """A short hash of a set of definitions as the registry records them (equal definitions, equal hash)."""
    digest = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o.key):
        digest.update(f"{obj.kind}:{obj.name}:{obj.fingerprint}\n".encode())
    return digest.hexdigest()[:16]


def serialize(repo: Repo) -> list[RegistryObject]:
    """Every definition of ``repo`` as a registry object (spec, upstream nodes, origin)."""
    out = [
        RegistryObject("entity", e.name, {"join_keys": list(e.join_keys), **_meta(e)}, defined_at=repo.origin(e))
        for e in repo.entities.values()
    ]
    sources = {s.name: s for s in repo.sources.values()}
    sources.update({v.source.name: v.source for v in repo.views.values() if v.source.name not in sources})
    out += [
        RegistryObject("source", s.name, source_spec(s), defined_at=repo.origin(s), upstream=(source_node(s),))
        for s in sources.values()
    ]
    out += [
        RegistryObject(
            "feature_view",
            v.name,
            view_spec(repo, v),
            version=v.version,
            defined_at=repo.origin(v),
            upstream=(source_node(v.source),),
        )
        for v in repo.views.values()
    ]
    out += [
        RegistryObject(
            "request_view",
            rv.name,
            request_view_spec(repo, rv),
            defined_at=repo.origin(rv),
            upstream=tuple(dict.fromkeys(f"feature_view:{s.view}" for s in rv.sources)),
        )
        for rv in repo.request_views.values()
    ]
    for svc in repo.services.values():
        selections = [{"view": s.view, "features": list(s.features)} for s in repo.resolve(svc.features)]
        kind = {s["view"]: "request_view" if s["view"] in repo.request_views else "feature_view" for s in selections}
        out.append(
            RegistryObject(
                "feature_service",
                svc.name,
                {"features": selections, **_meta(svc)},
                defined_at=repo.origin(svc),
                upstream=tuple(dict.fromkeys(f"{kind[s['view']]}:{s['view']}" for s in selections)),
            )
        )
    return sorted(out, key=lambda o: (KINDS.index(o.kind), o.name))
