"""The registry's storage: the applied definitions and their lineage, as Delta tables.

``monitoring.registry`` holds one row per entity, source, feature view, request feature view and feature service
with its canonical JSON spec (:mod:`featurelake.repo.specs`). An apply overwrites it in one commit, so each apply is
one Delta version: the registry version is that Delta version, and ``VERSION AS OF`` gives any earlier registry.
Lineage edges are written next to it, to ``monitoring.lineage``, stamped with the registry version they belong to.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurelake.errors import FeaturelakeError
from featurelake.tables import latest_commit, overwrite_where

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REGISTRY_TABLE = "monitoring.registry"
LINEAGE_TABLE = "monitoring.lineage"
KINDS = ("entity", "source", "feature_view", "request_view", "feature_service")

Edge = tuple[str, str]  # (from node id, to node id); a node id is "<kind>:<name>"


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
    rows = spark.sql(f"SELECT * FROM {REGISTRY_TABLE} VERSION AS OF {at}").collect()  # one row per definition
    objects = {
        (r["kind"], r["name"]): RegistryObject(
            r["kind"], r["name"], json.loads(r["spec"]), r["version"], r["defined_at"] or "", tuple(r["upstream"] or ())
        )
        for r in rows
    }
    applied_at = max((r["applied_at"] for r in rows), default=None)
    return AppliedRegistry(at, objects, applied_at)


def write_registry(
    spark: SparkSession, objects: list[RegistryObject], applied_at: dt.datetime, repo_root: str, *, base: int | None
) -> int:
    """Record ``objects`` as the new registry (one commit) and return its version; ``base`` is the version the
    caller planned against: another apply in between is refused."""
    from pyspark.sql import types as T

    if registry_version(spark) != base:
        raise FeaturelakeError("the registry changed while planning (another apply?): plan and apply again")

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
    return overwrite_where(spark.createDataFrame(rows, schema), REGISTRY_TABLE, None).version


def write_lineage(spark: SparkSession, edges: list[Edge], version: int | None, recorded_at: dt.datetime) -> None:
    """Replace the lineage edges with ``edges`` of registry ``version`` (one commit)."""
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
    overwrite_where(spark.createDataFrame(rows, schema), LINEAGE_TABLE, None)


def read_lineage(spark: SparkSession) -> list[Edge]:
    """The lineage edges recorded by the last apply (empty before the first)."""
    if not spark.catalog.tableExists(LINEAGE_TABLE):
        return []
    rows = spark.table(LINEAGE_TABLE).select("src_kind", "src_name", "dst_kind", "dst_name").collect()
    return sorted((f"{r[0]}:{r[1]}", f"{r[2]}:{r[3]}") for r in rows)
