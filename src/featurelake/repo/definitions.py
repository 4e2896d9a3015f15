"""Feature definitions as code: entities, sources, feature views (batch, and request feature views computed when
asked) and feature services; a domain's raw ingestion (with the raw tables it validates) and its named training sets.

Objects are immutable pydantic models; `features/<domain>/*.py` modules create them and
`featurelake.repo.load_repo` collects them. Names are checked to be safe SQL identifiers on creation;
cross-object checks (unknown entity, duplicate names, schema) live in `featurelake.repo`.

Offline layout. A view computed by featurelake (a PySpark transform or window aggregations) is written to
``features.<name>_v<version>`` with the columns: the entities' join keys, ``event_timestamp`` (when the value
became known), ``created_timestamp`` (when it was computed), ``event_date`` (UTC date partition) and the
features. A view whose source already holds the features (a dbt model or a Delta table) is read from that
source, with the source's timestamp columns.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from types import FrameType
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from featurelake.config import format_duration, parse_duration
from featurelake.runs import Interval

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}(\.[A-Za-z_][A-Za-z0-9_]{0,127})?$")

OFFLINE_TIMESTAMP = "event_timestamp"
OFFLINE_CREATED = "created_timestamp"
OFFLINE_DATE = "event_date"
OFFLINE_SOURCE_DATE = "source_date"  # transform views: the source partition a row came from (replaced per run)
FEATURES_DATABASE = "features"
RAW_DATABASE = "raw"


def _caller_location() -> str:
    import sys

    frame: FrameType | None = sys._getframe(1)
    while frame and (frame.f_code.co_filename == __file__ or "pydantic" in frame.f_code.co_filename):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame else "<unknown>"


@dataclass(frozen=True)
class ConstructionProblem:
    """A definition object that failed validation while problems were being collected."""

    location: str  # file:line of the call that built it
    kind: str
    name: str | None
    errors: tuple[str, ...]
    object_id: int

    def messages(self, location: str | None = None) -> list[str]:
        """One line per error: ``file:line: Kind 'name': field: message``."""
        what = f"{self.kind} {self.name!r}" if isinstance(self.name, str) else self.kind
        return [f"{location or self.location}: {what}: {e}" for e in self.errors]


_PROBLEMS: ContextVar[list[ConstructionProblem] | None] = ContextVar("featurelake_definition_problems", default=None)


@contextmanager
def collecting_problems() -> Iterator[list[ConstructionProblem]]:
    """Within this block, invalid definitions are recorded (not raised) and replaced by unvalidated stand-ins,
    so a module's later objects still load and every problem is reported at once."""
    token = _PROBLEMS.set([])
    try:
        yield _PROBLEMS.get()  # type: ignore[misc]
    finally:
        _PROBLEMS.reset(token)


def _format_error(err: Any) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc + ': ' if loc else ''}{err['msg'].removeprefix('Value error, ')}"


