"""Freshness of feature tables and the nightly pipeline's closing checks (online/offline consistency, freshness)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelake.config import Settings, parse_duration
from featurelake.errors import FeaturelakeError
from featurelake.tables import check_table_name, latest_commit, single_row, table_exists
from featurelake.validation.targets import view_target

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurelake.online.check import CheckResult
    from featurelake.repo import Repo
    from featurelake.repo.definitions import FeatureView


class ChecksFailed(FeaturelakeError):
    """A feature view is stale or its online values differ from the offline ones."""


@dataclass(frozen=True)
class Freshness:
    view: str
    table: str
    latest: dt.datetime | None  # latest feature timestamp at or before the check time
    required: dt.datetime  # check time minus the view's expected freshness (and the configured slack)

    @property
    def fresh(self) -> bool:
        return self.latest is not None and self.latest >= self.required

    def describe(self) -> str:
        state = "fresh" if self.fresh else "LATE"
        return f"{self.view}: {state}, latest {self.latest or 'none'} (needs >= {self.required}) in {self.table}"


def freshness(spark: SparkSession, settings: Settings, repo: Repo, as_of: dt.datetime) -> list[Freshness]:
    """Each view's latest feature timestamp known at ``as_of`` against its expected freshness."""
    slack = parse_duration(settings.validation.freshness_slack) or dt.timedelta(0)
    out = []
    for name, view in sorted(repo.views.items()):
        target = view_target(view, repo.join_keys(view))
        table = view.offline_table
        if table is None or target.freshness is None:
            continue
        required = as_of - target.freshness - slack
        out.append(Freshness(name, table, latest_timestamp(spark, view, as_of, fresh_after=required), required))
    return out


def latest_timestamp(
    spark: SparkSession, view: FeatureView, as_of: dt.datetime, *, fresh_after: dt.datetime | None = None
) -> dt.datetime | None:
    """The latest feature timestamp of ``view``'s offline table at or before ``as_of`` (None: no table or rows).
    Given ``fresh_after`` (the oldest timestamp that counts as fresh), the rows since it are read first: Delta
    skips the files before it by their statistics, so a fresh view costs its last days, not its history; the
    whole table is read only when none is there (a late view)."""
    from pyspark.sql import functions as F

    table = view.offline_table
    if table is None or not table_exists(spark, table):
        return None
    rows, ts = spark.table(check_table_name(table)), F.col(f"`{view.timestamp_field}`")
    if fresh_after is not None:
        latest = single_row(rows.where(ts.between(F.lit(fresh_after), F.lit(as_of))).agg(F.max(ts)))[0]
        if latest is not None:
            return latest
    return single_row(rows.where(ts <= F.lit(as_of)).agg(F.max(ts)))[0]


def online_consistency(
    spark: SparkSession, settings: Settings, repo: Repo, *, sample: int, views: list[str] | None = None
) -> list[CheckResult]:
    """Sampled online values against the offline point-in-time values, for every online view."""
    from featurelake.online.backends import open_store
    from featurelake.online.check import check_view
    from featurelake.online.materialize import online_views
    from featurelake.online.store import StoreConfig

    with open_store(StoreConfig.from_settings(settings)) as store:
        return [check_view(spark, repo, store, v.name, sample=sample) for v in online_views(repo, views)]


def pipeline_checks(
    spark: SparkSession, settings: Settings, repo: Repo, as_of: dt.datetime, *, sample: int
) -> tuple[list[Freshness], list[CheckResult]]:
    """Run both checks; raise ``ChecksFailed`` naming every late view and every view with mismatches."""
    fresh = freshness(spark, settings, repo, as_of)
    online = online_consistency(spark, settings, repo, sample=sample)
    problems = [f.describe() for f in fresh if not f.fresh]
    problems += [
        f"{c.view}: {c.mismatches} of {c.sampled} sampled keys differ online ({'; '.join(c.examples[:2])})"
        for c in online
        if c.mismatches
    ]
    if problems:
        raise ChecksFailed("pipeline checks failed:\n  " + "\n  ".join(problems))
    return fresh, online


@dataclass(frozen=True)
class TableStatus:
    table: str
    version: int | None  # latest Delta version (None for a view or a non-Delta table)
    last_write: dt.datetime | None
    latest_event: dt.datetime | None  # max of the view's timestamp field: how fresh the features are


def table_status(spark: SparkSession, view: FeatureView) -> TableStatus | None:
    """The offline table of ``view``, when it has been computed: latest Delta version and freshness."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    table = view.offline_table
    if not table or not spark.catalog.tableExists(table):
        return None
    try:
        commit = latest_commit(spark, table)
        version, last_write = commit.version, commit.timestamp
    except AnalysisException:  # a SQL view (e.g. a dbt staging model) has no Delta history
        version, last_write = None, None
    row = spark.table(table).agg(F.max(F.col(f"`{view.timestamp_field}`"))).first()
    latest = row[0] if row is not None else None
    return TableStatus(table, version, last_write, latest)
