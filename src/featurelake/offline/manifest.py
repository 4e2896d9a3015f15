"""Training-set manifests, typed; the only owner of ``training.manifests``.

A :class:`Manifest` pins what a training set's rows depend on: the spec, the entity source and each feature
table (:class:`ViewRef`) with the Delta version read and the join's settings, the registry and code versions.
Its JSON (format 1, as written since the first manifests, so earlier ones still load) goes to the Delta table
and to ``<artifacts>/manifests/<name>.json`` (``featurelake.artifacts``: a local folder or the object store).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from pydantic import BaseModel, Field, ValidationError, model_serializer, model_validator

from featurelake.errors import InputError
from featurelake.offline.pit import ViewInput
from featurelake.repo.lineage import TrainingSetRef
from featurelake.tables import append_rows, check_identifier, check_table_name, latest_commit, single_row

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from featurelake.artifacts import ArtifactPath

MANIFESTS_TABLE = "training.manifests"
MANIFESTS_SCHEMA = (
    "name string not null, service string, created_at timestamp not null, table_version bigint, "
    "registry_version bigint, rows bigint, manifest_json string not null"
)
MANIFEST_FORMAT: Literal[1] = 1


class Location(BaseModel):
    """Rows to read (a catalog table, files at a path or a SQL query) at a pinned Delta version (None: not Delta)."""

    table: str | None = None
    path: str | None = None
    format: str | None = None
    sql: str | None = None
    delta_version: int | None = None

    written_when_set: ClassVar[tuple[str, ...]] = ()  # keys added after format 1: left out while empty

    @model_validator(mode="after")
    def _one_location(self) -> Self:
        if sum(x is not None for x in (self.table, self.path, self.sql)) != 1:
            raise ValueError("exactly one of table, path or sql is needed")
        return self

    @model_serializer(mode="wrap")
    def _format_1(self, handler: Any) -> dict[str, Any]:
        """Only the keys of its kind of location (a SQL query has no Delta version), as format 1 writes them."""
        absent = {k for k in ("table", "path", "format", "sql") if getattr(self, k) is None}
        absent |= {k for k in self.written_when_set if not getattr(self, k)}
        if self.sql is not None:
            absent.add("delta_version")
        return {k: v for k, v in handler(self).items() if k not in absent}

    def pinned(self, spark: SparkSession) -> Self:
        """This location with the Delta version to read now (None when not Delta; a path without a format is
        Delta if it holds a Delta table, else parquet); a SQL query as it is."""
        if self.table is not None:
            detail = spark.sql(f"DESCRIBE DETAIL {check_table_name(self.table)}").select("format").first()
            version = latest_commit(spark, self.table).version if detail and detail[0] == "delta" else None
            return self.model_copy(update={"delta_version": version})
        if self.path is not None:
            fmt = self.format or ("delta" if _is_delta_path(spark, self.path) else "parquet")
            version = _path_version(spark, self.path) if fmt == "delta" else None
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
    """A feature view as a training set reads it: where, which features, the join's settings, the output columns."""

    name: str
    version: int
    features: list[str]
    join_keys: list[str]
    timestamp_field: str
    created_timestamp_field: str | None
    date_partition_field: str | None
    ttl_seconds: int | None
    columns: dict[str, str] = Field(default_factory=dict)
    inputs_only: list[str] = Field(default_factory=list)  # read for request feature views, not in the output

    written_when_set: ClassVar[tuple[str, ...]] = ("inputs_only",)

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
            inputs_only=self.inputs_only,
        )


class RequestViewRef(BaseModel):
    """A request feature view as a training set applied it: its inputs, the code it ran, the output columns."""

    name: str
    features: list[str]
    request: dict[str, str]  # field -> value type
    inputs: dict[str, list[str]]  # batch view -> features it takes
    function: str  # module:qualname
    code: str  # hash of the function's source (see featurelake.repo.definitions.function_fingerprint)
    columns: dict[str, str] = Field(default_factory=dict)


class Spec(BaseModel):
    """What was asked for, as given (``start``/``end``: optional UTC dates of the entity rows)."""

    service: str | None = None
    features: list[str] = Field(default_factory=list)
    entities: str
    event_timestamp_column: str = "event_timestamp"
    full_feature_names: bool = False
    start: dt.date | None = None
    end: dt.date | None = None


class RowCounts(BaseModel):
    entities: int
    output: int