class _Collecting(BaseModel):
    """Base of every definition class: see :func:`collecting_problems`."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            sink = _PROBLEMS.get()
            if sink is None:
                raise
            stand_in = type(self).model_construct(**data)
            for attr in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"):
                object.__setattr__(self, attr, getattr(stand_in, attr))
            errors = tuple(_format_error(e) for e in exc.errors())
            name = data.get("name")
            sink.append(ConstructionProblem(_caller_location(), type(self).__name__, name, errors, id(self)))


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[dt.timedelta | None, BeforeValidator(parse_duration)]


def _check_identifier(value: str, what: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"{what} {value!r} is not a safe SQL identifier (letters, digits, _; no leading digit)")
    return value


class ValueType(StrEnum):
    """Feature value types and their Spark SQL spelling."""

    INT32 = "int"
    INT64 = "bigint"
    FLOAT = "float"
    DOUBLE = "double"
    STRING = "string"
    BOOL = "boolean"
    TIMESTAMP = "timestamp"
    DATE = "date"


class _Definition(_Collecting):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    description: str = ""
    owner: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    _defined_at: str = PrivateAttr(default="<unknown>")

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        return _check_identifier(v, f"{cls.__name__} name")

    def model_post_init(self, context: Any) -> None:
        self._defined_at = _caller_location()

    @property
    def defined_at(self) -> str:
        """``file:line`` of the code that created this object (for error messages)."""
        return self._defined_at


class Entity(_Definition):
    """A thing features describe, identified by one or several join keys (a composite key: origin + dest)."""

    join_keys: tuple[str, ...]

    @field_validator("join_keys", mode="before")
    @classmethod
    def _keys(cls, v: Any) -> Any:
        keys = (v,) if isinstance(v, str) else tuple(v)
        if not keys:
            raise ValueError("an entity needs at least one join key")
        if len(set(keys)) != len(keys):
            raise ValueError(f"join keys repeat: {list(keys)}")
        for k in keys:
            _check_identifier(k, "join key")
        return keys


class Source(_Definition):
    """Where rows come from, with their timestamp columns. Use one of the subclasses."""

    kind: str
    timestamp_column: str
    created_timestamp_column: str | None = None
    date_partition_column: str | None = None

    @field_validator("timestamp_column", "created_timestamp_column", "date_partition_column")
    @classmethod
    def _columns(cls, v: str | None) -> str | None:
        return None if v is None else _check_identifier(v, "column")


class DeltaTableSource(Source):
    """A Delta table registered in the catalog (``database.table``)."""

    kind: Literal["delta_table"] = "delta_table"
    table: str

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        if not TABLE_NAME.match(v):
            raise ValueError(f"table {v!r} is not a safe `database.table` name")
        return v


class DbtModelSource(Source):
    """A dbt model, by name; its relation is ``<schema>.<model>`` (schema from dbt_project.yml)."""

    kind: Literal["dbt_model"] = "dbt_model"
    model: str
    schema_: str = Field("features", alias="schema")

    @field_validator("model", "schema_")
    @classmethod
    def _ident(cls, v: str) -> str:
        return _check_identifier(v, "dbt model/schema")

    @property
    def table(self) -> str:
        return f"{self.schema_}.{self.model}"


class PathSource(Source):
    """Files at a path (Delta by default; parquet or csv)."""

    kind: Literal["path"] = "path"
    path: str
    format: Literal["delta", "parquet", "csv"] = "delta"


class StreamSource(Source):
    """Events on a Kafka topic, JSON objects with the declared ``fields``, that ``featurelake stream run`` lands in
    the Delta table ``table`` (partitioned by the UTC date of ``timestamp_column``, ``event_date``) before it
    computes the views over them. That table is the source the batch engine reads for the same views (backfills,
    recomputation, training sets), so the stream and the batch answer from the same events.

    Rows may also be pushed (``featurelake.push``, the feature server's ``POST /push``: Feast's push source): into
    ``table`` and, for the views whose features are the source's own fields, into the online store. Without a
    ``topic`` the source is a push source only.

    An event more than ``allowed_lateness`` behind the event time the earlier micro-batches reached (in every Kafka
    partition they read) goes to the dead-letter table (``monitoring.stream_dead_letters``) with the reason, as
    does one that is not a JSON object, lacks its timestamp or a key, or holds a value of the wrong type.
    """

    kind: Literal["stream"] = "stream"
    topic: str | None = None
    table: str
    fields: dict[str, ValueType]
    allowed_lateness: Duration = dt.timedelta(minutes=5)
    date_partition_column: str | None = OFFLINE_DATE

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", v):
            raise ValueError(f"topic {v!r} is not a Kafka topic name (letters, digits, '.', '_', '-')")
        return v

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        if not TABLE_NAME.match(v) or "." not in v:
            raise ValueError(f"table {v!r} is not a safe `database.table` name")
        return v

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: dict[str, ValueType]) -> dict[str, ValueType]:
        for name in v:
            _check_identifier(name, "field")
        return v

    @model_validator(mode="after")
    def _timestamp_is_a_field(self) -> StreamSource:
        if self.fields.get(self.timestamp_column) != ValueType.TIMESTAMP:
            raise ValueError(f"timestamp_column {self.timestamp_column!r} must be a field of type timestamp")
        if self.date_partition_column != OFFLINE_DATE:
            raise ValueError(f"a stream source's table is partitioned by {OFFLINE_DATE!r}")
        return self


class Feature(_Collecting):
    """A typed feature column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dtype: ValueType
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_identifier(v, "feature name")


