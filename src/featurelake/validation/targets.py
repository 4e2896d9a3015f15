"""What a suite validates: a feature view's offline table or a raw table, described from its definition."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from featurelake.errors import FeaturelakeError
from featurelake.repo.definitions import (
    OFFLINE_SOURCE_DATE,
    RAW_DATABASE,
    FeatureView,
    RawTable,
    TransformComputation,
    ValueType,
    WindowComputation,
)

AUDIT_DATABASE = "staging"
RAW_PREFIX = f"{RAW_DATABASE}."


@dataclass(frozen=True)
class Target:
    """A table to validate and the facts its generated expectations come from."""

    name: str  # feature view name, or raw.<table>
    kind: Literal["feature_view", "raw_table"]
    table: str
    keys: tuple[str, ...]
    timestamp: str
    date_partition: str | None
    columns: dict[str, ValueType | None]  # expected columns -> type (None: not checked)
    exact_columns: bool  # True: no other columns allowed
    policy: Literal["strict", "warn"]
    freshness: dt.timedelta | None  # latest timestamp >= interval end - freshness (None: not checked)
    non_negative: tuple[str, ...] = ()  # counts
    not_null: tuple[str, ...] = field(default=())  # keys, timestamps and partition
    version: int | None = None

    @property
    def suite_name(self) -> str:
        return self.name

    @property
    def module_path(self) -> tuple[str, str]:
        """(folder, module) of this target's hand-written expectations under expectations/."""
        if self.kind == "raw_table":
            return "raw", self.name.removeprefix(RAW_PREFIX)
        return "feature_views", self.name

    @property
    def audit_table(self) -> str:
        """Where the gate stages a candidate batch before it is validated and published."""
        suffix = f"_v{self.version}" if self.version is not None else ""
        return f"{AUDIT_DATABASE}.{self.name.replace('.', '_')}{suffix}__audit"


def view_target(view: FeatureView, keys: list[str]) -> Target:
    """The target of a feature view's offline table (``keys``: ``Repo.join_keys(view)``)."""
    if view.offline_table is None:
        raise FeaturelakeError(f"feature view {view.name!r} has no catalog table to validate (a path source)")
    ts, created, part = view.timestamp_field, view.created_timestamp_field, view.date_partition_field
    columns: dict[str, ValueType | None] = dict.fromkeys(keys)
    columns[ts] = ValueType.TIMESTAMP
    if created:
        columns[created] = ValueType.TIMESTAMP
    if part:
        columns[part] = ValueType.DATE
    columns.update({f.name: f.dtype for f in view.features})
    interval_column = part  # the column a run's data interval is replaced by
    if isinstance(view.computation, TransformComputation):
        columns[OFFLINE_SOURCE_DATE] = ValueType.DATE
        interval_column = OFFLINE_SOURCE_DATE
    non_negative: tuple[str, ...] = ()
    if isinstance(view.computation, WindowComputation):
        non_negative = tuple(
            a.feature_name(w)
            for a in view.computation.aggregations
            if a.function in ("count", "count_distinct")
            for w in a.windows
        )
    return Target(
        name=view.name,
        kind="feature_view",
        table=view.offline_table,
        keys=tuple(keys),
        timestamp=ts,
        date_partition=interval_column,
        columns=columns,
        exact_columns=view.is_materialized_by_featurelake,
        policy=view.validation_policy,
        freshness=(view.expected_freshness or view.batch_schedule) if part else None,
        non_negative=non_negative,
        not_null=tuple(dict.fromkeys([*keys, ts, *(c for c in (created, part) if c)])),
        version=view.version,
    )


def raw_target(raw: RawTable, policy: Literal["strict", "warn"] = "strict") -> Target:
    """The target of a raw table an ingestion lands (``Repo.raw_table(name)``), validated under ``policy``."""
    return Target(
        name=raw.table,
        kind="raw_table",
        table=raw.table,
        keys=raw.keys,
        timestamp=raw.timestamp,
        date_partition=raw.date_partition,
        columns=dict(raw.columns),
        exact_columns=True,
        policy=policy,
        freshness=dt.timedelta(days=1),
        not_null=tuple(dict.fromkeys([*raw.keys, raw.timestamp, raw.date_partition or raw.keys[0]])),
    )
