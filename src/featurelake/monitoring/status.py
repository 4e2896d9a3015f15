"""Per view: is it fresh, late or failing? (``featurelake status``; Tecton's freshness and failure alerts.)

Fresh: the latest feature timestamp at or before the as-of time is within the view's monitored freshness
(``FeatureView.monitored_freshness``: ``expected_freshness``, else twice ``batch_schedule``) plus the
configured ``validation.freshness_slack``. Failing: the latest validation run of the view (a gate or a check,
``monitoring.validation_results``) failed, or the latest run that wrote its table (``monitoring.runs``) did not
succeed. A view without a date partition and without ``expected_freshness`` is static (never late).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelake.config import Settings, parse_duration
from featurelake.monitoring.checks import latest_timestamp
from featurelake.repo.definitions import FeatureView
from featurelake.runs import RUNS_TABLE
from featurelake.tables import table_exists
from featurelake.validation.results import RESULTS_TABLE

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurelake.repo import Repo


@dataclass(frozen=True)
class LastRun:
    """The latest run that wrote a table, and the latest successful one."""

    status: str
    at: dt.datetime
    last_success_at: dt.datetime | None


@dataclass(frozen=True)
class LastValidation:
    """The latest validation run of a view."""

    success: bool
    published: bool
    mode: str
    at: dt.datetime
    interval_start: dt.date | None
    interval_end: dt.date | None


@dataclass(frozen=True)
class ViewStatus:
    view: str
    table: str | None
    policy: str
    expected_freshness: dt.timedelta | None  # None: a static view (freshness not monitored)
    as_of: dt.datetime
    latest: dt.datetime | None
    last_run: LastRun | None
    last_validation: LastValidation | None

    @property
    def required(self) -> dt.datetime | None:
        """The oldest latest-timestamp that still counts as fresh."""
        return None if self.expected_freshness is None else self.as_of - self.expected_freshness

    @property
    def late(self) -> bool:
        required = self.required
        return required is not None and (self.latest is None or self.latest < required)

    @property
    def failing(self) -> bool:
        validation_failed = self.last_validation is not None and not self.last_validation.success
        return validation_failed or (self.last_run is not None and self.last_run.status != "success")

    @property
    def state(self) -> str:
        """``failing``, ``late``, ``fresh`` or ``static`` (in that order of precedence)."""
        if self.failing:
            return "failing"
        if self.late:
            return "late"
        return "static" if self.expected_freshness is None else "fresh"

    @property
    def alerting(self) -> bool:
        """True when this view makes ``featurelake status`` fail: a strict view that is late or failing."""
        return self.policy == "strict" and (self.late or self.failing)


def last_runs(spark: SparkSession) -> dict[str, LastRun]:
    """Per written table, its latest run's status and time and its latest successful run's time."""
    from pyspark.sql import functions as F

    if not table_exists(spark, RUNS_TABLE):
        return {}
    rows = (
        spark.table(RUNS_TABLE)
        .groupBy("target")
        .agg(
            F.max_by("status", "started_at").alias("status"),
            F.max("started_at").alias("at"),
            F.max(F.when(F.col("status") == "success", F.col("started_at"))).alias("ok"),
        )
        .collect()
    )
    return {r["target"]: LastRun(r["status"], r["at"], r["ok"]) for r in rows}


def last_validations(spark: SparkSession) -> dict[str, LastValidation]:
    """Per validation target (view name), its latest run's outcome."""
    from pyspark.sql import functions as F

    if not table_exists(spark, RESULTS_TABLE):
        return {}
    latest = F.max_by(
        F.struct("run_success", "published", "mode", "validated_at", "interval_start", "interval_end"),
        "validated_at",
    )
    rows = spark.table(RESULTS_TABLE).groupBy("target").agg(latest.alias("v")).collect()
    return {
        r["target"]: LastValidation(
            r["v"]["run_success"],
            r["v"]["published"],
            r["v"]["mode"],
            r["v"]["validated_at"],
            r["v"]["interval_start"],
            r["v"]["interval_end"],
        )
        for r in rows
    }


def monitored_freshness(view: FeatureView, settings: Settings) -> dt.timedelta | None:
    """How old the latest value may be (plus the configured slack); None for a static view."""
    if view.date_partition_field is None and view.expected_freshness is None:
        return None
    slack = parse_duration(settings.validation.freshness_slack) or dt.timedelta(0)
    return view.monitored_freshness + slack


def view_statuses(spark: SparkSession, settings: Settings, repo: Repo, as_of: dt.datetime) -> list[ViewStatus]:
    """The status of every view of ``repo`` at ``as_of`` (naive UTC), sorted by name."""
    runs, validations = last_runs(spark), last_validations(spark)
    out = []
    for name, view in sorted(repo.views.items()):
        table, freshness = view.offline_table, monitored_freshness(view, settings)
        fresh_after = None if freshness is None else as_of - freshness
        out.append(
            ViewStatus(
                view=name,
                table=table,
                policy=view.validation_policy,
                expected_freshness=freshness,
                as_of=as_of,
                latest=latest_timestamp(spark, view, as_of, fresh_after=fresh_after),
                last_run=runs.get(table) if table else None,
                last_validation=validations.get(name),
            )
        )
    return out
