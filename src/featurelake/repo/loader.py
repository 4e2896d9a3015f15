"""Loading the feature repository (``features/``) and checking its definitions against each other.

Every ``*.py`` under ``features/`` is imported; module-level Entity, Source, FeatureView, RequestFeatureView,
FeatureService, Ingestion and TrainingSet objects are collected with the file and variable they come from. All
problems are gathered and reported at once (a ``DefinitionError`` lists each with its origin).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from featurelake.config import Settings
from featurelake.errors import FeaturelakeError
from featurelake.repo.definitions import (
    OFFLINE_SOURCE_DATE,
    Entity,
    FeatureSelection,
    FeatureService,
    FeatureView,
    Ingestion,
    RawTable,
    RequestFeatureView,
    Source,
    TrainingSet,
    TransformComputation,
    ValueType,
    collecting_problems,
)

KINDS: tuple[type, ...] = (Entity, Source, FeatureView, RequestFeatureView, FeatureService, Ingestion, TrainingSet)
REPO_PACKAGE = "featurelake_repo"


class DefinitionError(FeaturelakeError):
    """One or more broken definitions; ``problems`` lists them, each naming where it comes from."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the feature definitions:\n  " + "\n  ".join(problems))


@dataclass
class Repo:
    root: Path
    entities: dict[str, Entity] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    views: dict[str, FeatureView] = field(default_factory=dict)
    request_views: dict[str, RequestFeatureView] = field(default_factory=dict)
    services: dict[str, FeatureService] = field(default_factory=dict)
    ingestions: dict[str, Ingestion] = field(default_factory=dict)
    training_sets: dict[str, TrainingSet] = field(default_factory=dict)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> "file: variable"

    def origin(self, obj: object) -> str:
        return self.origins.get((type(obj).__name__, getattr(obj, "name", "")), getattr(obj, "defined_at", "<code>"))

    def view(self, name: str) -> FeatureView:
        if name not in self.views:
            raise FeaturelakeError(f"unknown feature view {name!r} (known: {', '.join(sorted(self.views)) or 'none'})")
        return self.views[name]

    def service(self, name: str) -> FeatureService:
        if name not in self.services:
            known = ", ".join(sorted(self.services)) or "none"
            raise FeaturelakeError(f"unknown feature service {name!r} (known: {known})")
        return self.services[name]

    @property
    def raw_tables(self) -> dict[str, RawTable]:
        """The raw tables the ingestions land, by table name (``raw.<name>``)."""
        return {t.table: t for i in self.ingestions.values() for t in i.raw_tables}

    def raw_table(self, table: str) -> RawTable:
        if table not in self.raw_tables:
            known = ", ".join(self.raw_tables) or "none"
            raise FeaturelakeError(f"no raw table {table!r} in the feature repository's ingestions (known: {known})")
        return self.raw_tables[table]

    def entities_of(self, view: FeatureView) -> list[Entity]:
        return [self.entities[e] for e in view.entities]

    def join_keys(self, view: FeatureView) -> list[str]:
        return [k for e in self.entities_of(view) for k in e.join_keys]

    def resolve(self, selections: list[FeatureSelection] | tuple[FeatureSelection, ...]) -> list[FeatureSelection]:
        """Each selection with its view's features spelled out; unknown views or features raise."""
        out, problems = [], []
        for sel in selections:
            view: FeatureView | RequestFeatureView
            if sel.view in self.request_views:
                view = self.request_views[sel.view]
                if missing := [f for f in sel.features if f not in view.feature_names]:
                    problems.append(f"request feature view {view.name!r} has no feature(s) {', '.join(missing)}")
                if sel.version is not None:
                    problems.append(f"request feature view {view.name!r} has no versions to pin")
                out.append(FeatureSelection(view=view.name, features=sel.features or tuple(view.feature_names)))
                continue
            if sel.view not in self.views:
                problems.append(f"unknown feature view {sel.view!r}")
                continue
            view = self.views[sel.view]
            missing = [f for f in sel.features if f not in view.feature_names]
            if missing and sel.version in (None, view.version):  # another version's features are checked online
                problems.append(f"feature view {view.name!r} has no feature(s) {', '.join(missing)}")
            features = sel.features or tuple(view.feature_names)
            out.append(FeatureSelection(view=view.name, features=features, version=sel.version))
        if problems:
            raise FeaturelakeError("; ".join(problems))
        return out

    def selections_for(self, service: str | None = None, features: list[str] | None = None) -> list[FeatureSelection]:
        """Features by service name or by ``view:feature`` / ``view`` references, merged per view."""
        refs: list[FeatureSelection] = list(self.service(service).features) if service else []
        for ref in features or []:
            view, _, feature = ref.partition(":")
            refs.append(FeatureSelection(view=view, features=(feature,) if feature else ()))
        if not refs:
            raise FeaturelakeError("name a feature service or at least one feature (view:feature)")
        merged: dict[str, list[str]] = {}
        versions: dict[str, int | None] = {}
        for sel in self.resolve(refs):
            if versions.setdefault(sel.view, sel.version) != sel.version:
                raise FeaturelakeError(f"feature view {sel.view!r} is selected at two versions")
            names = merged.setdefault(sel.view, [])
            names.extend(f for f in sel.features if f not in names)
        return [FeatureSelection(view=v, features=tuple(fs), version=versions[v]) for v, fs in merged.items()]

    def reads_for(self, service: str | None = None, features: list[str] | None = None) -> FeatureReads:
        """What a request for features reads and computes (see :class:`FeatureReads`)."""
        selections = self.selections_for(service, features)
        request_views = [self.request_views[s.view] for s in selections if s.view in self.request_views]
        reads = {s.view: s for s in selections if s.view in self.views}
        sources = {rv.name: tuple(self.resolve(rv.sources)) for rv in request_views}
        inputs_only: dict[str, list[str]] = {}
        for rv in request_views:
            for src in sources[rv.name]:
                selected = reads[src.view].features if src.view in reads else ()
                names = inputs_only.setdefault(src.view, [])
                names.extend(f for f in src.features if f not in selected and f not in names)
        for view in inputs_only:
            reads.setdefault(view, FeatureSelection(view=view, features=()))
        return FeatureReads(
            selections=selections,
            reads=list(reads.values()),
            inputs_only={v: tuple(fs) for v, fs in inputs_only.items() if fs},
            request_views=request_views,
            sources=sources,
            join_keys={view: tuple(self.join_keys(self.views[view])) for view in reads},
        )


