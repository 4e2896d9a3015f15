"""Monitoring commands: `check` (the nightly closing checks), `status`, `drift`, `skew`, `report`."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from featurelake.cli.output import console, seconds
from featurelake.errors import InputError
from featurelake.runs import parse_date

if TYPE_CHECKING:
    from featurelake.monitoring.status import ViewStatus
    from featurelake.streaming.lag import ViewLag

AsOf = Annotated[
    str | None, typer.Option("--as-of", help="check time, ISO (naive = UTC); default now (the demo data is from 2013)")
]
RepoOption = Annotated[
    str | None, typer.Option("--repo", help="feature repository folder (default: features/ in the repo root)")
]
STATE_STYLE = {"fresh": "green", "static": "yellow", "late": "bold red", "failing": "bold red"}


def _context(repo_dir: str | None):
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo, load_repo
    from featurelake.spark import get_spark

    settings = get_settings()
    repo = load_repo(repo_dir) if repo_dir else feature_repo(settings)
    return settings, repo, get_spark(settings)


def _as_of(value: str | None) -> dt.datetime:
    from featurelake.online.materialize import parse_as_of

    return parse_as_of(value).replace(tzinfo=None)


def print_statuses(statuses: list[ViewStatus]) -> None:
    table = Table("view", "state", "policy", "latest feature ts", "freshness", "last success", "last validation")
    for s in statuses:
        validation = "-"
        if s.last_validation:
            validation = f"{'passed' if s.last_validation.success else 'FAILED'} {s.last_validation.at:%Y-%m-%d %H:%M}"
        table.add_row(
            s.view,
            f"[{STATE_STYLE[s.state]}]{s.state}[/]",
            s.policy,
            str(s.latest or "none"),
            str(s.expected_freshness) if s.expected_freshness else "static",
            f"{s.last_run.last_success_at:%Y-%m-%d %H:%M}" if s.last_run and s.last_run.last_success_at else "-",
            validation,
        )
    console.print(table)


def print_stream_lags(lags: list[ViewLag], as_of: dt.datetime) -> None:
    """The streaming views' lag (event time to online write, of the last batch) and idle time (since it)."""
    if not lags:
        return
    table = Table("streaming view", "source", "batches", "last batch's newest event", "online at", "lag (s)",
                  "idle (s)")  # fmt: skip
    for v in lags:
        r = v.lag
        if r is None:
            table.add_row(v.view, v.source, "0", "-", "-", "-", "-")
            continue
        table.add_row(v.view, v.source, f"{r.batches:,}", str(r.last_event or "-"), str(r.last_online or "-"),
                      seconds(r.lag), seconds(r.idle(as_of)))  # fmt: skip
    console.print(table)


def check(
    as_of: AsOf = None,
    sample: Annotated[
        int | None,
        typer.Option("--sample", min=1, help="keys per online view (default: orchestration.online_check_sample)"),
    ] = None,
    repo: RepoOption = None,
) -> None:
    """A nightly run's closing checks at its end: freshness and online/offline consistency of every view; exit 2
    naming every late view and every online view whose sampled values differ from the offline ones."""
    from featurelake.monitoring.checks import pipeline_checks

    when = _as_of(as_of)
    settings, definitions, spark = _context(repo)
    sample = sample or settings.orchestration.online_check_sample
    fresh, online = pipeline_checks(spark, settings, definitions, when, sample=sample)
    for f in fresh:
        console.print(f.describe(), highlight=False)
    for c in online:
        console.print(
            f"{c.view}: {c.sampled} keys sampled from {c.table}@v{c.version}: {c.mismatches} mismatches",
            highlight=False,
        )


def status(as_of: AsOf = None, repo: RepoOption = None) -> None:
    """Every view: fresh, late, failing or static; exit 1 when a strict view is late or failing."""
    from featurelake.monitoring.status import view_statuses
    from featurelake.streaming.lag import view_lags

    when = _as_of(as_of)
    settings, definitions, spark = _context(repo)
    statuses = view_statuses(spark, settings, definitions, when)
    console.print(f"status as of {when.isoformat()} (UTC)", highlight=False)
    print_statuses(statuses)
    print_stream_lags(view_lags(spark, definitions, when), when)
    alerting = [s.view for s in statuses if s.alerting]
    if alerting:
        console.print(f"[bold red]strict views late or failing:[/] {', '.join(alerting)}", highlight=False)
        raise typer.Exit(1)


