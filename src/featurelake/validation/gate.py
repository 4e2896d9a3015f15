"""The validation gate: write-audit-publish of a feature view's interval, and checks of published intervals.

``gate`` holds a candidate batch on the executors (a local checkpoint: the rows the suite validates are the rows
published, and a lost block fails the run instead of computing them again), runs the view's suite on it through
GE's Spark data source, stores the outcome in ``monitoring.validation_results`` and Data Docs, then publishes
those rows (``publish``, e.g. a replaceWhere into the feature table) when the suite passed or the view's policy is
``warn``. A strict view whose suite fails raises ``ValidationFailed``: nothing is published, so the feature table
keeps its version and nothing downstream (training sets, materialization) sees the batch. A batch that fails is
written to ``staging.<view>_v<n>__audit`` (overwritten: one Delta version per failure) for inspection; a dbt
view's batch is there already (dbt builds into the audit table) and is validated on that version.

GE's state (great_expectations.yml, suites as JSON, validation results, Data Docs) lives under
``<artifacts>/gx`` (``featurelake.artifacts``; the state folder locally); the suites' source is
``featurelake.validation.suites`` plus ``expectations/``, built again on every run. With the artifacts on the object
store (GE 1.x has no S3 store backend), the context is a scratch folder of the process and each run's validation
result and Data Docs pages are copied to ``<artifacts>/gx/validations`` and ``<artifacts>/gx/data_docs``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import fcntl
import importlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from featurelake.artifacts import artifacts_root
from featurelake.config import Settings
from featurelake.errors import FeaturelakeError
from featurelake.runs import Interval
from featurelake.tables import Commit, check_table_name, latest_commit, overwrite_where, table_exists
from featurelake.validation.results import (
    ROW_COUNT,
    Outcome,
    RunInfo,
    outcome_from,
    previous_good_run,
    record_results,
)
from featurelake.validation.suites import build_suite, interval_days, run_parameters
from featurelake.validation.targets import RAW_PREFIX, Target, raw_target, view_target

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext
    from pyspark.sql import DataFrame, SparkSession

    from featurelake.repo import Repo

DATASOURCE = "featurelake"
BATCH_DEFINITION = "whole_dataframe"
_LOCK = threading.Lock()  # GE's file context is not safe for concurrent use within a process
# Where GE's file context keeps results and Data Docs, and where they go on the object store (under <artifacts>).
LOCAL_RESULTS, LOCAL_DOCS = "gx/uncommitted/validations", "gx/uncommitted/data_docs/local_site"
REMOTE_RESULTS, REMOTE_DOCS = "gx/validations", "gx/data_docs"
# Scratch files copied to the object store: (target folder URL, file) -> the file's (mtime, size) then.
_COPIED: dict[tuple[str, Path], tuple[int, int]] = {}


@dataclass(frozen=True)
class GateResult:
    """The outcome of one validation run of one target over one interval."""

    run_id: str
    target: str
    suite: str
    mode: str  # gate | check
    policy: str
    start: dt.date
    end: dt.date
    # The table version holding the validated rows: a passing gate's publishing commit, the audit table's version
    # (a failed gate's batch, or dbt's), or the checked table's.
    table: str
    delta_version: int | None
    row_count: int | None
    outcomes: tuple[Outcome, ...]
    row_days: int = 1  # days the validated rows cover (the row count floor is per day of them)
    published: bool = False
    commit: Commit | None = None  # the publishing commit
    published_table: str | None = None
    published_version_before: int | None = None  # the version a blocked batch left in place
    data_docs: str | None = None  # URL of this run's Data Docs page
    duration_s: float = 0.0

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def blocking(self) -> bool:
        """True when the run failed under the strict policy (a gate did not publish; a check must fail)."""
        return self.policy == "strict" and not self.success

    @property
    def status(self) -> str:
        """``passed``; ``warned`` (failed under the warn policy: recorded, published); or ``failed``."""
        if self.success:
            return "passed"
        return "failed" if self.blocking else "warned"

    def headline(self) -> str:
        what = f"{'raw table' if self.target.startswith(RAW_PREFIX) else 'feature view'} {self.target!r}"
        status = "passed" if self.success else f"FAILED {len(self.failures)} of {len(self.outcomes)} expectations"
        return (
            f"{what} ({self.policy}), interval {self.start}..{self.end}, suite {self.suite!r}, "
            f"{self.table}@v{self.delta_version}, run {self.run_id}: {status}"
        )

    def message(self) -> str:
        """A readable account: the headline, the publication decision and each failed expectation."""
        lines = [self.headline()]
        if self.mode == "gate":
            if self.published and self.commit:
                lines.append(f"published to {self.commit.table} version {self.commit.version}")
            elif self.blocking:
                before = (
                    "(did not exist)"
                    if self.published_version_before is None
                    else (f"stays at version {self.published_version_before}")
                )
                lines.append(f"NOT published: {self.published_table} {before}")
        for o in self.failures:
            lines.append(f"  - {o.label}: expected {o.expected}; observed {o.observed}")
            for row in o.sample:
                lines.append("      " + ", ".join(f"{k}={v}" for k, v in row.items()))
        if self.data_docs:
            lines.append(f"Data Docs: {self.data_docs}")
        return "\n".join(lines)


class ValidationFailed(FeaturelakeError):
    """A strict view's batch failed its suite and was not published."""

    def __init__(self, result: GateResult):
        self.result = result
        super().__init__("validation failed: " + result.message())


