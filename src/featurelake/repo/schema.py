"""Definitions checked against the data they describe: the catalog's table schemas and dbt's manifest.

Both checks return a :class:`SchemaReport`: ``problems`` (the definitions and the data disagree: plan and
apply refuse) and ``notes`` (nothing to check yet: a table not computed yet, no dbt manifest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurelake.errors import FeaturelakeError
from featurelake.repo.definitions import (
    OFFLINE_TIMESTAMP,
    DbtModelSource,
    DeltaTableSource,
    FeatureView,
    PathSource,
    StreamSource,
    TransformComputation,
    ValueType,
    WindowComputation,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType

    from featurelake.repo import Repo

TIME_TYPES = {"timestamp", "timestamp_ntz", "date"}
NUMERIC_TYPES = {"tinyint", "smallint", "int", "bigint", "float", "double"}
# dbt `data_type` spellings that mean the same Spark type
_TYPE_ALIASES = {
    "integer": "int",
    "long": "bigint",
    "short": "smallint",
    "byte": "tinyint",
    "real": "float",
    "bool": "boolean",
    "varchar": "string",
    "text": "string",
    "timestamp_ltz": "timestamp",
}


@dataclass
class SchemaReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, other: SchemaReport) -> SchemaReport:
        self.problems.extend(other.problems)
        self.notes.extend(other.notes)
        return self


def normalize_type(spelling: str) -> str:
    """A Spark/dbt type spelling in lower case with the common aliases folded (``integer`` -> ``int``)."""
    t = spelling.strip().lower()
    if t.startswith("decimal") or t.startswith("numeric"):
        return "decimal"
    return _TYPE_ALIASES.get(t, t)


@dataclass(frozen=True)
class ColumnUse:
    """A column a view reads from its source, the type it needs, and why."""

    column: str
    role: str  # "timestamp", "created timestamp", "date partition", "join key", "feature", "aggregation"
    dtype: ValueType | None = None  # exact feature type, when the source holds the feature
    numeric: bool = False


def source_holds_features(view: FeatureView) -> bool:
    """True when the view's features are columns of its source (dbt-computed or read as they are)."""
    return not isinstance(view.computation, TransformComputation | WindowComputation)


def columns_used(repo: Repo, view: FeatureView) -> list[ColumnUse]:
    """Every source column ``view`` relies on."""
    src = view.source
    uses = [ColumnUse(src.timestamp_column, "timestamp")]
    if src.created_timestamp_column:
        uses.append(ColumnUse(src.created_timestamp_column, "created timestamp"))
    if src.date_partition_column:
        uses.append(ColumnUse(src.date_partition_column, "date partition"))
    if not isinstance(view.computation, TransformComputation):  # a transform may derive its keys
        uses += [
            ColumnUse(k, "join key") for e in view.entities if e in repo.entities for k in repo.entities[e].join_keys
        ]
    if source_holds_features(view):
        uses += [ColumnUse(f.name, "feature", dtype=f.dtype) for f in view.features]
    elif isinstance(view.computation, WindowComputation):
        for agg in view.computation.aggregations:
            numeric = agg.function not in ("count", "count_distinct")
            uses.append(ColumnUse(agg.column, f"aggregation {agg.function}", numeric=numeric))
    return list({(u.column, u.role): u for u in uses}.values())


def _check_columns(
    view: FeatureView, relation: str, types: dict[str, str], uses: list[ColumnUse], where: str
) -> list[str]:
    problems = []
    for use in uses:
        label = f"{where}: feature view {view.name!r}: {use.role} column {use.column!r}"
        actual = types.get(use.column.lower())
        if actual is None:
            problems.append(f"{label} is missing from {relation}")
        elif use.role in ("timestamp", "created timestamp") and actual not in TIME_TYPES:
            problems.append(f"{label} of {relation} is {actual}, not a timestamp")
        elif use.role == "date partition" and actual != "date":
            problems.append(f"{label} of {relation} is {actual}, not a date")
        elif use.dtype is not None and actual != use.dtype.value:
            problems.append(f"{label} is typed {use.dtype.value} but {relation} has {actual}")
        elif use.numeric and actual not in NUMERIC_TYPES | {"decimal", "boolean"}:
            problems.append(f"{label} of {relation} is {actual}, not numeric")
    return problems


