"""The dbt engine: ``dbt build`` in this process, on this process's SparkSession, its feature views published
through their gates.

dbt-spark's ``session`` method builds its session with ``SparkSession.builder.getOrCreate()``, so when
:func:`featurelake.spark.get_spark` has created the session first, dbt's SQL runs on it: same Delta
extensions, JARs, warehouse and Hive metastore, same ``staging``/``features`` databases. dbt-spark forces
``spark.sql.ansi.enabled=false`` on the session it gets; :func:`run_dbt` restores the previous value.
The manifest lands in ``dbt_project/target/manifest.json`` (``target/overrides/`` for a build into audit
tables: ``target/manifest.json`` keeps describing the published relations, which ``featurelake plan`` checks).

Write-audit-publish (``run_dbt_build``): the model of a dbt feature view is built into the view's audit table
(``staging.<view>_v<n>__audit``, var ``relation_overrides`` read by ``dbt_project/macros``), made beforehand a
shallow clone of the published table, so an incremental model merges the interval into the published rows
with dbt's own semantics and dbt's data tests run on that result. The view's suite then runs on the interval's
slice of the audit version, and only then is it published into ``features.<model>``: replacing the interval's
date partitions (an incremental model), or the whole table (a ``table`` model, or a first build).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurelake import progress
from featurelake.compute.publish import publish_validated
from featurelake.config import Settings
from featurelake.errors import FeaturelakeError, InputError
from featurelake.repo import Repo, feature_repo
from featurelake.repo.definitions import DbtComputation, DbtModelSource, FeatureView
from featurelake.runs import Interval, recorded_run, run_all
from featurelake.tables import Commit, check_table_name, latest_commit, single_row, table_exists
from featurelake.validation.targets import view_target

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurelake.validation.gate import GateResult

PROJECT_DIR = "dbt_project"
SESSION_TARGETS = ("local", "ci")
DBT_PORT_VAR = "FEATURELAKE_DBT_PORT"  # profiles.yml's thrift and prod targets


class DbtError(FeaturelakeError):
    """dbt reported failed models or tests (or could not run)."""


@dataclass(frozen=True)
class DbtResult:
    command: list[str]
    success: bool
    statuses: dict[str, str]  # unique_id -> status (success, pass, fail, error, skipped...)
    relations: dict[str, str]  # unique_id of a model -> `schema.alias` (a Spark database.table)
    error: str | None = None  # dbt's own exception, when it ran no nodes
    materialized: dict[str, str] = field(default_factory=dict)  # unique_id of a model -> its materialization

    @property
    def failures(self) -> dict[str, str]:
        return {k: v for k, v in self.statuses.items() if v not in ("success", "pass", "skipped")}

    def check(self) -> None:
        """Raise DbtError naming the failed nodes unless dbt succeeded."""
        if not self.success:
            detail = "; ".join(f"{k}: {v}" for k, v in self.failures.items()) or self.error or "no results"
            raise DbtError(f"dbt {self.command[0]} failed: {detail}")


def project_dir(settings: Settings) -> Path:
    return settings.root / PROJECT_DIR


def dbt_target(settings: Settings) -> str:
    """The profiles.yml output for this environment: ``local``/``ci`` run in-session, anything else ``prod``."""
    return settings.env if settings.env in SESSION_TARGETS else "prod"


def dbt_args(
    settings: Settings,
    command: str = "build",
    *,
    interval: Interval | None = None,
    select: str | None = None,
    overrides: dict[str, str] | None = None,
    full_refresh: bool = False,
) -> list[str]:
    """The dbt command line (pure): project, profiles, target, the interval as ``start_date``/``end_date`` vars
    and ``overrides`` (model name -> the ``schema.table`` to build it into) as var ``relation_overrides``."""
    if command not in ("build", "run", "test", "parse", "compile"):
        raise InputError(f"unsupported dbt command {command!r}")
    pdir = project_dir(settings)
    args = [command, "--project-dir", str(pdir), "--profiles-dir", str(pdir), "--target", dbt_target(settings)]
    dbt_vars: dict[str, Any] = {}
    if interval:
        dbt_vars |= {"start_date": interval.start.isoformat(), "end_date": interval.end.isoformat()}
    if overrides:
        dbt_vars["relation_overrides"] = overrides
        args += ["--target-path", str(pdir / "target" / "overrides")]
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    if select:
        # cautious: a test runs only when all its parents are selected (a relationship test of a later group
        # waits for that group instead of failing on a table not built yet)
        args += ["--select", select, "--indirect-selection", "cautious"]
    if full_refresh:
        args.append("--full-refresh")
    return args


def run_dbt(spark: SparkSession, settings: Settings, args: list[str], *, check: bool = True) -> DbtResult:
    """Invoke dbt programmatically (``dbtRunner``) on ``spark``'s catalog; raise DbtError on failures if ``check``.

    A thrift target's port is ``$FEATURELAKE_DBT_PORT``, else ``services.thrift.port`` (the SQL endpoint this state
    folder's services run: the cluster environment's, on a port of its own per clone or test run)."""
    from dbt.cli.main import dbtRunner

    os.environ.setdefault(DBT_PORT_VAR, str(settings.services.thrift.port))
    ansi = spark.conf.get("spark.sql.ansi.enabled")
    try:
        res = dbtRunner().invoke([*args, "--log-path", str(project_dir(settings) / "logs"), "--no-use-colors"])
    finally:
        if ansi is not None:
            spark.conf.set("spark.sql.ansi.enabled", ansi)
    statuses: dict[str, str] = {}
    relations: dict[str, str] = {}
    materialized: dict[str, str] = {}
    results = getattr(res.result, "results", None) or []
    for r in results:
        statuses[r.node.unique_id] = str(getattr(r.status, "value", r.status))
        if r.node.resource_type == "model":
            relations[r.node.unique_id] = f"{r.node.schema}.{r.node.alias}"
            materialized[r.node.unique_id] = r.node.config.materialized
    error = str(res.exception) if res.exception else None
    result = DbtResult(args, bool(res.success), statuses, relations, error, materialized)
    if check:
        result.check()
    return result


GROUP_SELECTOR = "path:models/"  # + a folder under dbt_project/models: the models in it


def model_selector(settings: Settings, group: str) -> str:
    """A dbt selector for ``group``: ``path:models/<group>`` when it is a folder of models, else as given."""
    if (project_dir(settings) / "models" / group).is_dir():
        return GROUP_SELECTOR + group
    return group


def dbt_views(repo: Repo) -> list[FeatureView]:
    """The views computed by dbt models, by name."""
    return [
        view
        for _, view in sorted(repo.views.items())
        if isinstance(view.computation, DbtComputation) and isinstance(view.source, DbtModelSource)
    ]


def may_build(settings: Settings, view: FeatureView, select: str | None) -> bool:
    """Whether a build of ``select`` may build the model of dbt view ``view``: a model group's selector
    (``path:models/<group>``, see :func:`model_selector`) builds the models in its folder only; any other selector
    may build any model."""
    assert isinstance(view.source, DbtModelSource)
    if not select or not select.startswith(GROUP_SELECTOR):
        return True
    folder = project_dir(settings) / "models" / select.removeprefix(GROUP_SELECTOR)
    return any(folder.rglob(f"{view.source.model}.sql"))


@dataclass(frozen=True)
class AuditedView:
    """A dbt feature view whose model a build writes into the view's audit table."""

    view: FeatureView
    model: str
    keys: list[str]
    audit: str  # staging.<view>_v<n>__audit
    cloned: bool  # the audit table started as a shallow clone of the published table

    @property
    def table(self) -> str:
        return self.view.offline_table or ""


