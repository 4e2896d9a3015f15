"""Training-set manifests, typed; the only owner of ``training.manifests``.

A :class:`Manifest` pins everything a training set's rows depend on: the spec (service, features, entity
source as given), the entity source and each feature table with the Delta version read (:class:`ViewRef`:
also the view settings the join used: keys, timestamps, ttl), the registry version, row counts, the code
version and the creation time. :meth:`Manifest.save` appends it to ``training.manifests`` and writes
``<state_dir>/manifests/<name>.json``; :func:`load_manifest` reads it from a dict, a JSON file or the table.
The JSON is format 1, as written since the first manifests: every manifest written before still loads.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator

from featurelake.errors import InputError
from featurelake.offline.pit import ViewInput
from featurelake.repo.lineage import TrainingSetRef
from featurelake.tables import append_rows, check_identifier, check_table_name, latest_commit, single_row

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MANIFESTS_TABLE = "training.manifests"
MANIFEST_FORMAT: Literal[1] = 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Location(_Model):
    """Rows to read: a catalog table, files at a path (delta, parquet, csv) or a SQL query, at a pinned Delta
    version (``delta_version``; None: not a Delta source, or not pinned yet)."""

    table: str | None = None
    path: str | None = None
    format: str | None = None
    sql: str | None = None
    delta_version: int | None = None

    @model_validator(mode="after")
    def _one_location(self) -> Self:
        if sum(x is not None for x in (self.table, self.path, self.sql)) != 1:
            raise ValueError("exactly one of table, path or sql is needed")
        return self

    @model_serializer(mode="wrap")
    def _format_1(self, handler: Any) -> dict[str, Any]:
        """Only the keys of its kind of location (a SQL query has no Delta version), as format 1 writes them."""
        absent = {k for k in ("table", "path", "format", "sql") if getattr(self, k) is None}
        if self.sql is not None:
            absent.add("delta_version")
        return {k: v for k, v in handler(self).items() if k not in absent}

    def pinned(self, spark: SparkSession) -> Self:
        """This location with the Delta version to read now (None when not Delta); a SQL query as it is."""
        if self.table is not None:
            version = latest_commit(spark, self.table).version if _is_delta_table(spark, self.table) else None
            return self.model_copy(update={"delta_version": version})
        if self.path is not None:
            fmt = self.format or ("delta" if _is_delta_path(spark, self.path) else "parquet")
            version = _delta_version_of_path(spark, self.path) if fmt == "delta" else None
            return self.model_copy(update={"format": fmt, "delta_version": version})
        return self

    def read(self, spark: SparkSession, *, latest: bool = False) -> DataFrame:
        """The rows ``VERSION AS OF`` the pinned Delta version (``latest``: the current version instead)."""
        version = None if latest else self.delta_version
        if self.table is not None:
            as_of = f" VERSION AS OF {int(version)}" if version is not None else ""
            return spark.sql(f"SELECT * FROM {check_table_name(self.table)}{as_of}")
        if self.path is not None:
            reader = spark.read.format(self.format or "delta")
            if version is not None:
                reader = reader.option("versionAsOf", int(version))
            if self.format == "csv":
                reader = reader.option("header", "true").option("inferSchema", "true")
            return reader.load(self.path)
        return spark.sql(str(self.sql))


class EntitySource(Location):
    """A training set's entity rows, as given: a catalog table, a path or a SELECT query."""

    kind: Literal["table", "path", "sql"]


class ViewRef(Location):
    """One feature view as a training set reads it: its table (or path) at a Delta version, the features taken,
    the join's settings and, once built, each feature's output column (``columns``)."""

    name: str
    version: int
    features: list[str]
    join_keys: list[str]
    timestamp_field: str
    created_timestamp_field: str | None
    date_partition_field: str | None
    ttl_seconds: int | None
    columns: dict[str, str] = Field(default_factory=dict)

    def to_input(self, spark: SparkSession, *, latest: bool = False) -> ViewInput:
        """The point-in-time join's input: the view's rows at the pinned version (``latest``: as they are now)."""
        return ViewInput(
            name=self.name,
            df=self.read(spark, latest=latest),
            join_keys=self.join_keys,
            features=self.features,
            timestamp_field=self.timestamp_field,
            created_timestamp_field=self.created_timestamp_field,
            date_partition_field=self.date_partition_field,
            ttl=dt.timedelta(seconds=self.ttl_seconds) if self.ttl_seconds else None,
        )


class Spec(_Model):
    """What was asked for: a service and/or features, the entity source as given, the event timestamp column,
    the output naming and the optional UTC dates [start, end] of the entity rows."""

    service: str | None = None
    features: list[str] = Field(default_factory=list)
    entities: str
    event_timestamp_column: str = "event_timestamp"
    full_feature_names: bool = False
    start: dt.date | None = None
    end: dt.date | None = None