def transform_output_problems(view: FeatureView, keys: list[str], schema: StructType) -> list[str]:
    """What a transform's output lacks: the join keys, ``event_timestamp``, each feature with its declared type."""
    uses = [ColumnUse(k, "join key") for k in keys] + [ColumnUse(OFFLINE_TIMESTAMP, "timestamp")]
    uses += [ColumnUse(f.name, "feature", dtype=f.dtype) for f in view.features]
    return _check_columns(view, "its output", _spark_types(schema), uses, "transform")


def _spark_types(schema: StructType) -> dict[str, str]:
    return {f.name.lower(): normalize_type(f.dataType.simpleString()) for f in schema.fields}


def check_schemas(spark: SparkSession, repo: Repo) -> SchemaReport:
    """Check every view's source columns against the catalog; a source table not built yet is a note."""
    from pyspark.errors import AnalysisException

    report = SchemaReport()
    schemas: dict[str, dict[str, str] | None] = {}
    not_built: dict[str, list[str]] = {}
    for view in repo.views.values():
        where, src = repo.origin(view), view.source
        if isinstance(src, DeltaTableSource | DbtModelSource | StreamSource):
            relation = src.table
            if relation not in schemas:
                exists = spark.catalog.tableExists(relation)
                schemas[relation] = _spark_types(spark.table(relation).schema) if exists else None
        else:
            assert isinstance(src, PathSource)
            relation = f"path {src.path}"
            if relation not in schemas:
                try:
                    reader = spark.read.format(src.format)
                    if src.format == "csv":
                        reader = reader.option("header", "true").option("inferSchema", "true")
                    schemas[relation] = _spark_types(reader.load(src.path).schema)
                except AnalysisException:
                    schemas[relation] = None
        types = schemas[relation]
        if types is None:
            label = f"{relation} (dbt model)" if isinstance(src, DbtModelSource) else relation
            not_built.setdefault(label, []).append(view.name)
            continue
        report.problems += _check_columns(view, relation, types, columns_used(repo, view), where)
    for label, views in not_built.items():
        report.notes.append(f"{label} not computed yet: not checked for {', '.join(views)}")
    return report


def default_manifest_path(root: Path) -> Path:
    return root / "dbt_project" / "target" / "manifest.json"


@dataclass(frozen=True)
class DbtModel:
    name: str
    schema: str
    relation: str  # schema.alias
    columns: dict[str, str | None]  # lower-case name -> declared data_type (normalized) or None
    complete: bool  # the columns are all the model has (an enforced contract, or dbt's catalog.json)
    upstream_models: tuple[str, ...]
    upstream_sources: tuple[str, ...]  # relations (schema.identifier) of dbt sources