def stage_audit(spark: SparkSession, repo: Repo, view: FeatureView) -> AuditedView:
    """Make the view's audit table a shallow clone of its published table, or drop it when nothing is published
    yet (dbt then builds the model whole)."""
    assert isinstance(view.source, DbtModelSource)
    keys = repo.join_keys(view)
    audit, table = view_target(view, keys).audit_table, view.source.table
    spark.sql(f"DROP TABLE IF EXISTS {check_table_name(audit)}")  # Delta clones into a new or an empty table only
    exists = table_exists(spark, table)
    if exists:
        spark.sql(f"CREATE TABLE {check_table_name(audit)} SHALLOW CLONE {check_table_name(table)}")
    return AuditedView(view, view.source.model, keys, audit, exists)


def run_dbt_build(
    spark: SparkSession,
    settings: Settings,
    interval: Interval,
    run_id: str,
    *,
    select: str | None = None,
    repo: Repo | None = None,
) -> tuple[list[str], list[GateResult]]:
    """``dbt build`` of the interval (optionally a ``--select``ion) in this session, its feature views published
    through their gates (write-audit-publish, see the module's docstring); the tables written and the gates' results.

    Records one run per model: written (for a feature view: published), or dbt's status (``error``, ``skipped``)
    for a model it did not write. A failed build raises ``DbtError`` and publishes nothing (the views it built
    are recorded ``failed``). A strict view that fails its suite raises ``ValidationFailed`` after the other
    views were published: its table keeps its version and the pipeline stops before anything downstream.
    """
    repo = repo or feature_repo(settings)
    views = [v for v in dbt_views(repo) if may_build(settings, v, select)]
    audited = {a.audit: a for a in (stage_audit(spark, repo, view) for view in views)}
    overrides = {a.model: a.audit for a in audited.values()}
    args = dbt_args(settings, "build", interval=interval, select=select, overrides=overrides)
    models, built = [], []
    dbt_step = progress.step(f"dbt build {interval}" + (f" --select {select}" if select else ""))
    with recorded_run(spark, "dbt", [], interval, run_id) as run:
        result = run_dbt(spark, settings, args, check=False)
        for unique_id, relation in result.relations.items():
            status, view = result.statuses[unique_id], audited.get(relation)
            if status == "success" and view:
                built.append((unique_id, view))
            elif status == "success":
                run.wrote(latest_commit(spark, relation), unique_id)
                models.append(relation)
            elif status in ("error", "skipped"):  # not written (skipped: a model it depends on failed)
                run.record(view.table if view else relation, status, unique_id)
    with recorded_run(spark, "dbt", [view.table for _, view in built], interval, run_id):
        result.check()  # a failed build publishes nothing
    dbt_step.done()

    def publish(item: tuple[str, AuditedView]) -> GateResult:
        unique_id, view = item
        incremental = view.cloned and result.materialized.get(unique_id) == "incremental"
        return publish_dbt_view(spark, settings, view, interval, run_id, unique_id, incremental=incremental)

    checks = run_all(publish, built, label=lambda item: item[1].view.name)
    return models + [view.table for _, view in built], checks


