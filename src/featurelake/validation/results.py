"""Validation outcomes: read from GE results, described for people, stored in ``monitoring.validation_results``."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurelake.tables import append_rows, table_exists

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RESULTS_TABLE = "monitoring.validation_results"
ROW_COUNT = "expect_table_row_count_to_be_between"
_META_KWARGS = {"batch_id", "result_format", "meta", "notes", "column", "column_list", "row_condition"}


@dataclass(frozen=True)
class Outcome:
    """One expectation's result in a run."""

    expectation_type: str
    columns: tuple[str, ...]
    success: bool
    observed: str
    expected: str
    kwargs: dict[str, Any]
    unexpected_count: int | None
    element_count: int | None
    sample: tuple[dict[str, Any], ...]  # failing rows (keys, timestamp, value) or values, capped
    error: str | None

    @property
    def label(self) -> str:
        return f"{self.expectation_type}({', '.join(self.columns)})" if self.columns else self.expectation_type


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple | set):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def describe_expected(kind: str, kwargs: dict[str, Any]) -> str:
    """What an expectation asks for, in words (falls back to its arguments)."""
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    bounds = (
        f"between {_fmt(lo)} and {_fmt(hi)}"
        if lo is not None and hi is not None
        else f">= {_fmt(lo)}"
        if lo is not None
        else f"<= {_fmt(hi)}"
    )
    mostly = f" (at least {kwargs['mostly']:.0%} of rows)" if kwargs.get("mostly", 1) < 1 else ""
    match kind:
        case "expect_column_values_to_not_be_null":
            return "no nulls" + mostly
        case "expect_column_values_to_be_between":
            return f"values {bounds}" + mostly
        case "expect_column_values_to_be_in_set":
            return f"values in {_fmt(sorted(kwargs.get('value_set') or [], key=str))}" + mostly
        case "expect_column_values_to_match_regex":
            return f"values match /{kwargs.get('regex')}/" + mostly
        case "expect_compound_columns_to_be_unique" | "expect_column_values_to_be_unique":
            return "no duplicate rows"
        case "expect_table_row_count_to_be_between":
            return f"row count {bounds}"
        case "expect_column_max_to_be_between":
            return f"latest value {bounds}"
        case "expect_column_min_to_be_between":
            return f"smallest value {bounds}"
        case "expect_column_values_to_be_of_type":
            return f"type {kwargs.get('type_')}"
        case "expect_table_columns_to_match_set":
            exact = "exactly " if kwargs.get("exact_match", True) else "at least "
            return f"{exact}columns {_fmt(sorted(kwargs.get('column_set') or []))}"
    rest = {k: v for k, v in kwargs.items() if k not in _META_KWARGS}
    return json.dumps(rest, default=str, sort_keys=True)


def describe_observed(kind: str, kwargs: dict[str, Any], result: dict[str, Any]) -> str:
    """What the batch showed, in words."""
    if "unexpected_count" in result and "observed_value" not in result:
        n, total = result.get("unexpected_count") or 0, result.get("element_count") or 0
        pct = result.get("unexpected_percent")
        text = f"{n:,} of {total:,} rows fail" + (f" ({pct:.2f}%)" if pct is not None and n else "")
        values = result.get("partial_unexpected_list") or []
        if n and values and kind != "expect_compound_columns_to_be_unique":
            text += f"; e.g. {_fmt(list(dict.fromkeys(_fmt(v) for v in values))[:5])}"
        return text
    observed = result.get("observed_value")
    if kind == "expect_table_columns_to_match_set" and isinstance(observed, list):
        expected = set(kwargs.get("column_set") or [])
        missing = sorted(expected - set(observed))
        extra = sorted(set(observed) - expected) if kwargs.get("exact_match", True) else []
        parts = [f"missing {_fmt(missing)}"] if missing else []
        parts += [f"unexpected {_fmt(extra)}"] if extra else []
        return "; ".join(parts) or f"columns {_fmt(sorted(observed))}"
    if kind == ROW_COUNT:
        return f"{observed:,} rows" if isinstance(observed, int) else str(observed)
    return "nothing (no rows)" if observed is None else _fmt(observed)


def _error(exception_info: Any) -> str | None:
    """The first exception message GE caught while computing an expectation's metrics."""
    infos = [exception_info] if isinstance(exception_info, dict) and "raised_exception" in exception_info else []
    if isinstance(exception_info, dict) and not infos:
        infos = [v for v in exception_info.values() if isinstance(v, dict)]
    for info in infos:
        if info.get("raised_exception") or info.get("exception_message"):
            message = str(info.get("exception_message") or "error")
            return message.strip().splitlines()[0][:500]
    return None