AggregationFunction = Literal["count", "sum", "mean", "min", "max", "count_distinct"]


class Aggregation(_Collecting):
    """A windowed aggregate of a source column, one feature per window: ``<column>_<function>_<window>``.

    ``count`` counts non-null values of ``column``; ``name`` replaces ``<column>_<function>`` in the names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    function: AggregationFunction
    windows: tuple[Duration, ...]
    name: str | None = None

    @field_validator("column")
    @classmethod
    def _column(cls, v: str) -> str:
        return _check_identifier(v, "aggregation column")

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: tuple[dt.timedelta, ...]) -> tuple[dt.timedelta, ...]:
        if not v or any(w.total_seconds() <= 0 for w in v):
            raise ValueError("windows must be positive durations")
        return v

    def feature_name(self, window: dt.timedelta) -> str:
        return f"{self.name or f'{self.column}_{self.function}'}_{format_duration(window)}"

    @property
    def dtype(self) -> ValueType:
        return ValueType.INT64 if self.function in ("count", "count_distinct") else ValueType.DOUBLE

    def features(self) -> list[Feature]:
        return [Feature(name=self.feature_name(w), dtype=self.dtype) for w in self.windows]


class DbtComputation(_Collecting):
    """Features computed by a dbt model: the view's source is that model."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["dbt"] = "dbt"


class TransformComputation(_Collecting):
    """Features computed by a pure PySpark function ``(df, **params) -> DataFrame`` from the source rows.

    The function returns the join keys, ``event_timestamp`` and the features.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    kind: Literal["transform"] = "transform"
    function: Callable[..., Any]
    params: dict[str, Any] = Field(default_factory=dict)


class WindowComputation(_Collecting):
    """Declarative sliding-window aggregations over source events, from partial aggregates per tile.

    A value at ``event_timestamp`` t covers events with ``t - window <= ts < t``; values are emitted at
    every tile boundary, so the window slides by one tile.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["window"] = "window"
    aggregations: tuple[Aggregation, ...]
    tile: Duration = dt.timedelta(hours=1)

    @model_validator(mode="after")
    def _windows_are_tile_multiples(self) -> WindowComputation:
        tile_s = int(self.tile.total_seconds())
        if tile_s <= 0 or 86400 % tile_s:
            raise ValueError("tile must divide a day (e.g. '1h', '15m', '1d')")
        for agg in self.aggregations:
            for w in agg.windows:
                if int(w.total_seconds()) % tile_s:
                    raise ValueError(f"window {format_duration(w)} of {agg.column} is not a multiple of the tile")
        return self


Computation = DbtComputation | TransformComputation | WindowComputation


