"""Drift of a view's features between a reference and a current interval: PSI and a two-sample KS test.

Reference: the values a training set used (its table ``VERSION AS OF`` the version in its manifest, the
columns of the view's features) or the view's offline table over a chosen interval. Current: the offline
table over [start, end] (its date partition; a table without one is taken whole).

Population stability index: bins from the reference's approximate quantiles (``drift_bins`` of equal
reference mass, ties merged) plus one bin for nulls, counted in Spark on both sides (one aggregation per
side for all features); ``PSI = sum((c - r) * ln(c / r))`` over the bins' shares, each floored at
``PSI_FLOOR`` so an empty bin stays finite. Two-sample Kolmogorov-Smirnov (scipy) on at most
``drift_sample_rows`` non-null values per side (every value when there are fewer). A feature drifted when
PSI >= the view's ``drift.psi_threshold`` and the KS p-value < ``drift.pvalue_threshold``. Numeric
features only (int, bigint, float, double, boolean as 0/1). Results are appended to ``monitoring.drift``.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from featurelake.config import Settings
from featurelake.errors import InputError
from featurelake.monitoring import DRIFT_TABLE
from featurelake.monitoring.stats import NUMERIC
from featurelake.offline.manifest import Manifest, load_manifest
from featurelake.repo.definitions import FeatureView, ValueType
from featurelake.tables import append_rows, check_identifier, check_table_name, single_row, table_exists

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from featurelake.repo import Repo

PSI_FLOOR = 1e-4


class NothingToCompare(InputError):
    """The reference or the current interval has no rows (or no table) to measure drift on."""


@dataclass(frozen=True)
class Comparison:
    """Reference against current for one feature: bin edges and counts (last bin: nulls), KS on samples."""

    feature: str
    edges: list[float]
    reference_counts: list[int]
    current_counts: list[int]
    psi: float
    ks_statistic: float | None
    ks_pvalue: float | None
    reference_sampled: int
    current_sampled: int

    @property
    def reference_rows(self) -> int:
        return sum(self.reference_counts)

    @property
    def current_rows(self) -> int:
        return sum(self.current_counts)


@dataclass(frozen=True)
class DriftResult:
    """One feature's drift measurement as stored in ``monitoring.drift``."""

    run_id: str
    view: str
    feature: str
    reference: str  # training_set:<name>@v<version> or interval:<start>..<end>
    reference_rows: int
    current_start: dt.date
    current_end: dt.date
    current_rows: int
    psi: float
    ks_statistic: float | None
    ks_pvalue: float | None
    psi_threshold: float
    pvalue_threshold: float
    drifted: bool
    measured_at: dt.datetime


def psi(reference_counts: list[int], current_counts: list[int]) -> float:
    """Population stability index of two histograms over the same bins (shares floored at ``PSI_FLOOR``)."""
    ref_total, cur_total = sum(reference_counts), sum(current_counts)
    if not ref_total or not cur_total:
        raise InputError("the population stability index needs rows on both sides")
    total = 0.0
    for r, c in zip(reference_counts, current_counts, strict=True):
        p, q = max(r / ref_total, PSI_FLOOR), max(c / cur_total, PSI_FLOOR)
        total += (q - p) * math.log(q / p)
    return total


def quantile_edges(reference: DataFrame, features: list[str], bins: int) -> dict[str, list[float]]:
    """Per feature, the distinct approximate quantiles at 1/bins .. (bins-1)/bins of the reference's values."""
    from pyspark.sql import functions as F

    probs = F.array(*[F.lit(i / bins) for i in range(1, bins)])
    row = single_row(
        reference.agg(
            *[F.percentile_approx(F.col(f"`{f}`").cast("double"), probs).alias(f"q{i}") for i, f in enumerate(features)]
        )
    )
    return {f: sorted(set(row[f"q{i}"] or [])) for i, f in enumerate(features)}


def bin_counts(df: DataFrame, edges: dict[str, list[float]]) -> dict[str, list[int]]:
    """Per feature, rows per bin ``(-inf, e1], (e1, e2], ..., (ek, inf)`` and then the null count; one pass."""
    from pyspark.sql import functions as F

    aggs = []
    for i, (f, cuts) in enumerate(edges.items()):
        x = F.col(f"`{f}`").cast("double")
        index = sum(((x > F.lit(e)).cast("int") for e in cuts), F.lit(0))
        aggs += [F.count(F.when(x.isNotNull() & (index == b), 1)).alias(f"b{i}_{b}") for b in range(len(cuts) + 1)]
        aggs.append(F.count(F.when(x.isNull(), 1)).alias(f"n{i}"))
    row = single_row(df.agg(*aggs))
    return {
        f: [int(row[f"b{i}_{b}"]) for b in range(len(cuts) + 1)] + [int(row[f"n{i}"])]
        for i, (f, cuts) in enumerate(edges.items())
    }


