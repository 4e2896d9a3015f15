"""Training sets over the registry: resolve features, check inputs, join, write ``training.<name>`` + a manifest.

:func:`rebuild` reads every source ``VERSION AS OF`` the version its manifest pins, so it reproduces the same rows
after new data landed (within the Delta log retention, see conf/base.yaml); an entity source given as SQL is
re-run as written: pin its tables with ``VERSION AS OF`` in the SQL for an exact rebuild.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurelake import progress
from featurelake.errors import FeaturelakeError, InputError
from featurelake.offline.manifest import (
    EntitySource,
    Manifest,
    RequestViewRef,
    RowCounts,
    Spec,
    ViewRef,
    load_manifest,
)
from featurelake.offline.pit import output_names, point_in_time_join
from featurelake.offline.request_features import (
    apply_request_views,
    check_request_fields,
    definitions_for,
    output_columns,
    request_view_refs,
)
from featurelake.registry import registry_version
from featurelake.tables import check_identifier, overwrite_where

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from featurelake.artifacts import ArtifactPath
    from featurelake.repo import Repo
    from featurelake.repo.definitions import RequestFeatureView

TRAINING_DATABASE = "training"
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_SQL = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


def code_version(root: Path | None = None) -> dict[str, Any]:
    """The package version and, when run from a git checkout, its commit (and whether the tree has changes)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package: str | None = version("featurelake")
    except PackageNotFoundError:
        package = None
    cwd = root or Path(__file__).resolve().parent
    commit = _git(cwd, "rev-parse", "HEAD")
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {"package": package, "git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _git(cwd: Path, *args: str) -> str | None:
    """The output of ``git *args`` in ``cwd``; None when git is missing or fails (not a checkout)."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


# ------------------------------------------------------------------------------------------------ inputs


def entity_source_ref(spark: SparkSession, source: str) -> EntitySource:
    """Classify ``--entities``: SQL (SELECT/WITH ...), a catalog table, or a path (Delta, else parquet)."""
    if _SQL.match(source):
        return EntitySource(kind="sql", sql=source)
    if _TABLE.match(source) and not Path(source).exists():
        if not spark.catalog.tableExists(source):
            raise InputError(f"entity source {source!r}: no such table (give a table, a path or a SELECT query)")
        return EntitySource(kind="table", table=source)
    if "://" in source or Path(source).exists():
        return EntitySource(kind="path", path=source if "://" in source else str(Path(source).resolve()))
    raise InputError(f"entity source {source!r}: no such table or path (give a table, a path or a SELECT query)")


# ------------------------------------------------------------------------------------------------ checks


def check_entities(entity_df: DataFrame, views: list[ViewRef], ts_col: str, source: str) -> None:
    """Join keys and a non-null timestamp column of type timestamp, else InputError naming the problem."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    cols = {f.name: f.dataType for f in entity_df.schema.fields}
    if ts_col not in cols:
        raise InputError(f"entity source {source}: no timestamp column {ts_col!r} (columns: {', '.join(cols)})")
    if not isinstance(cols[ts_col], T.TimestampType):
        raise InputError(
            f"entity source {source}: column {ts_col!r} is {cols[ts_col].simpleString()}, expected timestamp "
            "(an instant; cast strings with to_timestamp and an explicit zone)"
        )
    for v in views:
        if missing := [k for k in v.join_keys if k not in cols]:
            raise InputError(f"entity source {source}: missing join key(s) {missing} of feature view {v.name!r}")
    nulls = entity_df.where(F.col(ts_col).isNull()).limit(1).count()
    if nulls:
        raise InputError(f"entity source {source}: column {ts_col!r} has null timestamps")


def view_refs(
    repo: Repo, service: str | None, features: list[str] | None
) -> tuple[list[ViewRef], list[RequestViewRef]]:
    """The batch views to join and the request feature views to apply, as manifest entries (before pinning
    versions)."""
    try:
        reads = repo.reads_for(service, features)
    except FeaturelakeError as exc:
        raise InputError(str(exc)) from None
    out = []
    for sel in reads.reads:
        view = repo.view(sel.view)
        location = (
            {"table": view.offline_table}
            if view.offline_table
            else {"path": view.source.path, "format": view.source.format}  # type: ignore[union-attr]
        )
        out.append(
            ViewRef(
                name=view.name,
                version=view.version,
                **location,
                features=list(sel.features),
                join_keys=repo.join_keys(view),
                timestamp_field=view.timestamp_field,
                created_timestamp_field=view.created_timestamp_field,
                date_partition_field=view.date_partition_field,
                ttl_seconds=int(view.ttl.total_seconds()) if view.ttl else None,
                inputs_only=list(reads.inputs_only.get(view.name, ())),
            )
        )
    return out, request_view_refs(reads)


# ------------------------------------------------------------------------------------------------ build


def build_training_set(
    spark: SparkSession,
    repo: Repo,
    *,
    name: str,
    entities: str,
    service: str | None = None,
    features: list[str] | None = None,
    overwrite: bool = False,
    full_feature_names: bool = False,
    event_timestamp_column: str = "event_timestamp",
    start: dt.date | None = None,
    end: dt.date | None = None,
    artifacts: ArtifactPath | None = None,
) -> Manifest:
    """Check every input, then write ``training.<name>`` and its manifest; return the manifest.

    ``start``/``end`` (inclusive UTC dates) keep only the entity rows whose event timestamp falls in them.

    Nothing is written when a check fails (unknown service or feature, missing feature table, entity source
    without a join key or timestamp, bad or null timestamps, unsafe name, existing output without overwrite).
    """
    check_identifier(name, "training set name")
    check_identifier(event_timestamp_column, "event timestamp column")
    if start and end and start > end:
        raise InputError(f"training set time range: start {start} is after end {end}")
    target = f"{TRAINING_DATABASE}.{name}"
    if spark.catalog.tableExists(target) and not overwrite:
        raise InputError(f"training set {target} exists (use --overwrite to replace it)")
    views, request_views = view_refs(repo, service, features)
    for v in views:
        if v.table is not None and not spark.catalog.tableExists(v.table):
            raise InputError(f"feature table {v.table} of view {v.name!r} does not exist: compute it first")
    spec = Spec(
        service=service,
        features=list(features or []),
        entities=entities,
        event_timestamp_column=event_timestamp_column,
        full_feature_names=full_feature_names,
        start=start,
        end=end,
    )
    entity_source = entity_source_ref(spark, entities).pinned(spark)
    pinned = [v.pinned(spark) for v in views]
    definitions = definitions_for(repo, request_views)
    return _run(spark, name, spec, entity_source, pinned, request_views, definitions, artifacts=artifacts)


def in_time_range(entity_df: DataFrame, spec: Spec) -> DataFrame:
    """The entity rows whose event timestamp's UTC date is within the spec's optional [start, end]."""
    from pyspark.sql import functions as F

    ts = F.col(f"`{spec.event_timestamp_column}`")
    if spec.start:
        start = dt.datetime.combine(spec.start, dt.time())
        entity_df = entity_df.where(F.unix_micros(ts) >= F.lit(_micros(start)))
    if spec.end:
        after = dt.datetime.combine(spec.end + dt.timedelta(days=1), dt.time())
        entity_df = entity_df.where(F.unix_micros(ts) < F.lit(_micros(after)))
    return entity_df


def _micros(naive_utc: dt.datetime) -> int:
    return (naive_utc - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


def _run(
    spark: SparkSession,
    name: str,
    spec: Spec,
    entity_source: EntitySource,
    views: list[ViewRef],
    request_views: list[RequestViewRef],
    definitions: dict[str, RequestFeatureView],
    *,
    artifacts: ArtifactPath | None,
    rebuilt_from: str | None = None,
) -> Manifest:
    ts_col = spec.event_timestamp_column
    entity_df = in_time_range(entity_source.read(spark), spec)
    source = spec.entities if entity_source.kind != "sql" else "(SQL)"
    check_entities(entity_df, views, ts_col, source)
    check_request_fields(entity_df, request_views, source)
    inputs = [v.to_input(spark) for v in views]
    names = output_names(inputs, entity_df.columns, spec.full_feature_names)  # collisions: before any work
    views = [v.model_copy(update={"columns": {f: n[f] for f in v.features}}) for v, n in zip(views, names, strict=True)]
    taken = {c.lower(): "an entity column" for c in entity_df.columns}
    taken |= {c.lower(): f"feature {c!r} of view {v.name!r}" for v in views for c in v.columns.values()}
    request_views = output_columns(request_views, taken, spec.full_feature_names)
    created_at = dt.datetime.now(dt.UTC)
    step = progress.step(f"{TRAINING_DATABASE}.{name}: point-in-time join of {len(views)} views, write")
    out = point_in_time_join(
        entity_df, inputs, event_timestamp_column=ts_col, full_feature_names=spec.full_feature_names
    )
    out = apply_request_views(out, views, request_views, definitions)
    commit = overwrite_where(out, f"{TRAINING_DATABASE}.{name}", None)
    rows = commit.rows_written
    if rows is None:
        rows = spark.table(f"{TRAINING_DATABASE}.{name}").count()
    step.done(rows)
    manifest = Manifest(
        name=name,
        table=f"{TRAINING_DATABASE}.{name}",
        table_version=commit.version,
        spec=spec,
        entity_source=entity_source,
        views=views,
        request_views=request_views,
        registry_version=registry_version(spark),
        rows=RowCounts(entities=entity_df.count(), output=rows),
        code_version=code_version(),
        created_at=created_at,
        rebuilt_from=rebuilt_from,
    )
    manifest.save(spark, artifacts)
    return manifest


def rebuild(
    spark: SparkSession,
    manifest: str | Path | dict[str, Any],
    *,
    name: str | None = None,
    artifacts: ArtifactPath | None = None,
    repo: Repo | None = None,
) -> Manifest:
    """Reproduce a training set from its manifest into ``training.<name>`` (default: its own name); new manifest.

    A manifest that applied request feature views needs ``repo``, whose functions must be the ones it ran."""
    data = load_manifest(spark, manifest)
    target = check_identifier(name or data.name, "training set name")
    definitions = definitions_for(repo, data.request_views)
    return _run(
        spark,
        target,
        data.spec,
        data.entity_source,
        data.views,
        data.request_views,
        definitions,
        artifacts=artifacts,
        rebuilt_from=data.label,
    )