class DriftPolicy(_Collecting):
    """When a feature of a view counts as drifted, and whether the nightly report measures it.

    A feature drifted when its population stability index is at least ``psi_threshold`` and the two-sample
    Kolmogorov-Smirnov test rejects equal distributions at ``pvalue_threshold`` (a material and significant
    change). ``reference_days``: the nightly report compares each run's interval with the ``reference_days``
    days before it; None measures drift only on request (``featurelake drift``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    psi_threshold: float = Field(0.2, gt=0)
    pvalue_threshold: float = Field(0.01, gt=0, lt=1)
    reference_days: int | None = Field(None, ge=1)


class FeatureView(_Definition):
    """A versioned group of features about one or more entities, computed one way, with a ttl."""

    version: int = Field(1, ge=1)
    entities: tuple[str, ...]
    source: DeltaTableSource | DbtModelSource | PathSource | StreamSource
    features: tuple[Feature, ...] = ()
    computation: Computation | None = None
    ttl: OptionalDuration = None
    online: bool = True
    offline: bool = True
    batch_schedule: Duration = dt.timedelta(days=1)
    validation_policy: Literal["strict", "warn"] = "strict"
    expected_freshness: OptionalDuration = None
    drift: DriftPolicy = DriftPolicy()

    @field_validator("entities", mode="before")
    @classmethod
    def _entities(cls, v: Any) -> Any:
        names = tuple(e.name if isinstance(e, Entity) else e for e in ((v,) if isinstance(v, str | Entity) else v))
        if not names:
            raise ValueError("a feature view needs at least one entity")
        return names

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, v: dt.timedelta | None) -> dt.timedelta | None:
        if v is not None and v.total_seconds() <= 0:
            raise ValueError("ttl must be positive (or None for no lower bound)")
        return v

    @field_validator("batch_schedule", "expected_freshness")
    @classmethod
    def _positive(cls, v: dt.timedelta | None) -> dt.timedelta | None:
        if v is not None and v.total_seconds() <= 0:
            raise ValueError("must be a positive duration")
        return v

    @property
    def monitored_freshness(self) -> dt.timedelta:
        """How old the latest feature value may get before ``featurelake status`` calls the view late.

        ``expected_freshness`` when set, else twice ``batch_schedule`` (Tecton's default: one missed run is
        tolerated). The validation gate checks a batch against its own interval end with ``expected_freshness``
        or one ``batch_schedule`` instead (see ``featurelake.validation.targets``).
        """
        return self.expected_freshness or 2 * self.batch_schedule

    @model_validator(mode="after")
    def _features_present(self) -> FeatureView:
        if isinstance(self.computation, WindowComputation):
            if self.features:
                raise ValueError("a window-aggregation view derives its features from its aggregations")
            object.__setattr__(self, "features", tuple(f for a in self.computation.aggregations for f in a.features()))
        if not self.features:
            raise ValueError("a feature view needs at least one feature")
        return self

    def __getitem__(self, names: str | list[str]) -> FeatureSelection:
        """``view[["a", "b"]]``: a selection of this view's features, for a FeatureService."""
        return FeatureSelection(view=self.name, features=tuple([names] if isinstance(names, str) else names))

    def pin(self, version: int, features: list[str] | None = None) -> FeatureSelection:
        """Features of this view served at ``version`` whatever version is promoted (a model trained on it)."""
        return FeatureSelection(view=self.name, features=tuple(features or ()), version=version)

    @property
    def online_namespace(self) -> str:
        return online_namespace(self.name, self.version)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def is_materialized_by_featurelake(self) -> bool:
        """True when featurelake writes the offline table (transform or window views)."""
        return isinstance(self.computation, TransformComputation | WindowComputation)

    @property
    def offline_table(self) -> str | None:
        """The catalog table the offline store reads (None for a path source read directly)."""
        if self.is_materialized_by_featurelake:
            return f"{FEATURES_DATABASE}.{self.name}_v{self.version}"
        return getattr(self.source, "table", None)

    @property
    def timestamp_field(self) -> str:
        return OFFLINE_TIMESTAMP if self.is_materialized_by_featurelake else self.source.timestamp_column

    @property
    def created_timestamp_field(self) -> str | None:
        return OFFLINE_CREATED if self.is_materialized_by_featurelake else self.source.created_timestamp_column

    @property
    def date_partition_field(self) -> str | None:
        return OFFLINE_DATE if self.is_materialized_by_featurelake else self.source.date_partition_column


