"""Registry and discovery commands: plan, apply, list, describe, catalog."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from featurelake.cli.output import console

if TYPE_CHECKING:
    from featurelake.repo import Repo
    from featurelake.repo.schema import DbtManifest

RepoOption = Annotated[
    Path | None, typer.Option("--repo", help="the feature repository folder (default: features/ under the root)")
]
ManifestOption = Annotated[
    Path | None,
    typer.Option("--manifest", help="dbt's manifest.json (default: dbt_project/target/manifest.json under the root)"),
]


def _load(
    repo_path: Path | None, manifest_path: Path | None, *, with_manifest: bool = True
) -> tuple[Repo, DbtManifest | None]:
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo, load_repo
    from featurelake.repo.schema import default_manifest_path, load_manifest

    settings = get_settings()
    root = settings.root
    repo = load_repo(repo_path) if repo_path else feature_repo(settings)
    if not with_manifest:
        return repo, None
    return repo, load_manifest(manifest_path or default_manifest_path(root))


def _print_plan(plan) -> None:
    base = "nothing applied yet" if plan.base_version is None else f"registry version {plan.base_version}"
    if not plan.changes:
        console.print(f"no changes ({base})")
    else:
        table = Table("", "kind", "name", "breaking", "details", title=f"plan against {base}", title_justify="left")
        marks = {"added": "[green]+[/]", "changed": "[yellow]~[/]", "removed": "[red]-[/]"}
        for c in plan.changes:
            breaking = "[red]REFUSED[/]" if c.refused else ("yes" if c.breaking else "")
            table.add_row(marks[c.action], c.kind, c.name, breaking, "\n".join(c.details))
        console.print(table)
    for note in plan.report.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False)


def plan(repo: RepoOption = None, manifest: ManifestOption = None) -> None:
    """Show what `apply` would change in the registry (added, changed, removed; breaking or not)."""
    from featurelake.repo import DefinitionError
    from featurelake.repo.plan import make_plan
    from featurelake.spark import get_spark

    definitions, dbt_manifest = _load(repo, manifest)
    result = make_plan(get_spark(), definitions, dbt_manifest)
    _print_plan(result)
    if result.problems:
        raise DefinitionError(result.problems)


def apply(repo: RepoOption = None, manifest: ManifestOption = None) -> None:
    """Record the feature definitions in the registry (one Delta version per apply) with their lineage."""
    from featurelake.offline.manifest import read_training_sets
    from featurelake.registry import LINEAGE_TABLE, REGISTRY_TABLE
    from featurelake.repo.plan import apply as run_apply
    from featurelake.repo.specs import definitions_fingerprint
    from featurelake.spark import get_spark

    definitions, dbt_manifest = _load(repo, manifest)
    spark = get_spark()
    result = run_apply(spark, definitions, dbt_manifest, training_sets=read_training_sets(spark))
    _print_plan(result.plan)
    if result.written:
        console.print(
            f"applied: {REGISTRY_TABLE} version {result.version} "
            f"({len(result.plan.objects)} objects, {len(result.edges)} lineage edges in {LINEAGE_TABLE})"
        )
    else:
        console.print(f"registry unchanged at version {result.version}")
    if result.version is not None:
        _note_in_online_store(result.version, definitions_fingerprint(result.plan.objects))


def _note_in_online_store(version: int, fingerprint: str) -> None:
    """Tell the online store (hence the feature servers' /health) which registry version holds these definitions;
    a store that cannot be reached is a warning, not a failed apply."""
    from featurelake.config import get_settings
    from featurelake.online.backends import open_store
    from featurelake.online.store import StoreConfig
    from featurelake.online.versions import record_registry

    config = StoreConfig.from_settings(get_settings())
    try:
        with open_store(config) as store:
            record_registry(store, version, fingerprint)
    except Exception as exc:  # noqa: BLE001 - any store failure: the registry itself is written
        first = (str(exc).splitlines() or [""])[0]
        console.print(f"warning: online store {config.identity} not told of registry version {version}: {first}")


class Kind(StrEnum):
    entities = "entities"
    sources = "sources"
    views = "views"
    services = "services"


def list_objects(
    kind: Annotated[Kind | None, typer.Argument(help="entities, sources, views or services (default: all)")] = None,
    repo: RepoOption = None,
) -> None:
    """List the definitions of the feature repository."""
    definitions, _ = _load(repo, None, with_manifest=False)
    wanted = [kind] if kind else list(Kind)
    for k in wanted:
        if k is Kind.entities:
            table = Table("entity", "join keys", "owner", "description", title="entities", title_justify="left")
            for e in definitions.entities.values():
                table.add_row(e.name, ", ".join(e.join_keys), e.owner or "", e.description)
        elif k is Kind.sources:
            table = Table(
                "source", "kind", "relation", "timestamp", "description", title="sources", title_justify="left"
            )
            for s in definitions.sources.values():
                relation = getattr(s, "table", None) or getattr(s, "path", "")
                table.add_row(s.name, s.kind, relation, s.timestamp_column, s.description)
        elif k is Kind.views:
            table = Table(
                "view", "version", "entities", "features", "ttl", "owner", title="views", title_justify="left"
            )
            from featurelake.config import format_duration

            for v in definitions.views.values():
                table.add_row(
                    v.name,
                    str(v.version),
                    ", ".join(v.entities),
                    str(len(v.features)),
                    format_duration(v.ttl) or "none",
                    v.owner or "",
                )
        else:
            table = Table("service", "views", "features", "owner", title="services", title_justify="left")
            for svc in definitions.services.values():
                sels = definitions.resolve(svc.features)
                n_features = str(sum(len(x.features) for x in sels))
                table.add_row(svc.name, ", ".join(x.view for x in sels), n_features, svc.owner or "")
        console.print(table)


def describe(
    name: Annotated[str, typer.Argument(help="an entity, source, feature view or feature service")],
    repo: RepoOption = None,
    manifest: ManifestOption = None,
) -> None:
    """Describe one definition: schema, owner, ttl, source, lineage, latest table version and freshness."""
    from featurelake.config import format_duration
    from featurelake.errors import FeaturelakeError
    from featurelake.monitoring.checks import table_status
    from featurelake.offline.manifest import read_training_sets
    from featurelake.registry import load_applied
    from featurelake.repo.definitions import FeatureView
    from featurelake.repo.lineage import downstream_of, lineage_edges, upstream_of
    from featurelake.repo.specs import serialize
    from featurelake.spark import get_spark

    definitions, dbt_manifest = _load(repo, manifest)
    objects = serialize(definitions)
    matches = [o for o in objects if o.name == name]
    if not matches:
        raise FeaturelakeError(f"no entity, source, feature view or feature service named {name!r}")
    spark = get_spark()
    edges = lineage_edges(objects, dbt_manifest, read_training_sets(spark))
    applied = load_applied(spark)
    for obj in matches:
        spec = obj.spec
        console.rule(f"{obj.kind.replace('_', ' ')} [bold]{obj.name}[/]")
        console.print(spec.get("description") or "", highlight=False)
        rows = [("defined at", obj.defined_at), ("owner", spec.get("owner") or "-")]
        if spec.get("tags"):
            rows.append(("tags", ", ".join(f"{k}={v}" for k, v in spec["tags"].items())))
        prev = applied.get(obj.kind, obj.name)
        state = "not applied" if prev is None else ("applied" if prev.fingerprint == obj.fingerprint else "changed")
        rows.append(("registry", f"{state} (registry version {applied.version})" if prev else state))
        if obj.kind == "entity":
            rows.append(("join keys", ", ".join(spec["join_keys"])))
        if obj.kind == "source":
            rows.append(("relation", spec.get("table") or spec.get("path", "")))
            rows.append(("timestamp", spec["timestamp_column"]))
        if obj.kind == "feature_view":
            view: FeatureView = definitions.view(obj.name)
            rows += [
                ("version", str(view.version)),
                ("entities", f"{', '.join(view.entities)} (join keys {', '.join(definitions.join_keys(view))})"),
                ("ttl", format_duration(view.ttl) or "none (no lower bound)"),
                ("source", f"{view.source.name} ({spec['source'].get('table') or spec['source'].get('path')})"),
                ("computed by", spec["computation"]["kind"]),
                ("offline table", view.offline_table or "-"),
                ("online / offline", f"{view.online} / {view.offline}"),
            ]
            status = table_status(spark, view)
            if status is None:
                rows.append(("table", "not computed yet"))
            else:
                written = status.last_write.strftime("%Y-%m-%d %H:%M:%S") if status.last_write else "-"
                rows.append(("table version", f"{status.version if status.version is not None else '-'} ({written})"))
                rows.append(("freshness", f"latest {view.timestamp_field} {status.latest_event or '-'}"))
        if obj.kind == "request_view":
            rows.append(("request data", ", ".join(f"{k} {t}" for k, t in spec["request"].items()) or "-"))
            for src in spec["sources"]:
                rows.append((f"  {src['view']}", ", ".join(src["features"])))
            rows.append(("function", spec["function"]))
            rows += [(f"  {f['name']}", f"{f['dtype']}  {f['description']}") for f in spec["features"]]
        if obj.kind == "feature_service":
            for sel in spec["features"]:
                rows.append((f"  {sel['view']}", ", ".join(sel["features"])))
        node = f"{obj.kind}:{obj.name}"
        if obj.kind == "entity":
            node = ""
        elif obj.kind == "source":
            node = obj.upstream[0]
        if node:
            rows.append(("upstream", " <- ".join(upstream_of(node, edges)) or "-"))
            rows.append(("downstream", " -> ".join(downstream_of(node, edges)) or "-"))
        info = Table(show_header=False, box=None)
        for k, v in rows:
            info.add_row(f"[bold]{k}[/]", v)
        console.print(info)
        if obj.kind == "feature_view":
            schema = Table("column", "type", "role", "description")
            for key in definitions.join_keys(view):
                schema.add_row(key, "", "join key", "")
            schema.add_row(view.timestamp_field, "timestamp", "event time", "")
            for f in spec["features"]:
                derivation = f.get("derivation") or {}
                how = " ".join(str(derivation[k]) for k in ("function", "column", "window") if k in derivation)
                schema.add_row(f["name"], f["dtype"], "feature", f["description"] or how)
            console.print(schema)


def catalog(
    out: Annotated[
        str | None, typer.Option("--out", help="also copy the page to this folder (e.g. to open it locally)")
    ] = None,
    repo: RepoOption = None,
    manifest: ManifestOption = None,
    definitions_only: Annotated[
        bool, typer.Option("--definitions-only", help="skip the warehouse (table versions, training sets)")
    ] = False,
) -> None:
    """Write a static HTML catalog (search, lineage graph) of the feature repository, fit to publish, to
    <artifacts>/catalog (a local folder or the object store)."""
    from featurelake.artifacts import artifacts_root, local_copy
    from featurelake.config import get_settings
    from featurelake.monitoring.catalog import CatalogData, write_catalog
    from featurelake.monitoring.checks import table_status
    from featurelake.offline.manifest import read_training_sets
    from featurelake.registry import registry_version
    from featurelake.repo.lineage import lineage_edges
    from featurelake.repo.specs import serialize

    definitions, dbt_manifest = _load(repo, manifest)
    objects = serialize(definitions)
    statuses, training_sets, version = {}, [], None
    if not definitions_only:
        from featurelake.spark import get_spark

        spark = get_spark()
        training_sets = read_training_sets(spark)
        version = registry_version(spark)
        statuses = {v.name: s for v in definitions.views.values() if (s := table_status(spark, v)) is not None}
    data = CatalogData(
        objects=objects,
        edges=lineage_edges(objects, dbt_manifest, training_sets),
        statuses=statuses,
        training_sets=training_sets,
        registry_version=version,
        generated_at=dt.datetime.now(dt.UTC),
    )
    settings = get_settings()
    target = artifacts_root(settings) / "catalog"
    with target.writing() as folder:
        write_catalog(folder, data)
        copy = local_copy(settings, folder, out) if out else None
    console.print(f"catalog: {(target / 'index.html').display}", highlight=False, soft_wrap=True)
    if copy:
        console.print(f"local copy: {(copy / 'index.html').display}", highlight=False, soft_wrap=True)
