"""Run dbt in this process, on this process's SparkSession.

dbt-spark's ``session`` method builds its session with ``SparkSession.builder.getOrCreate()``, so when
:func:`featurelake.spark.get_spark` has created the session first, dbt's SQL runs on it: same Delta
extensions, JARs, warehouse and Hive metastore, same ``staging``/``features`` databases. dbt-spark forces
``spark.sql.ansi.enabled=false`` on the session it gets; :func:`run_dbt` restores the previous value.
The manifest lands in ``dbt_project/target/manifest.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featurelake.config import Settings
from featurelake.errors import FeaturelakeError, InputError
from featurelake.runs import Interval

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PROJECT_DIR = "dbt_project"
SESSION_TARGETS = ("local", "ci")


class DbtError(FeaturelakeError):
    """dbt reported failed models or tests (or could not run)."""


@dataclass(frozen=True)
class DbtResult:
    command: list[str]
    success: bool
    statuses: dict[str, str]  # unique_id -> status (success, pass, fail, error, skipped...)
    relations: dict[str, str]  # unique_id of a model -> `schema.alias` (a Spark database.table)
    error: str | None = None  # dbt's own exception, when it ran no nodes

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
    full_refresh: bool = False,
) -> list[str]:
    """The dbt command line (pure): project, profiles, target and the interval as ``start_date``/``end_date`` vars."""
    if command not in ("build", "run", "test", "parse", "compile"):
        raise InputError(f"unsupported dbt command {command!r}")
    pdir = project_dir(settings)
    args = [command, "--project-dir", str(pdir), "--profiles-dir", str(pdir), "--target", dbt_target(settings)]
    if interval:
        args += ["--vars", json.dumps({"start_date": interval.start.isoformat(), "end_date": interval.end.isoformat()})]
    if select:
        # cautious: a test runs only when all its parents are selected (a relationship test of a later group
        # waits for that group instead of failing on a table not built yet)
        args += ["--select", select, "--indirect-selection", "cautious"]
    if full_refresh:
        args.append("--full-refresh")
    return args


def run_dbt(spark: SparkSession, settings: Settings, args: list[str], *, check: bool = True) -> DbtResult:
    """Invoke dbt programmatically (``dbtRunner``) on ``spark``'s catalog; raise DbtError on failures if ``check``."""
    from dbt.cli.main import dbtRunner

    ansi = spark.conf.get("spark.sql.ansi.enabled")
    try:
        res = dbtRunner().invoke([*args, "--log-path", str(project_dir(settings) / "logs"), "--no-use-colors"])
    finally:
        if ansi is not None:
            spark.conf.set("spark.sql.ansi.enabled", ansi)
    statuses: dict[str, str] = {}
    relations: dict[str, str] = {}
    results = getattr(res.result, "results", None) or []
    for r in results:
        statuses[r.node.unique_id] = str(getattr(r.status, "value", r.status))
        if r.node.resource_type == "model":
            relations[r.node.unique_id] = f"{r.node.schema}.{r.node.alias}"
    result = DbtResult(args, bool(res.success), statuses, relations, str(res.exception) if res.exception else None)
    if check:
        result.check()
    return result


def model_selector(settings: Settings, group: str) -> str:
    """A dbt selector for ``group``: ``path:models/<group>`` when it is a folder of models, else as given."""
    if (project_dir(settings) / "models" / group).is_dir():
        return f"path:models/{group}"
    return group