@dataclass(frozen=True)
class FeatureReads:
    """A request for features, planned: ``selections`` as asked (batch and request feature views, in order);
    ``reads``, the batch views to read (their selected features, at the selected version); ``inputs_only``, per
    batch view, the features read only because a request feature view of ``request_views`` takes them;
    ``sources``, each request feature view's inputs spelled out; ``join_keys``, each batch view's."""

    selections: list[FeatureSelection]
    reads: list[FeatureSelection]
    inputs_only: dict[str, tuple[str, ...]]
    request_views: list[RequestFeatureView]
    sources: dict[str, tuple[FeatureSelection, ...]]
    join_keys: dict[str, tuple[str, ...]]

    def features_read(self, sel: FeatureSelection) -> tuple[str, ...]:
        """The features of batch view ``sel`` to read: selected, then inputs only."""
        return (*sel.features, *self.inputs_only.get(sel.view, ()))

    @property
    def key_columns(self) -> dict[str, str]:
        """Every join key the reads need -> the (first) view needing it."""
        return {k: view for view, keys in reversed(self.join_keys.items()) for k in keys}

    @property
    def request_fields(self) -> dict[str, ValueType]:
        """Every request field the request feature views take, with its type."""
        return {name: t for rv in self.request_views for name, t in rv.request.items()}


def feature_repo(settings: Settings) -> Repo:
    """The feature repository the settings name (``features_dir``, default ``features/`` in the repo root)."""
    return load_repo(settings.features_path)