def import_in_background() -> None:
    """Start importing Great Expectations (10-15 s of Python on a 2-core machine) on a thread of its own: a driver
    that will validate calls this before its SparkSession starts, so the import overlaps the JVM's start; the
    first use of GE waits for it (Python's import lock)."""
    import pyspark.sql  # noqa: F401  (on this thread first: GE imports it too, and pyspark's modules import each other)

    importer = threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True)
    importer.start()


@cache
def gx_context(project_root: str) -> AbstractDataContext:
    """The file-backed GE context under ``<project_root>/gx`` (created on first use; no analytics, no bars)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=project_root)
    if context.variables.analytics_enabled is not False or context.variables.progress_bars is None:
        context.variables.analytics_enabled = False
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        context.variables.save()
    return context


@cache
def _scratch() -> str:
    """This process's folder for GE's context when the artifacts are on the object store (removed at exit)."""
    folder = tempfile.mkdtemp(prefix="featurelake-gx-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


@contextmanager
def _context_turn(project_root: str) -> Iterator[None]:
    """Use GE's file context in turn: with this process's other threads, and with the other processes that share
    the folder (parallel Airflow tasks), since GE rewrites great_expectations.yml and the Data Docs in place."""
    with _LOCK:
        Path(project_root).mkdir(parents=True, exist_ok=True)
        with (Path(project_root) / ".gx.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def gx_root(settings: Settings) -> str:
    """The project root of GE's context: the artifacts root, or a scratch folder when that is on the object store."""
    root = artifacts_root(settings)
    return _scratch() if root.remote else root.url


def data_docs_index(settings: Settings) -> str:
    """The URL of the Data Docs site's index page (``file://`` or ``s3a://``)."""
    root = artifacts_root(settings)
    return (root / (REMOTE_DOCS if root.remote else LOCAL_DOCS) / "index.html").display


def _publish_artifacts(settings: Settings, docs: str | None) -> str | None:
    """Copy the files GE wrote since the last copy (validation results, Data Docs pages; its static assets once per
    folder) from the scratch context to the object store; return ``docs`` (a page's file:// URL) there."""
    root, scratch = artifacts_root(settings), Path(_scratch())
    for local, remote in ((LOCAL_RESULTS, REMOTE_RESULTS), (LOCAL_DOCS, REMOTE_DOCS)):
        folder, target = scratch / local, root / remote
        changed = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            stamp = (path.stat().st_mtime_ns, path.stat().st_size)
            if _COPIED.get((target.url, path)) != stamp:
                _COPIED[target.url, path] = stamp
                changed.append(str(path.relative_to(folder)))
        static = [n for n in changed if n.startswith("static/")]
        if static and (target / "static").files():
            changed = [n for n in changed if n not in static]
        target.upload(folder, changed)
    prefix = (scratch / LOCAL_DOCS).as_uri()
    return (root / REMOTE_DOCS).url + docs[len(prefix) :] if docs and docs.startswith(prefix) else docs


