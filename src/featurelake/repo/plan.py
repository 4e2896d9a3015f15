"""Plan (diff the feature repository against the applied registry, with its schema checks) and apply (record it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from featurelake.registry import Edge, RegistryObject, load_applied, read_lineage, write_lineage, write_registry
from featurelake.repo.diff import Change, diff_registry
from featurelake.repo.lineage import TrainingSetRef, lineage_edges
from featurelake.repo.loader import DefinitionError, Repo
from featurelake.repo.schema import DbtManifest, SchemaReport, check_dbt, check_schemas
from featurelake.repo.specs import serialize

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


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


def apply(
    spark: SparkSession,
    repo: Repo,
    manifest: DbtManifest | None = None,
    *,
    check_catalog: bool = True,
    training_sets: Iterable[TrainingSetRef] = (),
) -> ApplyResult:
    """Plan, refuse on any problem, then record the registry (one Delta version) and its lineage edges
    (``training_sets``: the training sets built so far, the last layer of the lineage)."""
    plan = make_plan(spark, repo, manifest, check_catalog=check_catalog)
    if plan.problems:
        raise DefinitionError(plan.problems)
    edges = lineage_edges(plan.objects, manifest, training_sets)
    now = dt.datetime.now(dt.UTC)
    version, written = plan.base_version, False
    if plan.changes or plan.base_version is None:
        version = write_registry(spark, plan.objects, now, str(repo.root), base=plan.base_version)
        written = True
    if written or read_lineage(spark) != edges:
        write_lineage(spark, edges, version, now)
    return ApplyResult(plan, version, written, edges)