class RowCounts(_Model):
    entities: int
    output: int


class Manifest(_Model):
    """What a training set's rows depend on, enough to rebuild them exactly (see the module docstring)."""

    format: Literal[1] = MANIFEST_FORMAT
    name: str
    table: str
    table_version: int
    spec: Spec
    entity_source: EntitySource
    views: list[ViewRef]
    registry_version: int | None
    rows: RowCounts
    code_version: dict[str, Any]
    created_at: dt.datetime
    rebuilt_from: str | None = None

    @property
    def label(self) -> str:
        """``<name>@<created_at>``: which manifest this is (a rebuild records it as ``rebuilt_from``)."""
        return f"{self.name}@{self.created_at.isoformat().replace('+00:00', 'Z')}"

    def view(self, name: str) -> ViewRef | None:
        return next((v for v in self.views if v.name == name), None)

    def read_table(self, spark: SparkSession) -> DataFrame:
        """The training rows as written: the table ``VERSION AS OF`` the version the manifest records."""
        return spark.sql(f"SELECT * FROM {check_table_name(self.table)} VERSION AS OF {int(self.table_version)}")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)

    def save(self, spark: SparkSession, state_dir: Path | None) -> None:
        """Append to ``training.manifests`` and, given a state folder, write ``<state_dir>/manifests/<name>.json``."""
        from pyspark.sql import types as T

        schema = T.StructType(
            [
                T.StructField("name", T.StringType(), False),
                T.StructField("service", T.StringType()),
                T.StructField("created_at", T.TimestampType(), False),
                T.StructField("table_version", T.LongType()),
                T.StructField("registry_version", T.LongType()),
                T.StructField("rows", T.LongType()),
                T.StructField("manifest_json", T.StringType(), False),
            ]
        )
        text = self.to_json()
        row = (
            self.name,
            self.spec.service,
            self.created_at,
            self.table_version,
            self.registry_version,
            self.rows.output,
            text,
        )
        append_rows(spark, MANIFESTS_TABLE, [row], schema)
        if state_dir is not None:
            path = manifest_file(state_dir, self.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")


def manifest_file(state_dir: Path, name: str) -> Path:
    """Where :meth:`Manifest.save` writes the JSON copy of training set ``name``'s manifest."""
    return Path(state_dir) / "manifests" / f"{name}.json"


def load_manifest(spark: SparkSession, ref: str | Path | Mapping[str, Any] | Manifest) -> Manifest:
    """A manifest from a dict, a JSON file, or the latest one of a training set named in ``training.manifests``."""
    if isinstance(ref, Manifest):
        return ref
    if isinstance(ref, Mapping):
        data: Any = ref
    else:
        path = Path(ref)
        if path.suffix == ".json" or path.is_file():
            if not path.is_file():
                raise InputError(f"manifest file {path} does not exist")
            try:
                data = json.loads(path.read_text())
            except ValueError as exc:
                raise InputError(f"manifest file {path} is not valid JSON: {exc}") from None
        else:
            check_identifier(str(ref), "training set name")
            if not spark.catalog.tableExists(MANIFESTS_TABLE):
                raise InputError(f"no manifest for {ref!r}: {MANIFESTS_TABLE} does not exist")
            row = spark.sql(
                f"SELECT max_by(manifest_json, created_at) FROM {MANIFESTS_TABLE} WHERE name = '{ref}'"
            ).first()
            if row is None or row[0] is None:
                raise InputError(f"no manifest for training set {ref!r} in {MANIFESTS_TABLE}")
            data = json.loads(row[0])
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        origin = "manifest" if isinstance(ref, Mapping) else str(ref)
        raise InputError(
            f"{origin}: not a featurelake training-set manifest (format {MANIFEST_FORMAT}): {where}: {first['msg']}"
        ) from None


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
        try:  # only the view names: lineage reads them from any manifest, however partial
            views = tuple(v["name"] for v in json.loads(r["manifest_json"] or "{}").get("views", []) if v.get("name"))
        except (ValueError, AttributeError, TypeError):
            views = ()
        out.append(TrainingSetRef(r["name"], r["service"] or None, r["created_at"], views))
    return out


def _delta_version_of_path(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    return int(single_row(DeltaTable.forPath(spark, path).history(1).select("version"))[0])


def _is_delta_path(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    try:
        return bool(DeltaTable.isDeltaTable(spark, path))
    except Exception:  # noqa: BLE001 - an unreadable path is "not Delta"; reading it reports the real error
        return False


def _is_delta_table(spark: SparkSession, table: str) -> bool:
    rows = spark.sql(f"DESCRIBE DETAIL {check_table_name(table)}").select("format").collect()
    return bool(rows) and rows[0][0] == "delta"
