"""Training sets over the registry: resolve features, check inputs, join, write ``training.<name>`` + a manifest.

The manifest pins everything the rows depend on: the spec (service, features, entity source), the registry
version, each feature table with the Delta version read and the view settings used (keys, timestamps, ttl),
row counts, the code version and the creation time. It is appended to the Delta table ``training.manifests``
and written to ``<state_dir>/manifests/<name>.json``. :func:`rebuild` reads every table ``VERSION AS OF`` the
recorded version, so it reproduces the same rows after new feature data landed (within the Delta log
retention, see conf/base.yaml). An entity source given as SQL is re-run as written: pin its tables with
``VERSION AS OF`` in the SQL for an exact rebuild.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurelake import progress
from featurelake.errors import FeaturelakeError, InputError
from featurelake.offline.pit import ViewInput, output_names, point_in_time_join
from featurelake.registry import registry_version
from featurelake.repo.lineage import TrainingSetRef
from featurelake.tables import (
    append_rows,
    check_identifier,
    check_table_name,
    latest_commit,
    overwrite_where,
    single_row,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from featurelake.repo import Repo

TRAINING_DATABASE = "training"
MANIFESTS_TABLE = "training.manifests"
MANIFEST_FORMAT = 1
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_SQL = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


def code_version(root: Path | None = None) -> dict[str, Any]:
    """The package version and, when run from a git checkout, its commit (and whether the tree has changes)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        out: dict[str, Any] = {"package": version("featurelake")}
    except PackageNotFoundError:
        out = {"package": None}
    cwd = str(root or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {**out, "git_commit": None}
    ok = commit.returncode == 0
    return {
        **out,
        "git_commit": commit.stdout.strip() if ok else None,
        "git_dirty": bool(status.stdout.strip()) if ok and status.returncode == 0 else None,
    }


# ------------------------------------------------------------------------------------------------ reading


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


def pin_source(spark: SparkSession, ref: dict[str, Any]) -> dict[str, Any]:
    """``ref`` ({"table"} / {"path", "format"} / {"sql"}) with the Delta version to read now (when Delta)."""
    ref = dict(ref)
    if "table" in ref:
        ref["delta_version"] = (
            latest_commit(spark, ref["table"]).version if _is_delta_table(spark, ref["table"]) else None
        )
    elif "path" in ref:
        fmt = ref.get("format") or ("delta" if _is_delta_path(spark, ref["path"]) else "parquet")
        ref["format"] = fmt
        ref["delta_version"] = _delta_version_of_path(spark, ref["path"]) if fmt == "delta" else None
    return ref


def read_source(spark: SparkSession, ref: dict[str, Any]) -> DataFrame:
    """The rows of a pinned source, ``VERSION AS OF`` its recorded Delta version."""
    version = ref.get("delta_version")
    if "table" in ref:
        quoted = check_table_name(ref["table"])
        return spark.sql(f"SELECT * FROM {quoted}" + (f" VERSION AS OF {int(version)}" if version is not None else ""))
    if "path" in ref:
        reader = spark.read.format(ref["format"])
        if version is not None:
            reader = reader.option("versionAsOf", int(version))
        if ref["format"] == "csv":
            reader = reader.option("header", "true").option("inferSchema", "true")
        return reader.load(ref["path"])
    return spark.sql(ref["sql"])


def entity_source_ref(spark: SparkSession, source: str) -> dict[str, Any]:
    """Classify ``--entities``: SQL (SELECT/WITH ...), a catalog table, or a path (Delta, else parquet)."""
    if _SQL.match(source):
        return {"kind": "sql", "sql": source}
    if _TABLE.match(source) and not Path(source).exists():
        if not spark.catalog.tableExists(source):
            raise InputError(f"entity source {source!r}: no such table (give a table, a path or a SELECT query)")
        return {"kind": "table", "table": source}
    if "://" in source or Path(source).exists():
        return {"kind": "path", "path": source if "://" in source else str(Path(source).resolve())}
    raise InputError(f"entity source {source!r}: no such table or path (give a table, a path or a SELECT query)")


# ------------------------------------------------------------------------------------------------ checks


def check_entities(entity_df: DataFrame, views: list[dict[str, Any]], ts_col: str, source: str) -> None:
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
        if missing := [k for k in v["join_keys"] if k not in cols]:
            raise InputError(f"entity source {source}: missing join key(s) {missing} of feature view {v['name']!r}")
    nulls = entity_df.where(F.col(ts_col).isNull()).limit(1).count()
    if nulls:
        raise InputError(f"entity source {source}: column {ts_col!r} has null timestamps")


def view_refs(repo: Repo, service: str | None, features: list[str] | None) -> list[dict[str, Any]]:
    """The views and features requested, as manifest entries (before pinning versions)."""
    try:
        selections = repo.selections_for(service, features)
    except FeaturelakeError as exc:
        raise InputError(str(exc)) from None
    out = []
    for sel in selections:
        view = repo.view(sel.view)
        src = view.source
        if view.offline_table:
            ref: dict[str, Any] = {"table": view.offline_table}
        else:
            ref = {"path": src.path, "format": src.format}  # type: ignore[union-attr]
        out.append(
            {
                "name": view.name,
                "version": view.version,
                **ref,
                "features": list(sel.features),
                "join_keys": repo.join_keys(view),
                "timestamp_field": view.timestamp_field,
                "created_timestamp_field": view.created_timestamp_field,
                "date_partition_field": view.date_partition_field,
                "ttl_seconds": int(view.ttl.total_seconds()) if view.ttl else None,
            }
        )
    return out


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


def _view_inputs(spark: SparkSession, views: list[dict[str, Any]]) -> list[ViewInput]:
    return [
        ViewInput(
            name=v["name"],
            df=read_source(spark, v),
            join_keys=v["join_keys"],
            features=v["features"],
            timestamp_field=v["timestamp_field"],
            created_timestamp_field=v["created_timestamp_field"],
            date_partition_field=v["date_partition_field"],
            ttl=dt.timedelta(seconds=v["ttl_seconds"]) if v["ttl_seconds"] else None,
        )
        for v in views
    ]


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
    state_dir: Path | None = None,
) -> dict[str, Any]:
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
    views = view_refs(repo, service, features)
    for v in views:
        if "table" in v and not spark.catalog.tableExists(v["table"]):
            raise InputError(f"feature table {v['table']} of view {v['name']!r} does not exist: compute it first")
    entity_ref = entity_source_ref(spark, entities)
    spec = {
        "service": service,
        "features": list(features or []),
        "entities": entities,
        "event_timestamp_column": event_timestamp_column,
        "full_feature_names": full_feature_names,
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
    }
    return _run(
        spark, name, spec, pin_source(spark, entity_ref), [pin_source(spark, v) for v in views], state_dir=state_dir
    )