# The first pass of a suite: success and observed values (counts, observed aggregates) but no failing rows
# (a limit of 0 is optimized away), so the aggregate metrics are bundled into a few Spark jobs instead of
# two more per column-map expectation. Only a failing suite is validated again with failing-row samples.
SCREEN_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 0}


def report_format(target: Target, df: DataFrame, sample_rows: int) -> dict[str, Any]:
    """The result format of a failure report: up to ``sample_rows`` failing rows with their keys and timestamp."""
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": max(sample_rows, 1)}
    index_columns = [c for c in (*target.keys, target.timestamp) if c in df.columns]
    if index_columns:
        result_format["unexpected_index_column_names"] = index_columns
    return result_format


def run_suite(
    settings: Settings, target: Target, df: DataFrame, params: dict[str, Any], run_id: str
) -> tuple[list[Outcome], int | None, Callable[[], str | None]]:
    """Validate ``df`` with ``target``'s suite; return the outcomes, the row count and a function that writes the
    run's Data Docs pages (and copies GE's new files to the object store) and returns the page's URL: the caller
    runs it while it publishes.

    The suite runs with ``SCREEN_FORMAT``; when it fails it runs again with ``report_format`` and that
    result, with failing rows, replaces the first one in GE's store (one stored result, one Data Docs page).
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    cfg = settings.validation
    project_root = gx_root(settings)
    with _context_turn(project_root):
        context = gx_context(project_root)
        suite = context.suites.add_or_update(build_suite(target, settings))
        source: Any
        try:
            source = context.data_sources.get(DATASOURCE)
        except (KeyError, ValueError):
            source = context.data_sources.add_spark(name=DATASOURCE)
        if target.name in source.get_asset_names():
            asset = source.get_asset(target.name)
        else:
            asset = source.add_dataframe_asset(name=target.name)
        try:
            batch_definition = asset.get_batch_definition(BATCH_DEFINITION)
        except KeyError:
            batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=target.name, data=batch_definition, suite=suite)
        )

        def run(result_format: dict[str, Any]):
            checkpoint = context.checkpoints.add_or_update(
                gx.Checkpoint(name=target.name, validation_definitions=[definition], result_format=result_format)
            )
            return checkpoint.run(
                batch_parameters={"dataframe": df},
                expectation_parameters=params,
                run_id=RunIdentifier(run_name=run_id, run_time=dt.datetime.now(dt.UTC)),
            )

        try:
            result = run(SCREEN_FORMAT)
            if not result.success:
                context.validation_results_store.remove_key(next(iter(result.run_results)))
                result = run(report_format(target, df, cfg.sample_rows))
        finally:
            df.unpersist()
        identifier, suite_result = next(iter(result.run_results.items()))
        outcomes, rows = [], None
        for item in suite_result.results:
            raw = cast(dict[str, Any], item.to_json_dict())
            outcomes.append(outcome_from(raw, cfg.sample_rows))
            if (raw.get("expectation_config") or {}).get("type") == ROW_COUNT:
                observed = (raw.get("result") or {}).get("observed_value")
                rows = int(observed) if isinstance(observed, int) else None
        prune_results(context, suite.name, cfg.gx_results_kept)

    def data_docs() -> str | None:
        docs = None
        with _context_turn(project_root):
            if cfg.data_docs:
                pages = [identifier, ExpectationSuiteIdentifier(name=suite.name)]
                context.build_data_docs(resource_identifiers=pages)
                urls = context.get_docs_sites_urls(resource_identifier=identifier)
                docs = next((u["site_url"] for u in urls if u.get("site_url")), None)
            if artifacts_root(settings).remote:
                docs = _publish_artifacts(settings, docs)
        return docs

    return outcomes, rows, data_docs


def prune_results(context: AbstractDataContext, suite: str, keep: int) -> None:
    """Remove all but the newest ``keep`` validation results of ``suite`` from GE's store (the next Data Docs build
    drops their pages), and the store's empty folders: GE's removal leaves a result's folders behind (GE 1.24's
    ``rrmdir`` never sees a folder as empty). GE's Data Docs index lists the store and reads every result on each
    build: unbounded, a gate would slow down with every night of history (bench/results/data_docs.md)."""
    from great_expectations.data_context.store.tuple_store_backend import TupleFilesystemStoreBackend
    from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier

    store = context.validation_results_store
    keys = cast(list[ValidationResultIdentifier], store.list_keys())
    results = [key for key in keys if key.expectation_suite_identifier.name == suite]
    for key in sorted(results, key=lambda key: key.run_id.run_time)[:-keep]:
        store.remove_key(key)
    backend = cast(TupleFilesystemStoreBackend, store.store_backend)  # featurelake's contexts are file contexts
    base = backend.full_base_directory
    for folder, _, _ in os.walk(base, topdown=False):
        if folder != base and not os.listdir(folder):
            os.rmdir(folder)


def resolve_target(settings: Settings, name: str, repo: Repo | None = None) -> Target:
    """The target called ``name``: a feature view of the repo, or a raw table its ingestions land (``raw.<table>``)."""
    if repo is None:
        from featurelake.repo import feature_repo

        repo = feature_repo(settings)
    if name.startswith(RAW_PREFIX):
        return raw_target(repo.raw_table(name), settings.validation.raw_policy)
    view = repo.view(name)
    return view_target(view, repo.join_keys(view))


def _version_or_none(spark: SparkSession, table: str) -> int | None:
    if not table_exists(spark, table):
        return None
    try:
        return latest_commit(spark, table).version
    except Exception:  # not a Delta table: no versions to report
        return None


def gate(
    spark: SparkSession,
    settings: Settings,
    target: Target,
    candidate: DataFrame | Commit,
    interval: Interval,
    *,
    publish: Callable[[DataFrame], Commit],
    row_dates: Interval | None = None,
    baseline: Future[tuple[int, int] | None] | None = None,
) -> GateResult:
    """Write-audit-publish the rows of data interval ``interval`` for ``target``: the one way to publish.

    ``candidate`` is the rows (held on the executors while the suite runs; written to ``target.audit_table`` if it
    fails), or a commit of the audit table that already holds them among others (dbt merged the interval into a
    clone of the published table): the batch is then that version's ``row_dates`` slice on the target's date
    partition. The suite runs on the batch; ``publish`` receives it and returns the publishing commit, unless a
    strict suite failed: then ``ValidationFailed`` is raised (naming the target, interval and failed expectations)
    and the published table keeps its version. A warn target is published and its failures recorded.
    ``row_dates`` (default: the interval) is the date range the rows cover (a window view's run also rewrites the
    days its windows reach): the row count is compared per day of it. ``baseline`` is the row-count baseline,
    ``previous_good_run(spark, target.name, "gate")``, if the caller started looking it up earlier.
    """
    dates = row_dates or interval
    # The previous good run (the row-count baseline) is looked up while the candidate is computed, at the latest.
    with ThreadPoolExecutor(1, thread_name_prefix="featurelake-baseline") as pool:
        previous = baseline or pool.submit(previous_good_run, spark, target.name, "gate")
        if isinstance(candidate, Commit):
            if candidate.table != target.audit_table:
                raise FeaturelakeError(f"{target.name}: the gate audits {target.audit_table}, not {candidate.table}")
            stored: tuple[str, int | None] | None = (candidate.table, candidate.version)
            batch = _stored_batch(spark, target, candidate.table, candidate.version, dates)
        else:
            stored, batch = None, candidate.localCheckpoint(eager=True)
    result = _validated(
        spark, settings, target, interval, batch, dates, previous.result(), stored=stored, publish=publish
    )
    if result.blocking:
        raise ValidationFailed(result)
    return result


def validate(
    spark: SparkSession, settings: Settings, name: str, interval: Interval, *, repo: Repo | None = None
) -> GateResult:
    """Validate the published interval of a feature view (or raw table) as of its latest version.

    Stores the outcome like a gate run (mode ``check``) and returns it; the caller decides what a failure
    means (``result.blocking`` is True for a failed strict target).
    """
    target = resolve_target(settings, name, repo)
    if not table_exists(spark, target.table):
        raise FeaturelakeError(f"{target.kind.replace('_', ' ')} {name!r}: table {target.table} does not exist")
    version = _version_or_none(spark, target.table)
    previous = previous_good_run(spark, target.name, "check")
    batch = _stored_batch(spark, target, target.table, version, interval)
    return _validated(spark, settings, target, interval, batch, interval, previous, stored=(target.table, version))


def validate_all(
    spark: SparkSession, settings: Settings, names: list[str], interval: Interval, *, repo: Repo | None = None
) -> list[GateResult]:
    """Validate each named target over the interval (all of them run); raise for the first strict failure."""
    results = [validate(spark, settings, name, interval, repo=repo) for name in names]
    for r in results:
        if r.blocking:
            raise ValidationFailed(r)
    return results


def _stored_batch(
    spark: SparkSession, target: Target, table: str, version: int | None, row_dates: Interval
) -> DataFrame:
    """A version of ``table`` (the newest when None), its ``row_dates`` slice on the target's date partition."""
    from pyspark.sql import functions as F

    batch = spark.sql(
        f"SELECT * FROM {check_table_name(table)}" + (f" VERSION AS OF {version}" if version is not None else "")
    )
    if target.date_partition and target.date_partition in batch.columns:
        batch = batch.where(F.col(target.date_partition).between(F.lit(row_dates.start), F.lit(row_dates.end)))
    return batch


