"""The applied registry: plan (diff the feature repository against what was applied) and apply (record it).

The registry is the Delta table ``monitoring.registry``, one row per entity, source, feature view and feature
service with its canonical JSON spec. ``apply`` overwrites it in one commit, so each apply is one Delta version:
the registry version is that Delta version, and ``VERSION AS OF`` gives any earlier registry. Lineage edges
(table -> dbt model -> feature view -> feature service -> training set) are written next to it, to
``monitoring.lineage``, stamped with the registry version they belong to.

A view's existing version is a contract for the tables and training sets built from it: a breaking change
(a feature removed or retyped or derived differently, other join keys or entities, another ttl, another source
relation or timestamp) is refused unless ``version`` is raised; a raised version writes a new offline table.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from featurelake.definitions import (
    DbtComputation,
    DbtModelSource,
    DeltaTableSource,
    Entity,
    FeatureService,
    FeatureView,
    PathSource,
    Source,
    TransformComputation,
    WindowComputation,
    format_duration,
)
from featurelake.errors import FeaturelakeError
from featurelake.repo import DefinitionError, Repo
from featurelake.schema_check import DbtManifest, SchemaReport, check_dbt, check_schemas
from featurelake.tables import check_table_name, latest_commit, overwrite_where

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REGISTRY_TABLE = "monitoring.registry"
LINEAGE_TABLE = "monitoring.lineage"
MANIFESTS_TABLE = "training.manifests"
KINDS = ("entity", "source", "feature_view", "feature_service")
NODE_KINDS = ("table", "path", "dbt_model", "feature_view", "feature_service", "training_set")

Edge = tuple[str, str]  # (from node id, to node id); a node id is "<kind>:<name>"


# ---------------------------------------------------------------------------------------------- serialization


@dataclass(frozen=True)
class RegistryObject:
    """One definition as the registry records it."""

    kind: str
    name: str
    spec: dict[str, Any]
    version: int | None = None
    defined_at: str = ""
    upstream: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    @property
    def spec_json(self) -> str:
        return json.dumps(self.spec, sort_keys=True, separators=(",", ":"), default=str)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.spec_json.encode()).hexdigest()[:16]


def _meta(obj: Entity | Source | FeatureView | FeatureService) -> dict[str, Any]:
    return {"description": obj.description, "owner": obj.owner, "tags": dict(sorted(obj.tags.items()))}


def source_spec(src: Source) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": src.name, "kind": src.kind}
    if isinstance(src, DeltaTableSource):
        spec["table"] = src.table
    elif isinstance(src, DbtModelSource):
        spec.update(model=src.model, schema=src.schema_, table=src.table)
    elif isinstance(src, PathSource):
        spec.update(path=src.path, format=src.format)
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


def _function_ref(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


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
        comp_spec = {"kind": "transform", "function": _function_ref(comp.function), "params": params}
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
    for svc in repo.services.values():
        selections = [{"view": s.view, "features": list(s.features)} for s in repo.resolve(svc.features)]
        out.append(
            RegistryObject(
                "feature_service",
                svc.name,
                {"features": selections, **_meta(svc)},
                defined_at=repo.origin(svc),
                upstream=tuple(dict.fromkeys(f"feature_view:{s['view']}" for s in selections)),
            )
        )
    return sorted(out, key=lambda o: (KINDS.index(o.kind), o.name))


# ---------------------------------------------------------------------------------------------------- diff


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


# ------------------------------------------------------------------------------------------------ the tables


@dataclass(frozen=True)
class AppliedRegistry:
    version: int | None  # the Delta version of monitoring.registry; None before the first apply
    objects: dict[tuple[str, str], RegistryObject]
    applied_at: dt.datetime | None = None

    def get(self, kind: str, name: str) -> RegistryObject | None:
        return self.objects.get((kind, name))


def registry_version(spark: SparkSession) -> int | None:
    """The current registry version (the Delta version of ``monitoring.registry``), None before any apply."""
    if not spark.catalog.tableExists(REGISTRY_TABLE):
        return None
    return latest_commit(spark, REGISTRY_TABLE).version


def load_applied(spark: SparkSession, version: int | None = None) -> AppliedRegistry:
    """The registry as applied (now, or as of an earlier registry ``version`` by Delta time travel)."""
    current = registry_version(spark)
    if current is None:
        if version is not None:
            raise FeaturelakeError(f"no registry version {version}: nothing has been applied yet")
        return AppliedRegistry(None, {})
    if version is not None and not 0 <= version <= current:
        raise FeaturelakeError(f"no registry version {version} (versions 0..{current})")
    at = current if version is None else int(version)
    rows = spark.sql(f"SELECT * FROM monitoring.registry VERSION AS OF {at}").collect()  # one row per definition
    objects = {
        (r["kind"], r["name"]): RegistryObject(
            r["kind"], r["name"], json.loads(r["spec"]), r["version"], r["defined_at"] or "", tuple(r["upstream"] or ())
        )
        for r in rows
    }
    applied_at = max((r["applied_at"] for r in rows), default=None)
    return AppliedRegistry(at, objects, applied_at)


@dataclass(frozen=True)
class TrainingSetRef:
    name: str
    service: str | None
    created_at: dt.datetime | None
    views: tuple[str, ...]


def read_training_sets(spark: SparkSession, table: str = MANIFESTS_TABLE) -> list[TrainingSetRef]:
    """The latest manifest of each training set in ``training.manifests`` (empty when the table is absent)."""
    quoted = check_table_name(table)
    if not spark.catalog.tableExists(table):
        return []
    rows = spark.sql(
        "SELECT name, max_by(service, created_at) AS service, max(created_at) AS created_at, "
        f"max_by(manifest_json, created_at) AS manifest_json FROM {quoted} GROUP BY name ORDER BY name"
    ).collect()  # one row per training set
    out = []
    for r in rows:
        try:
            views = tuple(v["name"] for v in json.loads(r["manifest_json"] or "{}").get("views", []) if v.get("name"))
        except (ValueError, AttributeError, TypeError):
            views = ()
        out.append(TrainingSetRef(r["name"], r["service"] or None, r["created_at"], views))
    return out


def lineage_edges(
    objects: Iterable[RegistryObject],
    manifest: DbtManifest | None = None,
    training_sets: Iterable[TrainingSetRef] = (),
) -> list[Edge]:
    """Edges table -> dbt model (-> dbt model) -> feature view -> feature service -> training set."""
    edges: set[Edge] = set()
    objects = list(objects)
    for obj in objects:
        if obj.kind not in ("feature_view", "feature_service"):
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


# ------------------------------------------------------------------------------------------------ plan / apply


@dataclass
class Plan:
    base_version: int | None
    objects: list[RegistryObject]
    changes: list[Change]
    report: SchemaReport = field(default_factory=SchemaReport)

    @property
    def refused(self) -> list[Change]:
        return [c for c in self.changes if c.refused]

    @property
    def problems(self) -> list[str]:
        return self.report.problems + [c.describe() for c in self.refused]

    @property
    def ok(self) -> bool:
        return not self.problems


def make_plan(
    spark: SparkSession, repo: Repo, manifest: DbtManifest | None = None, *, check_catalog: bool = True
) -> Plan:
    """Diff ``repo`` against the applied registry, with its dbt and (optionally) catalog schema checks."""
    report = check_dbt(repo, manifest)
    if check_catalog:
        report.extend(check_schemas(spark, repo))
    applied = load_applied(spark)
    objects = serialize(repo)
    return Plan(applied.version, objects, diff_registry(applied.objects.values(), objects), report)


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    version: int | None  # the registry version now in force
    written: bool  # False when nothing had changed
    edges: list[Edge]


def _registry_frame(spark: SparkSession, objects: list[RegistryObject], applied_at: dt.datetime, repo_root: str):
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("kind", T.StringType(), False),
            T.StructField("name", T.StringType(), False),
            T.StructField("version", T.IntegerType()),
            T.StructField("fingerprint", T.StringType(), False),
            T.StructField("spec", T.StringType(), False),
            T.StructField("upstream", T.ArrayType(T.StringType(), False)),
            T.StructField("description", T.StringType()),
            T.StructField("owner", T.StringType()),
            T.StructField("defined_at", T.StringType()),
            T.StructField("repo", T.StringType()),
            T.StructField("applied_at", T.TimestampType(), False),
            T.StructField("applied_by", T.StringType()),
        ]
    )
    user = getpass.getuser()
    rows = [
        (
            o.kind,
            o.name,
            o.version,
            o.fingerprint,
            o.spec_json,
            list(o.upstream),
            o.spec.get("description"),
            o.spec.get("owner"),
            o.defined_at,
            repo_root,
            applied_at,
            user,
        )
        for o in objects
    ]
    return spark.createDataFrame(rows, schema)


def _lineage_frame(spark: SparkSession, edges: list[Edge], version: int | None, recorded_at: dt.datetime):
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("src_kind", T.StringType(), False),
            T.StructField("src_name", T.StringType(), False),
            T.StructField("dst_kind", T.StringType(), False),
            T.StructField("dst_name", T.StringType(), False),
            T.StructField("registry_version", T.LongType()),
            T.StructField("recorded_at", T.TimestampType(), False),
        ]
    )
    rows = [(*a.split(":", 1), *b.split(":", 1), version, recorded_at) for a, b in edges]
    return spark.createDataFrame(rows, schema)


def read_lineage(spark: SparkSession) -> list[Edge]:
    """The lineage edges recorded by the last apply (empty before the first)."""
    if not spark.catalog.tableExists(LINEAGE_TABLE):
        return []
    rows = spark.table(LINEAGE_TABLE).select("src_kind", "src_name", "dst_kind", "dst_name").collect()
    return sorted((f"{r[0]}:{r[1]}", f"{r[2]}:{r[3]}") for r in rows)


def apply(
    spark: SparkSession,
    repo: Repo,
    manifest: DbtManifest | None = None,
    *,
    check_catalog: bool = True,
    manifests_table: str = MANIFESTS_TABLE,
) -> ApplyResult:
    """Plan, refuse on any problem, then record the registry (one Delta version) and its lineage edges."""
    plan = make_plan(spark, repo, manifest, check_catalog=check_catalog)
    if plan.problems:
        raise DefinitionError(plan.problems)
    edges = lineage_edges(plan.objects, manifest, read_training_sets(spark, manifests_table))
    now = dt.datetime.now(dt.UTC)
    version, written = plan.base_version, False
    if plan.changes or plan.base_version is None:
        if registry_version(spark) != plan.base_version:
            raise FeaturelakeError("the registry changed while planning (another apply?): plan and apply again")
        df = _registry_frame(spark, plan.objects, now, str(repo.root))
        version, written = overwrite_where(df, REGISTRY_TABLE, None).version, True
    if written or read_lineage(spark) != edges:
        overwrite_where(_lineage_frame(spark, edges, version, now), LINEAGE_TABLE, None)
    return ApplyResult(plan, version, written, edges)


# ------------------------------------------------------------------------------------------------ table status


@dataclass(frozen=True)
class TableStatus:
    table: str
    version: int | None  # latest Delta version (None for a view or a non-Delta table)
    last_write: dt.datetime | None
    latest_event: dt.datetime | None  # max of the view's timestamp field: how fresh the features are


def table_status(spark: SparkSession, view: FeatureView) -> TableStatus | None:
    """The offline table of ``view``, when it has been computed: latest Delta version and freshness."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    table = view.offline_table
    if not table or not spark.catalog.tableExists(table):
        return None
    try:
        commit = latest_commit(spark, table)
        version, last_write = commit.version, commit.timestamp
    except AnalysisException:  # a SQL view (e.g. a dbt staging model) has no Delta history
        version, last_write = None, None
    row = spark.table(table).agg(F.max(F.col(f"`{view.timestamp_field}`"))).first()
    latest = row[0] if row is not None else None
    return TableStatus(table, version, last_write, latest)
