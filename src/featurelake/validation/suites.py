"""Expectation suites: generated from a target's definition, plus the hand-written ones in ``expectations/``.

Generated for every target: the schema (column set, declared types), keys / timestamps / date partition not
null, unique (keys, timestamp), counts >= 0, the row count against the previous good run and the freshness
of the latest timestamp. The last two depend on the run: they are suite parameters (``$PARAMETER``) whose
values :func:`run_parameters` computes, so a suite's JSON stays the same from run to run.

``expectations/feature_views/<view>.py`` and ``expectations/raw/<table>.py`` add domain knowledge (ranges,
accepted values) with a function ``expectations(target) -> list[Expectation]``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurelake.config import Settings, parse_duration
from featurelake.errors import FeaturelakeError
from featurelake.repo.definitions import ValueType
from featurelake.repo.loader import fresh_package
from featurelake.runs import Interval
from featurelake.validation.targets import Target

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.expectations import Expectation

PACKAGE = "featurelake_expectations"
MIN_ROW_COUNT = "min_row_count"
MIN_LATEST_TIMESTAMP = "min_latest_timestamp"

SPARK_TYPES = {
    ValueType.INT32: "IntegerType",
    ValueType.INT64: "LongType",
    ValueType.FLOAT: "FloatType",
    ValueType.DOUBLE: "DoubleType",
    ValueType.STRING: "StringType",
    ValueType.BOOL: "BooleanType",
    ValueType.TIMESTAMP: "TimestampType",
    ValueType.DATE: "DateType",
}


def generated_expectations(target: Target) -> list[Expectation]:
    """The expectations every target gets from its definition (run-dependent bounds as parameters)."""
    import great_expectations.expectations as gxe

    meta = {"source": "definition"}
    out: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(target.columns), exact_match=target.exact_columns, meta=meta)
    ]
    out += [
        gxe.ExpectColumnValuesToBeOfType(column=c, type_=SPARK_TYPES[t], meta=meta)
        for c, t in target.columns.items()
        if t is not None
    ]
    out += [gxe.ExpectColumnValuesToNotBeNull(column=c, meta=meta) for c in target.not_null]
    out.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=[*target.keys, target.timestamp], meta=meta))
    out += [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, meta=meta) for c in target.non_negative]
    out.append(gxe.ExpectTableRowCountToBeBetween(min_value={"$PARAMETER": MIN_ROW_COUNT}, meta=meta))
    if target.freshness is not None:
        out.append(
            gxe.ExpectColumnMaxToBeBetween(
                column=target.timestamp, min_value={"$PARAMETER": MIN_LATEST_TIMESTAMP}, meta=meta
            )
        )
    return out


def custom_expectations(target: Target, folder: Path) -> list[Expectation]:
    """The hand-written expectations of ``target`` from ``folder`` (none when it has no module)."""
    from great_expectations.expectations import Expectation

    sub, name = target.module_path
    path = folder / sub / f"{name}.py"
    if not path.is_file():
        return []
    fresh_package(PACKAGE, folder)
    try:
        module = importlib.import_module(f"{PACKAGE}.{sub}.{name}")
        factory = getattr(module, "expectations", None)
        if not callable(factory):
            raise FeaturelakeError(f"{path}: define a function `expectations(target)` returning a list")
        items = list(factory(target))
    except FeaturelakeError:
        raise
    except Exception as exc:  # a broken suite module is a definition problem: name the file
        raise FeaturelakeError(f"{path}: cannot build the expectations of {target.name}: {exc!r}") from exc
    bad = [repr(i) for i in items if not isinstance(i, Expectation)]
    if bad:
        raise FeaturelakeError(f"{path}: expectations() returned non-expectations: {', '.join(bad)}")
    for item in items:
        item.meta = {**(item.meta or {}), "source": str(path.relative_to(folder.parent))}
    return items


def build_suite(target: Target, settings: Settings) -> gx.ExpectationSuite:
    """The suite of ``target``: generated expectations plus those under ``validation.expectations_dir``."""
    import great_expectations as gx

    folder = Path(settings.path(settings.validation.expectations_dir))
    return gx.ExpectationSuite(
        name=target.suite_name,
        expectations=generated_expectations(target) + custom_expectations(target, folder),
        meta={"table": target.table, "kind": target.kind, "policy": target.policy},
    )


def interval_days(target: Target, interval: Interval) -> int:
    """Days the row count is normalized by (1 for a table without date partitions)."""
    return interval.days if target.date_partition else 1


def run_parameters(
    target: Target, settings: Settings, interval: Interval, previous: tuple[int, int] | None, days: int | None = None
) -> dict[str, Any]:
    """Values of the suite parameters for a run over ``interval``.

    ``previous`` is (rows, days) of the previous good run of the same target and mode, or None. The
    row count must reach ``min_row_ratio`` of its rows per day (and ``min_rows_per_day``) times ``days``,
    the days this batch's rows cover (default: the interval's days). The latest timestamp must reach the end
    of the interval (``end`` + 1 day, midnight) minus the target's freshness and ``freshness_slack``.
    """
    cfg = settings.validation
    days = interval_days(target, interval) if days is None else days
    floor = cfg.min_rows_per_day * days
    if previous and previous[1] > 0:
        floor = max(floor, math.ceil(cfg.min_row_ratio * previous[0] / previous[1] * days))
    params: dict[str, Any] = {MIN_ROW_COUNT: floor}
    if target.freshness is not None:
        slack = parse_duration(cfg.freshness_slack) or dt.timedelta(0)
        interval_end = dt.datetime.combine(interval.end + dt.timedelta(days=1), dt.time())
        params[MIN_LATEST_TIMESTAMP] = interval_end - target.freshness - slack
    return params
