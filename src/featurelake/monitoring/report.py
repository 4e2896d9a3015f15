"""The static monitoring report: ``index.html`` and one page per feature view, plots as inline SVG.

Each view page shows its freshness (latest feature timestamp against the monitored freshness, last runs),
the distribution of every feature over time (mean, median and the outer configured quantiles per written
interval, from ``monitoring.feature_stats``), the latest histogram, drift per feature (latest PSI against the
view's threshold, from ``monitoring.drift``) and the validation history (``monitoring.validation_results``).
The report breaches when a strict view is late or failing, or when the latest drift result of a feature says
drifted; the pages are written either way.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurelake.artifacts import ArtifactPath, location
from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.monitoring import FEATURE_STATS_TABLE
from featurelake.monitoring.drift import DriftResult, SkippedDrift, latest_drift, nightly_drift
from featurelake.monitoring.status import ViewStatus, view_statuses
from featurelake.monitoring.svg import bar_chart, line_chart, status_strip
from featurelake.tables import table_exists
from featurelake.validation.results import RESULTS_TABLE

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurelake.repo import Repo

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3;text-align:left}.fresh,.passed,.ok{color:#2ca02c}.late,.failed,.drifted{color:#d62728;
font-weight:bold}.failing{color:#d62728;font-weight:bold}.static,.warned{color:#ff7f0e}h2{margin-top:28px}
.feature{display:inline-block;vertical-align:top;margin-right:12px}
"""