def load_repo(root: str | Path) -> Repo:
    """Import the definitions under ``root`` and check them; raise DefinitionError listing every problem.

    An object that fails validation is reported with the ``file:line`` that built it and left out; the rest
    of its module still loads, so one run names every broken object.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FeaturelakeError(f"feature repository {root} is not a folder")
    repo, problems = Repo(root=root), list[str]()
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    broken_names: set[str] = set()
    fresh_package(REPO_PACKAGE, root)
    with collecting_problems() as constructed:
        for path in sorted(root.rglob("*.py")):
            if path.name.startswith("_") and path.name != "__init__.py":
                continue
            rel = path.relative_to(root.parent)
            parts = path.relative_to(root).with_suffix("").parts
            module_name = ".".join((REPO_PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)))
            try:
                module = importlib.import_module(module_name)
            except ValidationError as exc:
                problems.extend(f"{rel}: {_describe(err)}" for err in exc.errors())
                continue
            except Exception as exc:  # a definition module that does not import is a definition problem
                problems.append(f"{rel}: {_origin_line(exc, root.parent)}{type(exc).__name__}: {exc}")
                continue
            broken = {p.object_id for p in constructed}
            for var, obj in vars(module).items():
                kind: type | None = next((k for k in KINDS if isinstance(obj, k)), None)
                if kind is None or var.startswith("_"):
                    continue
                if _contains(obj, broken):
                    if isinstance(getattr(obj, "name", None), str):
                        broken_names.add(obj.name)
                    continue
                registered = _registered(repo, kind)
                if registered.get(obj.name) is obj:
                    continue  # the same object imported into another module
                where = _relative(obj.defined_at, root.parent)
                seen[(kind.__name__, obj.name)].append(where)
                registered[obj.name] = obj
                repo.origins[(type(obj).__name__, obj.name)] = where
    for problem in constructed:
        problems.extend(problem.messages(_relative(problem.location, root.parent)))
    for (kind_name, name), places in seen.items():
        if len(places) > 1:
            problems.append(f"duplicate {kind_name} name {name!r}: defined in {' and '.join(places)}")
    problems.extend(check_references(repo, broken=broken_names))
    if problems:
        raise DefinitionError(list(dict.fromkeys(problems)))
    return repo


def _contains(obj: object, ids: set[int]) -> bool:
    """True when ``obj`` or a definition nested in it failed validation."""
    if id(obj) in ids:
        return True
    if isinstance(obj, BaseModel):
        return any(_contains(v, ids) for v in obj.__dict__.values())
    if isinstance(obj, list | tuple):
        return any(_contains(v, ids) for v in obj)
    return False


def _origin_line(exc: BaseException, base: Path) -> str:
    """``line N: `` of the innermost traceback frame inside the feature repository, if any."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(base))]
    return f"line {frames[-1].lineno}: " if frames else ""


def _registered(repo: Repo, kind: type) -> dict[str, Any]:
    by_kind: dict[type, dict[str, Any]] = {
        Entity: repo.entities,
        Source: repo.sources,
        FeatureView: repo.views,
        RequestFeatureView: repo.request_views,
        FeatureService: repo.services,
        Ingestion: repo.ingestions,
        TrainingSet: repo.training_sets,
    }
    return by_kind[kind]


def _relative(location: str, base: Path) -> str:
    path, _, line = location.rpartition(":")
    try:
        return f"{Path(path).resolve().relative_to(base)}:{line}"
    except ValueError:
        return location


def fresh_package(name: str, root: Path) -> None:
    """Make ``name`` an importable package rooted at the folder ``root`` (dropping any earlier one's modules)."""
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]
    package = types.ModuleType(name)
    package.__path__ = [str(root)]
    sys.modules[name] = package


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc + ': ' if loc else ''}{err['msg']}"