def _validated(
    spark: SparkSession,
    settings: Settings,
    target: Target,
    interval: Interval,
    batch: DataFrame,
    row_dates: Interval,
    previous: tuple[int, int] | None,
    *,
    stored: tuple[str, int | None] | None,
    publish: Callable[[DataFrame], Commit] | None = None,
) -> GateResult:
    """Run ``target``'s suite on ``batch``, the rows of ``row_dates``: with ``publish``, a gate (publish unless
    blocked), else a check of the published table. ``stored`` is the table and version that hold the batch, None
    for a gate's rows held on the executors: the result names the publishing commit then, or the audit table's
    version a failing batch is written to. ``previous`` is the previous good run of the same mode
    (``previous_good_run``). The outcome is stored, one row per expectation, in ``monitoring.validation_results``."""
    mode = "gate" if publish else "check"
    table, version = stored or (target.table, None)
    run_id, t0 = uuid.uuid4().hex, time.monotonic()
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    days = interval_days(target, row_dates)
    params = run_parameters(target, settings, interval, previous, days)
    outcomes, rows, data_docs = run_suite(settings, target, batch, params, run_id)
    result = GateResult(
        run_id=run_id,
        target=target.name,
        suite=target.suite_name,
        mode=mode,
        policy=target.policy,
        start=interval.start,
        end=interval.end,
        table=table,
        delta_version=version,
        row_count=rows,
        outcomes=tuple(outcomes),
        row_days=days,
        published_table=target.table if publish else None,
    )
    commit = None
    # the Data Docs pages are written while the batch is published (GE's part of a run is Python on the driver,
    # a publish mostly Spark's)
    with ThreadPoolExecutor(1, thread_name_prefix="featurelake-data-docs") as pool:
        docs = pool.submit(data_docs)
        try:
            if publish and stored is None and not result.success:  # the rejected rows, kept for inspection
                audit = overwrite_where(batch, target.audit_table, None)
                result = replace(result, table=audit.table, delta_version=audit.version)
            if publish and result.blocking:
                result = replace(result, published_version_before=_version_or_none(spark, target.table))
            elif publish:
                commit = publish(batch)
                if stored is None and result.success:
                    result = replace(result, table=commit.table, delta_version=commit.version)
        finally:
            docs.exception()  # waits for the pages; their error, if any, is raised below
            result = replace(result, published=commit is not None, commit=commit, duration_s=time.monotonic() - t0)
            shared = {f.name: getattr(result, f.name) for f in fields(RunInfo) if hasattr(result, f.name)}
            run = RunInfo(
                **shared,
                kind=target.kind,
                interval_start=interval.start,
                interval_end=interval.end,
                run_success=result.success,
                validated_at=started,
            )
            record_results(spark, run, list(outcomes))
    return replace(result, data_docs=docs.result())