@dataclass
class ReportResult:
    """Where the report went and what breached."""

    index: Path
    pages: dict[str, Path]
    breaches: list[str] = field(default_factory=list)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def _table(headers: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _ts(value: dt.datetime | dt.date | None) -> str:
    return "-" if value is None else escape(value.isoformat(sep=" ") if isinstance(value, dt.datetime) else str(value))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def feature_stats_history(spark: SparkSession, view: str, intervals: int) -> dict[str, list[dict[str, Any]]]:
    """Per feature, the statistics of the latest ``intervals`` written intervals, oldest first.

    An interval written several times keeps its newest statistics (highest Delta version).
    """
    from pyspark.sql import functions as F

    if not table_exists(spark, FEATURE_STATS_TABLE):
        return {}
    latest = F.max_by(F.struct(*[F.col(c) for c in spark.table(FEATURE_STATS_TABLE).columns]), "computed_at")
    rows = (
        spark.table(FEATURE_STATS_TABLE)
        .where(F.col("view") == view)
        .groupBy("feature", "interval_start", "interval_end")
        .agg(latest.alias("s"))
        .collect()
    )
    by_feature: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_feature[r["feature"]].append(r["s"].asDict(recursive=True))
    return {
        f: sorted(items, key=lambda s: (s["interval_end"], s["interval_start"]))[-intervals:]
        for f, items in by_feature.items()
    }


def validation_history(spark: SparkSession, view: str, runs: int) -> list[dict[str, Any]]:
    """The latest ``runs`` validation runs of a view, oldest first: time, mode, interval, outcome, failures."""
    from pyspark.sql import functions as F

    if not table_exists(spark, RESULTS_TABLE):
        return []
    rows = (
        spark.table(RESULTS_TABLE)
        .where(F.col("target") == view)
        .groupBy("run_id")
        .agg(
            F.max("validated_at").alias("at"),
            F.first("mode").alias("mode"),
            F.first("policy").alias("policy"),
            F.min("interval_start").alias("start"),
            F.max("interval_end").alias("end"),
            F.min(F.col("run_success").cast("int")).alias("success"),
            F.max(F.col("published").cast("int")).alias("published"),
            F.sum((~F.col("success")).cast("int")).alias("failed"),
            F.count(F.lit(1)).alias("expectations"),
        )
        .orderBy(F.col("at").desc())
        .limit(runs)
        .collect()
    )
    out = []
    for r in reversed(rows):
        state = "passed" if r["success"] else ("failed" if r["policy"] == "strict" else "warned")
        out.append({**r.asDict(), "state": state})
    return out


def _freshness_section(s: ViewStatus) -> str:
    age = (s.as_of - s.latest) if s.latest else None
    rows = [
        ["state", f'<span class="{s.state}">{s.state}</span>'],
        ["policy", escape(s.policy)],
        ["as of", _ts(s.as_of)],
        ["latest feature timestamp", _ts(s.latest)],
        ["age", escape(str(age)) if age is not None else "-"],
        ["monitored freshness", escape(str(s.expected_freshness)) if s.expected_freshness else "static"],
        ["last run", f"{_ts(s.last_run.at)} ({escape(s.last_run.status)})" if s.last_run else "-"],
        ["last successful run", _ts(s.last_run.last_success_at) if s.last_run else "-"],
        [
            "last validation",
            f"{_ts(s.last_validation.at)} ({'passed' if s.last_validation.success else 'failed'})"
            if s.last_validation
            else "-",
        ],
    ]
    chart = ""
    if age is not None and s.expected_freshness:
        hours = [age.total_seconds() / 3600]
        chart = bar_chart(
            "age of the latest value (hours) against the monitored freshness",
            ["age (h)"],
            hours,
            threshold=s.expected_freshness.total_seconds() / 3600,
            highlight=[s.late],
        )
    return "<h2>Freshness</h2>" + _table(["", ""], rows) + chart


def _distribution_section(stats: dict[str, list[dict[str, Any]]]) -> str:
    if not stats:
        return "<h2>Distribution over time</h2><p>No statistics recorded yet.</p>"
    parts = ["<h2>Distribution over time</h2>"]
    for feature, items in sorted(stats.items()):
        labels = [str(s["interval_end"]) for s in items]
        latest = items[-1]
        summary = _table(
            ["interval", "rows", "null fraction", "distinct", "min", "mean", "max", "stddev"],
            [
                [
                    f"{latest['interval_start']}..{latest['interval_end']} (v{latest['delta_version']})",
                    f"{latest['row_count']:,}",
                    _num(latest["null_fraction"]),
                    f"{latest['distinct_count']:,}",
                    _num(latest["min"]),
                    _num(latest["mean"]),
                    _num(latest["max"]),
                    _num(latest["stddev"]),
                ]
            ],
        )
        charts = ""
        if latest["quantiles"] is not None:
            probs = latest["quantile_probs"]

            def at(s: dict[str, Any], p: float, probs: list[float] = probs) -> float | None:
                qs = s.get("quantiles")
                return qs[probs.index(p)] if qs and p in probs and len(qs) == len(probs) else None

            series: dict[str, list[float | None]] = {"mean": [s["mean"] for s in items]}
            if 0.5 in probs:
                series["median"] = [at(s, 0.5) for s in items]
            band = ([at(s, probs[0]) for s in items], [at(s, probs[-1]) for s in items])
            charts += line_chart(
                f"{feature}: mean, median, p{probs[0]:g}..p{probs[-1]:g} per interval", labels, series, band
            )
            if latest["histogram"]:
                bins = sorted(latest["histogram"], key=lambda b: b["x"])
                charts += bar_chart(
                    f"{feature}: histogram of the latest interval", [_num(b["x"]) for b in bins], [b["y"] for b in bins]
                )
        else:
            charts += line_chart(
                f"{feature}: null fraction per interval", labels, {"null fraction": [s["null_fraction"] for s in items]}
            )
        parts.append(f'<div class="feature"><h3>{escape(feature)}</h3>{summary}{charts}</div>')
    return "".join(parts)


def _drift_section(drift: list[dict[str, Any]]) -> str:
    if not drift:
        return (
            "<h2>Drift</h2><p>No drift measured yet (<code>featurelake drift</code>, or set the view's "
            "<code>drift.reference_days</code> for the nightly report).</p>"
        )
    rows = [
        [
            escape(d["feature"]),
            escape(d["reference"]),
            f"{d['current_start']}..{d['current_end']}",
            _num(d["psi"]),
            _num(d["psi_threshold"]),
            _num(d["ks_statistic"]),
            _num(d["ks_pvalue"]),
            _num(d["pvalue_threshold"]),
            "drifted" if d["drifted"] else "ok",
            _ts(d["measured_at"]),
        ]
        for d in drift
    ]
    table = _table(
        ["feature", "reference", "current", "PSI", "PSI threshold", "KS", "KS p-value", "p threshold", "", "measured"],
        rows,
        ["drifted" if d["drifted"] else "" for d in drift],
    )
    chart = bar_chart(
        "PSI per feature (latest measurement; dashed: the view's threshold)",
        [d["feature"] for d in drift],
        [d["psi"] for d in drift],
        threshold=drift[0]["psi_threshold"],
        highlight=[d["drifted"] for d in drift],
    )
    return "<h2>Drift</h2>" + chart + table


def _validation_section(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "<h2>Validation history</h2><p>No validation runs recorded.</p>"
    strip = status_strip("validation runs, oldest first", [_ts(r["at"]) for r in runs], [r["state"] for r in runs])
    rows = [
        [
            _ts(r["at"]),
            escape(r["mode"]),
            f"{r['start']}..{r['end']}",
            f'<span class="{r["state"]}">{r["state"]}</span>',
            f"{r['failed']} of {r['expectations']}",
            "yes" if r["published"] else "no",
        ]
        for r in reversed(runs)
    ]
    return (
        "<h2>Validation history</h2>"
        + strip
        + _table(["validated at", "mode", "interval", "outcome", "failed expectations", "published"], rows)
    )


def write_report(
    spark: SparkSession,
    settings: Settings,
    repo: Repo,
    out_dir: Path,
    as_of: dt.datetime,
    *,
    drift_results: list[DriftResult] | None = None,
) -> ReportResult:
    """Write ``index.html`` and ``<view>.html`` under ``out_dir``; return the pages and the breaches.

    ``drift_results`` (measured in this run) are already in ``monitoring.drift``; they are named in the
    breaches first, then any other feature whose latest stored drift result says drifted.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"report folder {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = settings.monitoring
    statuses = view_statuses(spark, settings, repo, as_of)
    drift_by_view: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in latest_drift(spark):
        drift_by_view[d["view"]].append(d)
    breaches = [
        f"{s.view}: {'late' if s.late else ''}{' and ' if s.late and s.failing else ''}{'failing' if s.failing else ''}"
        f" (strict; latest {s.latest or 'none'})"
        for s in statuses
        if s.alerting
    ]
    measured = {(d.view, d.feature) for d in drift_results or []}
    drifted = sorted(
        ((d["view"], d["feature"]) for ds in drift_by_view.values() for d in ds if d["drifted"]),
        key=lambda vf: (vf not in measured, vf),
    )
    breaches += [f"{v}: feature {f} drifted" for v, f in drifted]
    pages: dict[str, Path] = {}
    index_rows = []
    for s in statuses:
        view = repo.view(s.view)
        body = (
            f'<p><a href="index.html">all views</a></p><h1>{escape(s.view)}</h1>'
            f"<p>{escape(view.description)} Table <code>{escape(s.table or '-')}</code>, owner "
            f"{escape(view.owner or '-')}.</p>"
            + _freshness_section(s)
            + _distribution_section(feature_stats_history(spark, s.view, cfg.report_intervals))
            + _drift_section(drift_by_view.get(s.view, []))
            + _validation_section(validation_history(spark, s.view, cfg.report_validation_runs))
        )
        path = out_dir / f"{s.view}.html"
        path.write_text(_page(f"featurelake: {s.view}", body))
        pages[s.view] = path
        n_drifted = sum(1 for d in drift_by_view.get(s.view, []) if d["drifted"])
        index_rows.append(
            [
                f'<a href="{escape(path.name)}">{escape(s.view)}</a>',
                f'<span class="{s.state}">{s.state}</span>',
                escape(s.policy),
                _ts(s.latest),
                escape(str(s.expected_freshness)) if s.expected_freshness else "static",
                _ts(s.last_run.last_success_at) if s.last_run else "-",
                str(n_drifted),
            ]
        )
    summary = (
        "<p class='failed'>Breached: " + "; ".join(escape(b) for b in breaches) + "</p>"
        if breaches
        else "<p class='ok'>No thresholds breached.</p>"
    )
    index = out_dir / "index.html"
    index.write_text(
        _page(
            "featurelake monitoring",
            f"<h1>Feature monitoring</h1><p>As of {_ts(as_of)} (UTC); written "
            f"{_ts(dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0))}.</p>{summary}"
            + _table(
                ["view", "state", "policy", "latest feature timestamp", "freshness", "last success", "drifted"],
                index_rows,
            ),
        )
    )
    return ReportResult(index, pages, breaches)


def report_location(settings: Settings) -> ArtifactPath:
    """Where the report goes: ``monitoring.report_dir``, default ``<artifacts>/reports``."""
    return location(settings, settings.monitoring.report_dir, "reports")


def nightly_report(
    spark: SparkSession,
    settings: Settings,
    repo: Repo,
    out_dir: Path,
    as_of: dt.datetime,
    interval: tuple[dt.date, dt.date] | None = None,
) -> tuple[ReportResult, list[SkippedDrift]]:
    """Measure drift of ``interval`` for the views that ask for it nightly (when given), then write the report."""
    measured, skipped = nightly_drift(spark, settings, repo, *interval) if interval else ([], [])
    return write_report(spark, settings, repo, out_dir, as_of, drift_results=measured), skipped
