"""featurelake: batch feature engineering on Spark, dbt and Delta Lake (the offline half of a feature store)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pyspark.sql import SparkSession

    from featurelake.config import Settings
    from featurelake.repo import Repo
    from featurelake.streaming.push import PushResult


def push(
    source: str,
    rows: Mapping[str, Sequence[Any]] | Any,
    to: str = "online",
    *,
    settings: Settings | None = None,
    repo: Repo | None = None,
    spark: SparkSession | None = None,
) -> PushResult:
    """Push ``rows`` (columns of values ``{field: [...]}``, or a pandas DataFrame) to the stream source ``source``:
    ``to`` = ``online`` (Feast's default), ``offline`` or ``online_and_offline`` (:mod:`featurelake.streaming.push`).
    The configured feature repository and online store unless given; an offline push starts Spark unless given."""
    from featurelake.config import get_settings
    from featurelake.online.backends import open_store
    from featurelake.online.store import StoreConfig
    from featurelake.repo import feature_repo
    from featurelake.streaming.push import PushMode
    from featurelake.streaming.push import push as push_rows

    settings = settings or get_settings()
    repo = repo or feature_repo(settings)
    if hasattr(rows, "columns"):  # pandas: missing values (NaN, NaT) become nulls
        frame: Any = rows
        rows = {str(c): frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in frame.columns}
    if spark is None and PushMode.parse(to).offline:
        from featurelake.spark import get_spark

        spark = get_spark(settings)
    with open_store(StoreConfig.from_settings(settings)) as store:
        return push_rows(source, rows, to, repo=repo, store=store, spark=spark)