def online_namespace(view: str, version: int) -> str:
    """Where one version of a view lives in the online store: ``<view>.v<version>`` (versions side by side)."""
    return f"{view}.v{version}"


class FeatureSelection(_Collecting):
    """Some features of one view (all of them when ``features`` is empty), at a pinned ``version`` or (None) the
    version promoted online."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    view: str
    features: tuple[str, ...] = ()
    version: int | None = Field(None, ge=1)


class RequestFeatureView(_Definition):
    """Features computed when they are asked for, by a pure Python ``function(row) -> {feature: value}`` of
    request data and other views' features (Feast's on-demand feature view, Tecton's realtime feature view).

    ``row`` maps each ``request`` field (data the caller sends: a column of a training set's entity rows, a
    column of the feature server's ``entities`` or ``request_context``) and each feature of ``sources`` (by its
    name; None when not found or outside its ttl) to a Python value of its declared type: int, float, str, bool,
    datetime (UTC), date. The training-set join applies it to every entity row after the point-in-time join, the
    feature server to every requested entity after the store read: both through :meth:`compute`, so the same
    inputs give the same values. A value the function leaves out is None.
    """

    request: dict[str, ValueType] = Field(default_factory=dict)
    sources: tuple[FeatureSelection, ...] = ()
    features: tuple[Feature, ...]
    function: Callable[[dict[str, Any]], dict[str, Any]]

    @field_validator("request")
    @classmethod
    def _request_fields(cls, v: dict[str, ValueType]) -> dict[str, ValueType]:
        for name in v:
            _check_identifier(name, "request field")
        return v

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, v: Any) -> Any:
        items = (v,) if isinstance(v, FeatureView | FeatureSelection) else tuple(v)
        return tuple(FeatureSelection(view=i.name) if isinstance(i, FeatureView) else i for i in items)

    @model_validator(mode="after")
    def _inputs_and_outputs(self) -> RequestFeatureView:
        if not self.features:
            raise ValueError("a request feature view needs at least one feature")
        if not self.request and not self.sources:
            raise ValueError("a request feature view needs request fields, source features or both")
        if any(s.version is not None for s in self.sources):
            raise ValueError("sources are read at the version served: pin versions in the feature service instead")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def __getitem__(self, names: str | list[str]) -> FeatureSelection:
        """``view[["a", "b"]]``: a selection of this view's features, for a FeatureService."""
        return FeatureSelection(view=self.name, features=tuple([names] if isinstance(names, str) else names))

    def compute(self, row: dict[str, Any]) -> dict[str, Any]:
        """The function's features for one row of inputs, each as a value of its declared type (or None).

        Inputs are normalized first (:func:`python_value`), so callers that read them from Arrow, JSON or the
        online store pass the function the same values.
        """
        inputs = {name: python_value(value) for name, value in row.items()}
        try:
            out = self.function(inputs)
        except Exception as exc:
            raise RequestFeatureError(f"request feature view {self.name!r}: its function raised "
                                      f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
        if not isinstance(out, dict):
            raise RequestFeatureError(f"request feature view {self.name!r}: its function returned "
                                      f"{type(out).__name__}, not a dict of features")  # fmt: skip
        if unknown := sorted(set(out) - set(self.feature_names)):
            raise RequestFeatureError(f"request feature view {self.name!r}: its function returned undeclared "
                                      f"feature(s) {', '.join(unknown)}")  # fmt: skip
        return {f.name: typed_value(out.get(f.name), f.dtype, f"{self.name}:{f.name}") for f in self.features}


def function_ref(fn: Any) -> str:
    """``module:qualname`` of a definition's function."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def function_fingerprint(fn: Any) -> str:
    """A short hash of a function's source (of its bytecode and constants when the source cannot be read)."""
    import hashlib
    import inspect

    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = fn.__code__
        text = repr((code.co_code, code.co_consts, code.co_names))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RequestFeatureError(ValueError):
    """A request feature view's function failed or returned something it did not declare."""


def python_value(value: Any) -> Any:
    """One value as a request feature function sees it: datetimes UTC-aware, everything else as it is."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value


def typed_value(value: Any, dtype: ValueType, what: str) -> Any:
    """``value`` as the Python value of ``dtype`` (None stays None); a value of another kind raises
    RequestFeatureError naming ``what``. A bool is not a number; an int is a valid float."""
    if value is None:
        return None
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if dtype in (ValueType.INT32, ValueType.INT64) and isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if dtype in (ValueType.FLOAT, ValueType.DOUBLE) and numeric:
        return float(value)
    if dtype is ValueType.STRING and isinstance(value, str):
        return value
    if dtype is ValueType.BOOL and isinstance(value, bool):
        return value
    if dtype is ValueType.TIMESTAMP and isinstance(value, dt.datetime):
        return python_value(value)
    if dtype is ValueType.DATE and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise RequestFeatureError(f"{what}: {value!r} is not a {dtype.value}")


class FeatureService(_Definition):
    """The named set of features one model consumes (batch views' and request feature views' features)."""

    features: tuple[FeatureSelection, ...]

    @field_validator("features", mode="before")
    @classmethod
    def _selections(cls, v: Any) -> Any:
        out = []
        for item in v:
            if isinstance(item, FeatureView | RequestFeatureView):
                out.append(FeatureSelection(view=item.name))
            elif isinstance(item, str):  # "view" or "view:feature"
                view, _, feature = item.partition(":")
                out.append(FeatureSelection(view=view, features=(feature,) if feature else ()))
            else:
                out.append(item)
        if not out:
            raise ValueError("a feature service needs at least one feature view or feature")
        return out


@dataclass(frozen=True)
class IngestReport:
    """What one ingestion run landed over its interval: rows per raw table, and the rows it rejected."""

    run_id: str
    interval: Interval
    rows: dict[str, int]
    rejects: int


class RawTable(_Collecting):
    """A table in the ``raw`` database an ingestion lands, validated after each run by a suite generated from it
    (exactly these typed columns, keys and timestamp not null, unique keys, row count, freshness of a day) plus
    ``expectations/raw/<name>.py``; ``validation.raw_policy`` says whether a failure blocks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    columns: dict[str, ValueType]
    keys: tuple[str, ...]
    timestamp: str
    date_partition: str | None = None  # the date column a run's interval replaces (None: the table is rewritten)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_identifier(v, "raw table name")

    @field_validator("keys", "timestamp", "date_partition")
    @classmethod
    def _among_columns(cls, v: Any, info: ValidationInfo) -> Any:
        named = v if isinstance(v, tuple) else (v,) if v else ()
        if "columns" in info.data and (missing := [c for c in named if c not in info.data["columns"]]):
            raise ValueError(f"{', '.join(missing)} not among the columns")
        return v

    @property
    def table(self) -> str:
        return f"{RAW_DATABASE}.{self.name}"


class Ingestion(_Definition):
    """How a domain's raw data lands: ``function(spark, settings, interval) -> IngestReport`` writes its raw
    tables for the dates [start, end], idempotently; the ``raw_tables`` listed are validated after each run.

    Keep heavy imports (pyspark) inside the function: the Airflow DAGs load the feature repository when they parse.
    """

    function: Callable[..., IngestReport]
    raw_tables: tuple[RawTable, ...] = ()


class TrainingSet(_Definition):
    """A training set a team builds by name: a feature service's features, point-in-time, for entity rows (a
    table, a path or a SELECT with the join keys, ``event_timestamp`` and labels). The ``training_set`` DAG's
    form starts from the first one (by name); ``featurelake run-demo`` builds each."""

    service: str
    entities: str
    full_feature_names: bool = False

    @field_validator("service", mode="before")
    @classmethod
    def _service_name(cls, v: Any) -> Any:
        return v.name if isinstance(v, FeatureService) else v