def in_time_range(entity_df: DataFrame, spec: dict[str, Any]) -> DataFrame:
    """The entity rows whose event timestamp's UTC date is within the spec's optional [start, end]."""
    from pyspark.sql import functions as F

    ts = F.col(f"`{spec['event_timestamp_column']}`")
    if spec.get("start"):
        start = dt.datetime.combine(dt.date.fromisoformat(spec["start"]), dt.time())
        entity_df = entity_df.where(F.unix_micros(ts) >= F.lit(_micros(start)))
    if spec.get("end"):
        after = dt.datetime.combine(dt.date.fromisoformat(spec["end"]) + dt.timedelta(days=1), dt.time())
        entity_df = entity_df.where(F.unix_micros(ts) < F.lit(_micros(after)))
    return entity_df


def _micros(naive_utc: dt.datetime) -> int:
    return (naive_utc - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


def _run(
    spark: SparkSession,
    name: str,
    spec: dict[str, Any],
    entity_ref: dict[str, Any],
    views: list[dict[str, Any]],
    *,
    state_dir: Path | None,
    rebuilt_from: str | None = None,
) -> dict[str, Any]:
    ts_col = spec["event_timestamp_column"]
    entity_df = in_time_range(read_source(spark, entity_ref), spec)
    check_entities(entity_df, views, ts_col, spec["entities"] if entity_ref["kind"] != "sql" else "(SQL)")
    inputs = _view_inputs(spark, views)
    names = output_names(inputs, entity_df.columns, spec["full_feature_names"])  # collisions: before any work
    created_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    step = progress.step(f"{TRAINING_DATABASE}.{name}: point-in-time join of {len(views)} views, write")
    out = point_in_time_join(
        entity_df, inputs, event_timestamp_column=ts_col, full_feature_names=spec["full_feature_names"]
    )
    commit = overwrite_where(out, f"{TRAINING_DATABASE}.{name}", None)
    rows = commit.rows_written
    if rows is None:
        rows = spark.table(f"{TRAINING_DATABASE}.{name}").count()
    step.done(rows)
    entity_rows = entity_df.count()
    for v, n in zip(views, names, strict=True):
        v["columns"] = n
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "table": f"{TRAINING_DATABASE}.{name}",
        "table_version": commit.version,
        "spec": spec,
        "entity_source": entity_ref,
        "views": views,
        "registry_version": registry_version(spark),
        "rows": {"entities": entity_rows, "output": rows},
        "code_version": code_version(),
        "created_at": created_at.isoformat() + "Z",
        "rebuilt_from": rebuilt_from,
    }
    save_manifest(spark, manifest, state_dir)
    return manifest


