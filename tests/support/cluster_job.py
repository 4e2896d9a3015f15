"""A job for the cluster tests, run with spark-submit (``python cluster_job.py <out_dir> [<marker_dir>]``) on the
session featurelake configures (get_spark): its executors import featurelake from the Python environment the
application ships.

1. probe: per row, ``featurelake.config.parse_duration`` of ``"<id>m"`` in seconds, and where the executor's Python and
   featurelake were loaded from -> ``<out_dir>/probe.json``;
2. aggregate: a multi-stage job (a map stage calling featurelake, two aggregations, a join) written to Delta in
   ``<out_dir>/aggregate``. With a marker folder, each map task leaves a file there when done and waits a little, so
   that a test can kill a worker while the job runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROWS = 20_000
MAP_PARTITIONS = 12
GROUPS = 97
SUPER_GROUPS = 13


def probe(batches: Iterator[Any]) -> Iterator[Any]:
    import os

    import pyarrow as pa

    import featurelake
    from featurelake.config import parse_duration

    for batch in batches:
        ids = batch.column("id").to_pylist()
        yield pa.RecordBatch.from_pydict(
            {
                "id": ids,
                "seconds": [parse_duration(f"{i}m").total_seconds() for i in ids],  # type: ignore[union-attr]
                "prefix": [sys.prefix] * len(ids),
                "featurelake": [featurelake.__file__] * len(ids),
                "cwd": [os.getcwd()] * len(ids),
            }
        )


def valued(marker_dir: str | None):
    """The map stage's function: value = parse_duration("<id % 50 + 1>m") in seconds; a marker file per task."""

    def values(batches: Iterator[Any]) -> Iterator[Any]:
        import time
        import uuid

        import pyarrow as pa

        from featurelake.config import parse_duration

        for batch in batches:
            ids = batch.column("id").to_pylist()
            seconds = [parse_duration(f"{i % 50 + 1}m").total_seconds() for i in ids]  # type: ignore[union-attr]
            yield pa.RecordBatch.from_pydict({"id": ids, "value": seconds})
        if marker_dir:
            (Path(marker_dir) / uuid.uuid4().hex).touch()
            time.sleep(1.0)  # keeps the map stage running for a while after the first tasks finished

    return values


def aggregate(spark: Any, marker_dir: str | None = None) -> Any:
    from pyspark.sql import functions as F

    rows = spark.range(0, ROWS, numPartitions=MAP_PARTITIONS)
    values = rows.mapInArrow(valued(marker_dir), "id long, value double")
    values = values.withColumn("key", F.col("id") % GROUPS)
    per_key = values.groupBy("key").agg(F.sum("value").alias("total"), F.count("*").alias("n"))
    per_group = (
        values.groupBy((F.col("key") % SUPER_GROUPS).alias("g")).agg(F.sum("value").alias("g_total")).repartition(3)
    )
    joined = per_key.join(per_group, (per_key["key"] % SUPER_GROUPS) == per_group["g"])
    return joined.select("key", "total", "n", "g_total")


def main(out_dir: str, marker_dir: str | None = None) -> None:
    from featurelake.spark import get_spark

    spark = get_spark()
    out = Path(out_dir)
    rows = spark.range(0, 64, numPartitions=4).mapInArrow(
        probe, "id long, seconds double, prefix string, featurelake string, cwd string"
    )
    (out / "probe.json").write_text(json.dumps([r.asDict() for r in rows.collect()]))
    aggregate(spark, marker_dir).write.format("delta").mode("overwrite").save(str(out / "aggregate"))
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