def publish_dbt_view(
    spark: SparkSession,
    settings: Settings,
    audited: AuditedView,
    interval: Interval,
    run_id: str,
    unique_id: str,
    *,
    incremental: bool,
) -> GateResult:
    """Gate the audit table's new version and publish it into the view's table, as a recorded run: the interval's
    date partitions of an incremental model merged into a clone, else the whole table (validated whole)."""
    audit = latest_commit(spark, audited.audit)
    column = audited.view.date_partition_field
    whole = not (incremental and column)
    with recorded_run(spark, "dbt", [audited.table], interval, run_id) as run:
        commit, gate = publish_validated(
            spark,
            settings,
            audited.view,
            audited.keys,
            audit,
            interval,
            date_column=column,
            replace=None if whole else interval,
            row_dates=covered_dates(spark, audit, column) if whole else None,
        )
        run.wrote(commit, unique_id)
    return gate


def covered_dates(spark: SparkSession, commit: Commit, column: str | None) -> Interval | None:
    """The dates ``column`` spans in ``commit``'s version of its table (None: no such column, or no rows)."""
    if column is None:
        return None
    from pyspark.sql import functions as F

    rows = spark.sql(f"SELECT * FROM {check_table_name(commit.table)} VERSION AS OF {commit.version}")
    first, last = single_row(rows.agg(F.min(column), F.max(column)))
    return Interval(first, last) if first is not None else None