def sample_values(df: DataFrame, features: list[str], rows: int, limit: int, seed: int) -> dict[str, list[float]]:
    """At most ``limit`` rows of ``df`` (``rows`` of them in all; all when fewer), non-null values per feature."""
    from pyspark.sql import functions as F

    picked = df.select(*[F.col(f"`{f}`").cast("double").alias(f) for f in features])
    if rows > limit:
        picked = picked.sample(withReplacement=False, fraction=min(1.0, 1.2 * limit / rows), seed=seed).limit(limit)
    collected = picked.collect()
    return {f: [r[f] for r in collected if r[f] is not None and not math.isnan(r[f])] for f in features}


def compare(
    reference: DataFrame, current: DataFrame, features: list[str], *, bins: int, sample_rows: int, seed: int = 0
) -> list[Comparison]:
    """PSI and KS of each feature (a numeric column of both frames) between ``reference`` and ``current``."""
    from scipy.stats import ks_2samp

    edges = quantile_edges(reference, features, bins)
    ref_counts, cur_counts = bin_counts(reference, edges), bin_counts(current, edges)
    ref_rows = sum(next(iter(ref_counts.values()), [0]))
    cur_rows = sum(next(iter(cur_counts.values()), [0]))
    if not ref_rows or not cur_rows:
        side = "reference" if not ref_rows else "current interval"
        raise NothingToCompare(f"the {side} has no rows")
    ref_sample = sample_values(reference, features, ref_rows, sample_rows, seed)
    cur_sample = sample_values(current, features, cur_rows, sample_rows, seed + 1)
    out = []
    for f in features:
        a, b = ref_sample[f], cur_sample[f]
        ks = ks_2samp(a, b) if a and b else None
        out.append(
            Comparison(
                feature=f,
                edges=edges[f],
                reference_counts=ref_counts[f],
                current_counts=cur_counts[f],
                psi=psi(ref_counts[f], cur_counts[f]),
                ks_statistic=float(ks.statistic) if ks else None,
                ks_pvalue=float(ks.pvalue) if ks else None,
                reference_sampled=len(a),
                current_sampled=len(b),
            )
        )
    return out


def offline_interval(spark: SparkSession, view: FeatureView, start: dt.date, end: dt.date) -> DataFrame:
    """The latest version of ``view``'s offline table over [start, end] (date partition; static: whole)."""
    from pyspark.sql import functions as F

    table = view.offline_table
    if table is None or not table_exists(spark, table):
        raise NothingToCompare(f"offline table {table or '(a path source)'} of view {view.name!r} does not exist")
    df = spark.table(check_table_name(table))
    part = view.date_partition_field
    if part is None:
        return df
    return df.where(F.col(f"`{check_identifier(part, 'date partition column')}`").between(F.lit(start), F.lit(end)))


def training_reference(spark: SparkSession, manifest: Manifest, view: FeatureView) -> tuple[DataFrame, list[str], str]:
    """The values a training set used for ``view``'s features: (rows with one column per feature, features, label)."""
    from pyspark.sql import functions as F

    entry = manifest.view(view.name)
    if entry is None:
        raise InputError(f"training set {manifest.name!r} has no features of view {view.name!r}")
    columns = entry.columns
    df = manifest.read_table(spark)
    features = [f for f in entry.features if f in columns and columns[f] in df.columns]
    if not features:
        raise InputError(f"training set {manifest.name!r}: no columns of view {view.name!r} in {manifest.table}")
    frame = df.select(*[F.col(f"`{check_identifier(columns[f], 'column')}`").alias(f) for f in features])
    return frame, features, f"training_set:{manifest.name}@v{manifest.table_version}"


def numeric_features(view: FeatureView, names: list[str] | None = None) -> list[str]:
    """The numeric features of ``view`` (restricted to ``names``, which must be features of the view)."""
    dtypes: dict[str, ValueType] = {f.name: f.dtype for f in view.features}
    if names is not None and (unknown := [n for n in names if n not in dtypes]):
        raise InputError(f"feature view {view.name!r} has no feature(s) {', '.join(unknown)}")
    return [n for n in (names if names is not None else list(dtypes)) if dtypes[n] in NUMERIC]