class Manifest(BaseModel):
    """What a training set's rows depend on, enough to rebuild them exactly (see the module docstring)."""

    format: Literal[1] = MANIFEST_FORMAT
    name: str
    table: str
    table_version: int
    spec: Spec
    entity_source: EntitySource
    views: list[ViewRef]
    request_views: list[RequestViewRef] = Field(default_factory=list)
    registry_version: int | None
    rows: RowCounts
    code_version: dict[str, Any]
    created_at: dt.datetime
    rebuilt_from: str | None = None

    @model_serializer(mode="wrap")
    def _format_1(self, handler: Any) -> dict[str, Any]:
        """``request_views`` only when there are some: a manifest without them is written as format 1 wrote it."""
        out = handler(self)
        if not self.request_views:
            out.pop("request_views")
        return dict(out)

    @property
    def label(self) -> str:
        """``<name>@<created_at>``: which manifest this is (what a rebuild records as ``rebuilt_from``)."""
        return f"{self.name}@{self.created_at.isoformat().replace('+00:00', 'Z')}"

    def view(self, name: str) -> ViewRef | None:
        return next((v for v in self.views if v.name == name), None)

    def read_table(self, spark: SparkSession) -> DataFrame:
        """The training rows as written: the table ``VERSION AS OF`` the version the manifest records."""
        return spark.sql(f"SELECT * FROM {check_table_name(self.table)} VERSION AS OF {int(self.table_version)}")

    def save(self, spark: SparkSession, artifacts: ArtifactPath | None) -> None:
        """Append to ``training.manifests`` and, given the artifacts root, write its JSON to
        ``<artifacts>/manifests/<name>.json``."""
        text = json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)
        row = (self.name, self.spec.service, self.created_at, self.table_version, self.registry_version)
        append_rows(spark, MANIFESTS_TABLE, [(*row, self.rows.output, text)], MANIFESTS_SCHEMA)
        if artifacts is not None:
            manifest_file(artifacts, self.name).write_text(text + "\n")


def manifest_file(artifacts: ArtifactPath, name: str) -> ArtifactPath:
    """Where :meth:`Manifest.save` writes the JSON copy of training set ``name``'s manifest."""
    return artifacts / "manifests" / f"{name}.json"


def load_manifest(spark: SparkSession, ref: str | Path | Mapping[str, Any]) -> Manifest:
    """A manifest from a dict, a JSON file, or the latest one of a training set named in ``training.manifests``."""
    try:
        if isinstance(ref, Mapping):
            return Manifest.model_validate(ref)
        return Manifest.model_validate_json(_manifest_json(spark, str(ref)))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = f"not a featurelake training-set manifest (format {MANIFEST_FORMAT}): {where}: {error['msg']}"
        raise InputError(f"{'manifest' if isinstance(ref, Mapping) else ref}: {message}") from None


def _manifest_json(spark: SparkSession, ref: str) -> str:
    """The text of a manifest file (local, or ``s3a://`` read through Spark), or of the latest manifest of the
    training set named ``ref``."""
    if "://" in ref:
        from pyspark.errors import AnalysisException

        try:
            return str(single_row(spark.read.text(ref, wholetext=True))[0])
        except AnalysisException:  # PATH_NOT_FOUND
            raise InputError(f"manifest file {ref} does not exist") from None
    if Path(ref).suffix == ".json" or Path(ref).is_file():
        if not Path(ref).is_file():
            raise InputError(f"manifest file {ref} does not exist")
        return Path(ref).read_text()
    check_identifier(ref, "training set name")
    if not spark.catalog.tableExists(MANIFESTS_TABLE):
        raise InputError(f"no manifest for {ref!r}: {MANIFESTS_TABLE} does not exist")
    query = f"SELECT max_by(manifest_json, created_at) FROM {MANIFESTS_TABLE} WHERE name = '{ref}'"
    if (text := single_row(spark.sql(query))[0]) is None:
        raise InputError(f"no manifest for training set {ref!r} in {MANIFESTS_TABLE}")
    return str(text)


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


def _path_version(spark: SparkSession, path: str) -> int:
    """The newest Delta version of the table at ``path``, by SQL: the same on a notebook's Spark Connect session,
    where ``delta.tables.DeltaTable`` would need Delta's Connect plugin on the server."""
    quoted = "delta.`" + path.replace("`", "``") + "`"
    return int(single_row(spark.sql(f"DESCRIBE HISTORY {quoted} LIMIT 1").select("version"))[0])


def _is_delta_path(spark: SparkSession, path: str) -> bool:
    try:
        _path_version(spark, path)
    except Exception:  # noqa: BLE001 - an unreadable path is "not Delta"; reading it reports the real error
        return False
    return True