def drift(
    view: Annotated[str, typer.Option("--view", help="the feature view")],
    start: Annotated[str, typer.Option("--start", help="first day of the current interval, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--end", help="last day of the current interval (inclusive), YYYY-MM-DD")],
    reference_training_set: Annotated[
        str | None, typer.Option("--reference-training-set", help="reference: the values this training set used")
    ] = None,
    reference_start: Annotated[str | None, typer.Option("--reference-start", help="reference interval start")] = None,
    reference_end: Annotated[str | None, typer.Option("--reference-end", help="reference interval end")] = None,
    repo: RepoOption = None,
) -> None:
    """PSI and KS test per feature of a view against a reference; recorded in monitoring.drift; exit 1 on drift."""
    from featurelake.monitoring.drift import measure_drift

    settings, definitions, spark = _context(repo)
    results = measure_drift(
        spark,
        settings,
        definitions,
        view,
        start=parse_date(start),
        end=parse_date(end),
        reference_training_set=reference_training_set,
        reference_start=parse_date(reference_start) if reference_start else None,
        reference_end=parse_date(reference_end) if reference_end else None,
    )
    table = Table("feature", "PSI", "KS statistic", "KS p-value", "reference rows", "current rows", "drifted")
    for r in results:
        table.add_row(
            r.feature,
            f"{r.psi:.4f}",
            "-" if r.ks_statistic is None else f"{r.ks_statistic:.4f}",
            "-" if r.ks_pvalue is None else f"{r.ks_pvalue:.3g}",
            f"{r.reference_rows:,}",
            f"{r.current_rows:,}",
            "[bold red]yes[/]" if r.drifted else "no",
        )
    head = results[0]
    console.print(
        f"{view}: {head.reference} vs {head.current_start}..{head.current_end} (drifted: PSI >= "
        f"{head.psi_threshold} and p < {head.pvalue_threshold})",
        highlight=False,
    )
    console.print(table)
    if any(r.drifted for r in results):
        raise typer.Exit(1)


def skew(
    training_set: Annotated[str, typer.Option("--training-set", help="training set name (its manifest)")],
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="training rows to compare (default: conf)")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="sampling seed")] = 0,
    repo: RepoOption = None,
) -> None:
    """Training-serving skew: mismatch rates per feature vs the offline table now and the online store."""
    from featurelake.monitoring.skew import measure_skew

    settings, definitions, spark = _context(repo)
    results = measure_skew(
        spark, settings, definitions, training_set, sample=sample or settings.monitoring.skew_sample, seed=seed
    )
    table = Table("view", "feature", "rows", "training vs offline", "keys", "online vs offline")
    for r in results:
        online = "-" if r.online_rate is None else f"{r.online_rate:.4f}"
        table.add_row(
            r.view,
            r.feature,
            str(r.sampled),
            f"{r.offline_rate:.4f}",
            "-" if r.online_compared is None else str(r.online_compared),
            online,
        )
    console.print(table)
    for r in results:
        for example in r.examples:
            console.print(f"  {r.view}.{r.feature}: {example}", highlight=False)
    limit = settings.monitoring.skew_max_rate
    if any(r.offline_rate > limit or (r.online_rate or 0.0) > limit for r in results):
        console.print(f"[bold red]skew above {limit:.4f}[/]", highlight=False)
        raise typer.Exit(1)


def report(
    out: Annotated[
        str | None, typer.Option("--out", help="also copy the pages to this folder (e.g. to open them locally)")
    ] = None,
    as_of: AsOf = None,
    start: Annotated[
        str | None, typer.Option("--start", help="measure nightly drift for this interval first (with --end)")
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="last day of that interval")] = None,
    repo: RepoOption = None,
) -> None:
    """Write the static HTML monitoring report to monitoring.report_dir (default: <artifacts>/reports, a local folder
    or the object store); exit 1 (after writing) when a threshold is breached."""
    from featurelake.artifacts import local_copy
    from featurelake.monitoring.report import nightly_report, report_location

    if (start is None) != (end is None):
        raise InputError("give both --start and --end (the interval to measure drift for), or neither")
    interval = (parse_date(start), parse_date(end)) if start and end else None
    settings, definitions, spark = _context(repo)
    target = report_location(settings)
    with target.writing() as folder:
        result, skipped = nightly_report(spark, settings, definitions, folder, _as_of(as_of), interval)
        copy = local_copy(settings, folder, out) if out else None
    for s in skipped:
        console.print(f"[yellow]drift skipped[/] {s.view}: {s.reason}", highlight=False)
    index = (target / "index.html").display
    console.print(f"report: {index} ({len(result.pages)} views)", highlight=False, soft_wrap=True)
    if copy:
        console.print(f"local copy: {(copy / 'index.html').display}", highlight=False, soft_wrap=True)
    for breach in result.breaches:
        console.print(f"[bold red]breach[/] {breach}", highlight=False)
    if result.breaches:
        raise typer.Exit(1)