def measure_drift(
    spark: SparkSession,
    settings: Settings,
    repo: Repo,
    view_name: str,
    *,
    start: dt.date,
    end: dt.date,
    reference_training_set: str | None = None,
    reference_start: dt.date | None = None,
    reference_end: dt.date | None = None,
    record: bool = True,
) -> list[DriftResult]:
    """Drift of every numeric feature of a view, [start, end] against a training set or a reference interval."""
    if start > end:
        raise InputError(f"drift of view {view_name!r}: --start {start} is after --end {end}")
    by_interval = reference_start is not None or reference_end is not None
    if by_interval == (reference_training_set is not None):
        raise InputError("give a reference: --reference-training-set NAME, or --reference-start and --reference-end")
    view = repo.view(view_name)
    if reference_training_set is not None:
        manifest = load_manifest(spark, check_identifier(reference_training_set, "training set name"))
        reference, names, label = training_reference(spark, manifest, view)
        features = numeric_features(view, names)
    else:
        if reference_start is None or reference_end is None:
            raise InputError(f"drift of view {view_name!r}: give both --reference-start and --reference-end")
        if reference_start > reference_end:
            raise InputError(f"drift of view {view_name!r}: reference start {reference_start} is after its end")
        features = numeric_features(view)
        reference = offline_interval(spark, view, reference_start, reference_end)
        label = f"interval:{reference_start}..{reference_end}"
    if not features:
        raise InputError(f"feature view {view.name!r} has no numeric features to measure drift on")
    cfg, policy = settings.monitoring, view.drift
    current = offline_interval(spark, view, start, end)
    try:
        comparisons = compare(reference, current, features, bins=cfg.drift_bins, sample_rows=cfg.drift_sample_rows)
    except NothingToCompare as exc:
        raise NothingToCompare(f"drift of view {view.name!r} ({label} vs {start}..{end}): {exc}") from None
    run_id, now = uuid.uuid4().hex, dt.datetime.now(dt.UTC).replace(tzinfo=None)
    results = [
        DriftResult(
            run_id=run_id,
            view=view.name,
            feature=c.feature,
            reference=label,
            reference_rows=c.reference_rows,
            current_start=start,
            current_end=end,
            current_rows=c.current_rows,
            psi=c.psi,
            ks_statistic=c.ks_statistic,
            ks_pvalue=c.ks_pvalue,
            psi_threshold=policy.psi_threshold,
            pvalue_threshold=policy.pvalue_threshold,
            drifted=c.psi >= policy.psi_threshold and c.ks_pvalue is not None and c.ks_pvalue < policy.pvalue_threshold,
            measured_at=now,
        )
        for c in comparisons
    ]
    if record:
        record_drift(spark, results)
    return results


def _schema():
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("run_id", T.StringType(), False),
            T.StructField("view", T.StringType(), False),
            T.StructField("feature", T.StringType(), False),
            T.StructField("reference", T.StringType(), False),
            T.StructField("reference_rows", T.LongType(), False),
            T.StructField("current_start", T.DateType(), False),
            T.StructField("current_end", T.DateType(), False),
            T.StructField("current_rows", T.LongType(), False),
            T.StructField("psi", T.DoubleType(), False),
            T.StructField("ks_statistic", T.DoubleType()),
            T.StructField("ks_pvalue", T.DoubleType()),
            T.StructField("psi_threshold", T.DoubleType(), False),
            T.StructField("pvalue_threshold", T.DoubleType(), False),
            T.StructField("drifted", T.BooleanType(), False),
            T.StructField("measured_at", T.TimestampType(), False),
        ]
    )


def record_drift(spark: SparkSession, results: list[DriftResult]) -> None:
    """Append drift results to ``monitoring.drift`` (one commit)."""
    if results:
        append_rows(spark, DRIFT_TABLE, [asdict(r) for r in results], _schema())


def latest_drift(spark: SparkSession) -> list[dict[str, Any]]:
    """The latest drift result of every (view, feature) in ``monitoring.drift``."""
    from pyspark.sql import functions as F

    if not table_exists(spark, DRIFT_TABLE):
        return []
    latest = F.max_by(F.struct(*[c for c in _schema().fieldNames() if c not in ("view", "feature")]), "measured_at")
    rows = spark.table(DRIFT_TABLE).groupBy("view", "feature").agg(latest.alias("d")).collect()
    return sorted(
        ({"view": r["view"], "feature": r["feature"], **r["d"].asDict()} for r in rows),
        key=lambda d: (d["view"], d["feature"]),
    )


@dataclass(frozen=True)
class SkippedDrift:
    """A view the nightly drift run could not measure, and why."""

    view: str
    reason: str


def nightly_drift(
    spark: SparkSession, settings: Settings, repo: Repo, start: dt.date, end: dt.date
) -> tuple[list[DriftResult], list[SkippedDrift]]:
    """Drift of [start, end] against the ``drift.reference_days`` days before it, for every view that sets them.

    A view whose reference or current interval has no rows yet (the first days of a table) is skipped with
    the reason; other errors propagate.
    """
    results, skipped = [], []
    for name, view in sorted(repo.views.items()):
        days = view.drift.reference_days
        if days is None:
            continue
        if not numeric_features(view):
            skipped.append(SkippedDrift(name, "no numeric features"))
            continue
        ref_start, ref_end = start - dt.timedelta(days=days), start - dt.timedelta(days=1)
        try:
            results += measure_drift(
                spark, settings, repo, name, start=start, end=end, reference_start=ref_start, reference_end=ref_end
            )
        except NothingToCompare as exc:
            skipped.append(SkippedDrift(name, str(exc)))
    return results, skipped