def check_references(repo: Repo, broken: set[str] | None = None) -> list[str]:
    """Problems between definitions: unknown entities, key/feature clashes, service references, raw tables
    landed twice.

    ``broken`` names objects already reported as invalid: references to them are not reported again.
    """
    broken = broken or set()
    problems = []
    for view in repo.views.values():
        where = repo.origin(view)
        unknown = [e for e in view.entities if e not in repo.entities and e not in broken]
        if unknown:
            problems.append(f"{where}: feature view {view.name!r} refers to unknown entity {', '.join(unknown)}")
        keys = [k for e in view.entities if e in repo.entities for k in repo.entities[e].join_keys]
        if len(set(keys)) != len(keys):
            problems.append(
                f"{where}: feature view {view.name!r} has the join key(s) of two entities in common: {keys}"
            )
        dup = sorted({f for f in view.feature_names if view.feature_names.count(f) > 1})
        if dup:
            problems.append(f"{where}: feature view {view.name!r} repeats feature(s) {', '.join(dup)}")
        reserved = {
            c for c in (*keys, view.timestamp_field, view.created_timestamp_field, view.date_partition_field) if c
        }
        if isinstance(view.computation, TransformComputation):
            reserved.add(OFFLINE_SOURCE_DATE)
        clash = sorted(reserved & set(view.feature_names))
        if clash:
            problems.append(f"{where}: feature view {view.name!r} has features named like keys/timestamps: {clash}")
    for rv in repo.request_views.values():
        problems.extend(_request_view_problems(repo, rv, broken))
    for name in sorted(set(repo.views) & set(repo.request_views)):
        problems.append(f"{repo.origin(repo.request_views[name])}: feature view name {name!r} is taken twice "
                        f"(by a feature view in {repo.origin(repo.views[name])})")  # fmt: skip
    for service in repo.services.values():
        where = repo.origin(service)
        for sel in service.features:
            if sel.view in broken:
                continue
            if sel.view in repo.request_views:
                rv = repo.request_views[sel.view]
                if missing := [f for f in sel.features if f not in rv.feature_names]:
                    problems.append(f"{where}: feature service {service.name!r} refers to missing feature(s) "
                                    f"{', '.join(f'{rv.name}:{m}' for m in missing)}")  # fmt: skip
                continue
            if sel.view not in repo.views:
                problems.append(f"{where}: feature service {service.name!r} refers to missing view {sel.view!r}")
                continue
            missing = [f for f in sel.features if f not in repo.views[sel.view].feature_names]
            if missing and sel.version in (None, repo.views[sel.view].version):  # others are checked online
                problems.append(
                    f"{where}: feature service {service.name!r} refers to missing feature(s) "
                    f"{', '.join(f'{sel.view}:{m}' for m in missing)}"
                )
    for ts in repo.training_sets.values():
        if ts.service not in repo.services and ts.service not in broken:
            problems.append(f"{repo.origin(ts)}: training set {ts.name!r} refers to unknown service {ts.service!r}")
    landed: dict[str, str] = {}
    for ingestion in repo.ingestions.values():
        for table in ingestion.raw_tables:
            if table.table in landed:
                problems.append(
                    f"{repo.origin(ingestion)}: raw table {table.table} is landed by ingestions "
                    f"{landed[table.table]!r} and {ingestion.name!r}"
                )
            landed[table.table] = ingestion.name
    return problems


def _request_view_problems(repo: Repo, rv: RequestFeatureView, broken: set[str]) -> list[str]:
    """A request feature view's sources exist (batch views, with these features) and its inputs have one name each."""
    where, problems = repo.origin(rv), []
    names = list(rv.request)
    for src in rv.sources:
        if src.view in broken:
            continue
        if src.view not in repo.views:
            kind = "another request feature view" if src.view in repo.request_views else "a missing view"
            problems.append(f"{where}: request feature view {rv.name!r} takes features of {kind}: {src.view!r}")
            continue
        view = repo.views[src.view]
        if missing := [f for f in src.features if f not in view.feature_names]:
            problems.append(f"{where}: request feature view {rv.name!r} refers to missing feature(s) "
                            f"{', '.join(f'{view.name}:{m}' for m in missing)}")  # fmt: skip
        names += src.features or view.feature_names
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{where}: request feature view {rv.name!r} has input(s) named twice (request fields and "
                        f"source features share one namespace): {', '.join(repeated)}")  # fmt: skip
    return problems
