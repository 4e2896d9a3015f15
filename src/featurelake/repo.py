"""Loading the feature repository (``features/``) and checking its definitions against each other.

Every ``*.py`` under ``features/`` is imported; module-level Entity, Source, FeatureView and FeatureService
objects are collected with the file and variable they come from. All problems are gathered and reported
at once (a ``DefinitionError`` lists each with its origin).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from featurelake.definitions import Entity, FeatureSelection, FeatureService, FeatureView, Source
from featurelake.errors import FeaturelakeError

KINDS: tuple[type, ...] = (Entity, Source, FeatureView, FeatureService)
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
    services: dict[str, FeatureService] = field(default_factory=dict)
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

    def entities_of(self, view: FeatureView) -> list[Entity]:
        return [self.entities[e] for e in view.entities]

    def join_keys(self, view: FeatureView) -> list[str]:
        return [k for e in self.entities_of(view) for k in e.join_keys]

    def resolve(self, selections: list[FeatureSelection] | tuple[FeatureSelection, ...]) -> list[FeatureSelection]:
        """Each selection with its view's features spelled out; unknown views or features raise."""
        out, problems = [], []
        for sel in selections:
            if sel.view not in self.views:
                problems.append(f"unknown feature view {sel.view!r}")
                continue
            view = self.views[sel.view]
            missing = [f for f in sel.features if f not in view.feature_names]
            if missing:
                problems.append(f"feature view {view.name!r} has no feature(s) {', '.join(missing)}")
            out.append(FeatureSelection(view=view.name, features=sel.features or tuple(view.feature_names)))
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
        for sel in self.resolve(refs):
            names = merged.setdefault(sel.view, [])
            names.extend(f for f in sel.features if f not in names)
        return [FeatureSelection(view=v, features=tuple(fs)) for v, fs in merged.items()]


def load_repo(root: str | Path) -> Repo:
    """Import the definitions under ``root`` and check them; raise DefinitionError listing every problem."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FeaturelakeError(f"feature repository {root} is not a folder")
    repo, problems = Repo(root=root), []
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    _fresh_package(root)
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
            problems.append(f"{rel}: {type(exc).__name__}: {exc}")
            continue
        for var, obj in vars(module).items():
            kind = next((k for k in KINDS if isinstance(obj, k)), None)
            if kind is None or var.startswith("_"):
                continue
            registered = _registered(repo, kind)
            if registered.get(obj.name) is obj:
                continue  # the same object imported into another module
            where = _relative(obj.defined_at, root.parent)
            seen[(kind.__name__, obj.name)].append(where)
            registered[obj.name] = obj
            repo.origins[(type(obj).__name__, obj.name)] = where
    for (kind, name), places in seen.items():
        if len(places) > 1:
            problems.append(f"duplicate {kind} name {name!r}: defined in {' and '.join(places)}")
    problems.extend(check_references(repo))
    if problems:
        raise DefinitionError(problems)
    return repo


def _registered(repo: Repo, kind: type) -> dict:
    return {Entity: repo.entities, Source: repo.sources, FeatureView: repo.views, FeatureService: repo.services}[kind]


def _relative(location: str, base: Path) -> str:
    path, _, line = location.rpartition(":")
    try:
        return f"{Path(path).resolve().relative_to(base)}:{line}"
    except ValueError:
        return location


def _fresh_package(root: Path) -> None:
    """Make ``featurelake_repo`` a package rooted at ``root`` (dropping any earlier repo's modules)."""
    for name in [m for m in sys.modules if m == REPO_PACKAGE or m.startswith(REPO_PACKAGE + ".")]:
        del sys.modules[name]
    package = types.ModuleType(REPO_PACKAGE)
    package.__path__ = [str(root)]
    sys.modules[REPO_PACKAGE] = package


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc + ': ' if loc else ''}{err['msg']}"


def check_references(repo: Repo) -> list[str]:
    """Problems between definitions: unknown entities, key/feature clashes, service references."""
    problems = []
    for view in repo.views.values():
        where = repo.origin(view)
        unknown = [e for e in view.entities if e not in repo.entities]
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
        reserved = {*keys, view.timestamp_field, view.created_timestamp_field, view.date_partition_field} - {None}
        clash = sorted(reserved & set(view.feature_names))
        if clash:
            problems.append(f"{where}: feature view {view.name!r} has features named like keys/timestamps: {clash}")
    for service in repo.services.values():
        where = repo.origin(service)
        for sel in service.features:
            if sel.view not in repo.views:
                problems.append(f"{where}: feature service {service.name!r} refers to missing view {sel.view!r}")
                continue
            missing = [f for f in sel.features if f not in repo.views[sel.view].feature_names]
            if missing:
                problems.append(
                    f"{where}: feature service {service.name!r} refers to missing feature(s) "
                    f"{', '.join(f'{sel.view}:{m}' for m in missing)}"
                )
    return problems