@dataclass(frozen=True)
class DbtManifest:
    path: Path
    models: dict[str, DbtModel]

    def lineage_of(self, model: str) -> tuple[set[str], set[tuple[str, str]]]:
        """(models, edges) upstream of ``model``, edges as (from, to) node ids (``table:...``/``dbt_model:...``)."""
        models, edges, todo = set(), set(), [model]
        while todo:
            name = todo.pop()
            if name in models or name not in self.models:
                continue
            models.add(name)
            node = self.models[name]
            for src in node.upstream_sources:
                edges.add((f"table:{src}", f"dbt_model:{name}"))
            for up in node.upstream_models:
                edges.add((f"dbt_model:{up}", f"dbt_model:{name}"))
                todo.append(up)
        return models, edges


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FeaturelakeError(f"{path}: not a readable dbt {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise FeaturelakeError(f"{path}: not a dbt {what} (expected a JSON object)")
    return data


def load_manifest(path: Path) -> DbtManifest | None:
    """dbt's ``target/manifest.json`` (models, their declared columns and upstream), or None when absent.

    A ``catalog.json`` beside it (``dbt docs generate``) gives each built model's actual columns and types.
    """
    if not path.is_file():
        return None
    data = _read_json(path, "manifest")
    built: dict[str, dict[str, Any]] = {}
    if (catalog_path := path.with_name("catalog.json")).is_file():
        built = _read_json(catalog_path, "catalog").get("nodes", {})
    sources = {
        uid: f"{s.get('schema')}.{s.get('identifier') or s.get('name')}" for uid, s in data.get("sources", {}).items()
    }
    nodes: dict[str, Any] = data.get("nodes", {})
    model_names = {uid: n["name"] for uid, n in nodes.items() if n.get("resource_type") == "model"}
    models = {}
    for uid, node in nodes.items():
        if uid not in model_names:
            continue
        deps = node.get("depends_on", {}).get("nodes", [])
        columns = {
            name.lower(): normalize_type(c["data_type"]) if c.get("data_type") else None
            for name, c in (node.get("columns") or {}).items()
        }
        complete = bool((node.get("contract") or {}).get("enforced"))
        if uid in built:  # the built relation's columns, with their Spark types
            columns = {n.lower(): normalize_type(c.get("type") or "") or None for n, c in built[uid]["columns"].items()}
            complete = True
        models[node["name"]] = DbtModel(
            name=node["name"],
            schema=node.get("schema", ""),
            relation=f"{node.get('schema')}.{node.get('alias') or node['name']}",
            columns=columns,
            complete=complete,
            upstream_models=tuple(model_names[d] for d in deps if d in model_names),
            upstream_sources=tuple(sources[d] for d in deps if d in sources),
        )
    return DbtManifest(path, models)


def check_dbt(repo: Repo, manifest: DbtManifest | None) -> SchemaReport:
    """Views on dbt models against the manifest: the model exists, in the schema the source names, with every
    column the view uses and the features' types where dbt knows them.

    dbt knows a model's full column list when its contract is enforced or ``catalog.json`` describes it: then a
    missing column is a problem. Otherwise columns the schema YAML does not declare are listed in a note (the
    catalog check covers them once the model is built)."""
    report = SchemaReport()
    dbt_views = [v for v in repo.views.values() if isinstance(v.source, DbtModelSource)]
    if not dbt_views:
        return report
    if manifest is None:
        report.notes.append("no dbt manifest (run `dbt parse` in dbt_project/): dbt models not checked")
        return report
    for view in dbt_views:
        src, where = view.source, repo.origin(view)
        assert isinstance(src, DbtModelSource)
        model = manifest.models.get(src.model)
        label = f"{where}: feature view {view.name!r}"
        if model is None:
            report.problems.append(f"{label}: dbt model {src.model!r} is not in {manifest.path.name}")
            continue
        if model.schema.lower() != src.schema_.lower():
            report.problems.append(
                f"{label}: dbt model {src.model!r} is built in schema {model.schema!r}, the source says {src.schema_!r}"
            )
        undeclared = []
        for use in columns_used(repo, view):
            if use.column.lower() not in model.columns:
                if model.complete:
                    report.problems.append(f"{label}: dbt model {src.model!r} has no {use.role} column {use.column!r}")
                else:
                    undeclared.append(use.column)
                continue
            declared = model.columns[use.column.lower()]
            if use.dtype is not None and declared is not None and declared != use.dtype.value:
                report.problems.append(
                    f"{label}: feature {use.column!r} is typed {use.dtype.value} but dbt model {src.model!r} "
                    f"declares {declared}"
                )
        if undeclared:
            report.notes.append(
                f"feature view {view.name!r}: dbt model {src.model!r} does not declare "
                f"{', '.join(dict.fromkeys(undeclared))} in its YAML (checked against the table once built)"
            )
    return report