def outcome_from(result: dict[str, Any], sample_rows: int) -> Outcome:
    """An Outcome from one ``ExpectationValidationResult.to_json_dict()``."""
    config = result.get("expectation_config") or {}
    kind = config.get("type", "?")
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    columns = tuple(kwargs.get("column_list") or ([kwargs["column"]] if "column" in kwargs else []))
    res = result.get("result") or {}
    error = _error(result.get("exception_info"))
    sample = res.get("partial_unexpected_index_list") or [
        {"value": v} for v in res.get("partial_unexpected_list") or []
    ]
    return Outcome(
        expectation_type=kind,
        columns=columns,
        success=bool(result.get("success")),
        observed=f"error: {error}" if error else describe_observed(kind, kwargs, res),
        expected=describe_expected(kind, kwargs),
        kwargs=kwargs,
        unexpected_count=res.get("unexpected_count"),
        element_count=res.get("element_count"),
        sample=tuple(sample[:sample_rows]) if not result.get("success") else (),
        error=error,
    )


@dataclass(frozen=True)
class RunInfo:
    """Facts about a validation run stored with each of its outcomes."""

    run_id: str
    target: str
    kind: str
    suite: str
    mode: str  # gate (write-audit-publish) or check (a published interval, by hand)
    policy: str
    interval_start: dt.date
    interval_end: dt.date
    table: str
    delta_version: int | None
    row_count: int | None
    row_days: int  # days the validated rows cover: the row count floor of later runs is per day of them
    run_success: bool
    published: bool
    validated_at: dt.datetime


def results_schema():
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("run_id", T.StringType(), False),
            T.StructField("target", T.StringType(), False),
            T.StructField("kind", T.StringType(), False),
            T.StructField("suite", T.StringType(), False),
            T.StructField("mode", T.StringType(), False),
            T.StructField("policy", T.StringType(), False),
            T.StructField("interval_start", T.DateType()),
            T.StructField("interval_end", T.DateType()),
            T.StructField("table_name", T.StringType(), False),
            T.StructField("delta_version", T.LongType()),
            T.StructField("row_count", T.LongType()),
            T.StructField("expectation_type", T.StringType(), False),
            T.StructField("columns", T.ArrayType(T.StringType()), False),
            T.StructField("success", T.BooleanType(), False),
            T.StructField("observed", T.StringType()),
            T.StructField("expected", T.StringType()),
            T.StructField("kwargs", T.StringType()),
            T.StructField("unexpected_count", T.LongType()),
            T.StructField("element_count", T.LongType()),
            T.StructField("error", T.StringType()),
            T.StructField("run_success", T.BooleanType(), False),
            T.StructField("published", T.BooleanType(), False),
            T.StructField("validated_at", T.TimestampType(), False),
            T.StructField("row_days", T.LongType()),  # added later: null in older rows
        ]
    )


def record_results(spark: SparkSession, run: RunInfo, outcomes: list[Outcome]) -> None:
    """Append one row per expectation outcome to ``monitoring.validation_results`` (one Delta commit)."""
    rows = [
        (
            run.run_id,
            run.target,
            run.kind,
            run.suite,
            run.mode,
            run.policy,
            run.interval_start,
            run.interval_end,
            run.table,
            run.delta_version,
            run.row_count,
            o.expectation_type,
            list(o.columns),
            o.success,
            o.observed,
            o.expected,
            json.dumps(o.kwargs, default=str, sort_keys=True),
            o.unexpected_count,
            o.element_count,
            o.error,
            run.run_success,
            run.published,
            run.validated_at,
            run.row_days,
        )
        for o in outcomes
    ]
    append_rows(spark, RESULTS_TABLE, rows, results_schema(), merge_schema=True)


def previous_good_run(spark: SparkSession, target: str, mode: str) -> tuple[int, int] | None:
    """(rows, days they cover) of the latest run of ``target`` in ``mode`` that passed or published.

    Runs recorded before ``row_days`` was stored are skipped: a window view's count then covered more days
    than its interval, so it is no baseline (the first run after the upgrade gets the per-day floor only).
    """
    from pyspark.sql import functions as F

    if not table_exists(spark, RESULTS_TABLE):
        return None
    table = spark.table(RESULTS_TABLE)
    if "row_days" not in table.columns:
        return None
    rows = (
        table.where(
            (F.col("target") == target)
            & (F.col("mode") == mode)
            & (F.col("expectation_type") == ROW_COUNT)
            & (F.col("run_success") | F.col("published"))
            & F.col("row_count").isNotNull()
            & (F.col("row_days") > 0)
        )
        .orderBy(F.col("validated_at").desc())
        .select("row_count", "row_days")
        .limit(1)
        .collect()
    )
    return (int(rows[0]["row_count"]), int(rows[0]["row_days"])) if rows else None