def save_manifest(spark: SparkSession, manifest: dict[str, Any], state_dir: Path | None) -> None:
    """Append the manifest to ``training.manifests`` and write ``<state_dir>/manifests/<name>.json``."""
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
    created = dt.datetime.fromisoformat(manifest["created_at"].removesuffix("Z")).replace(tzinfo=dt.UTC)
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    row = (
        manifest["name"],
        manifest["spec"]["service"],
        created,
        manifest["table_version"],
        manifest["registry_version"],
        manifest["rows"]["output"],
        text,
    )
    append_rows(spark, MANIFESTS_TABLE, [row], schema)
    if state_dir is not None:
        folder = Path(state_dir) / "manifests"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{manifest['name']}.json").write_text(text + "\n")


def load_manifest(spark: SparkSession, ref: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A manifest from a dict, a JSON file, or the latest one of a training set named in ``training.manifests``."""
    if isinstance(ref, dict):
        return ref
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
        row = spark.sql(f"SELECT max_by(manifest_json, created_at) FROM {MANIFESTS_TABLE} WHERE name = '{ref}'").first()
        if row is None or row[0] is None:
            raise InputError(f"no manifest for training set {ref!r} in {MANIFESTS_TABLE}")
        data = json.loads(row[0])
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or "views" not in data:
        raise InputError(f"{ref}: not a featurelake training-set manifest (format {MANIFEST_FORMAT})")
    return data


def rebuild_frame(spark: SparkSession, manifest: dict[str, Any]) -> DataFrame:
    """The training rows of ``manifest``, from every source ``VERSION AS OF`` its recorded version (not written)."""
    spec = manifest["spec"]
    inputs = _view_inputs(spark, manifest["views"])
    return point_in_time_join(
        in_time_range(read_source(spark, manifest["entity_source"]), spec),
        inputs,
        event_timestamp_column=spec["event_timestamp_column"],
        full_feature_names=spec["full_feature_names"],
    )


def rebuild(
    spark: SparkSession,
    manifest: str | Path | dict[str, Any],
    *,
    name: str | None = None,
    state_dir: Path | None = None,
) -> dict[str, Any]:
    """Reproduce a training set from its manifest into ``training.<name>`` (default: its own name); new manifest."""
    data = load_manifest(spark, manifest)
    target = check_identifier(name or data["name"], "training set name")
    views = [dict(v) for v in data["views"]]
    for v in views:
        v.pop("columns", None)
    return _run(
        spark,
        target,
        data["spec"],
        data["entity_source"],
        views,
        state_dir=state_dir,
        rebuilt_from=f"{data['name']}@{data['created_at']}",
    )
