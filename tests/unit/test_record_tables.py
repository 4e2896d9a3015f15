"""Record tables (run records, validation results, statistics, manifests): one file per append, compacted."""

from __future__ import annotations

import pytest

from featurelake.tables import append_rows

SCHEMA = "run INT, note STRING"


@pytest.mark.slow  # eight Delta commits and a compaction: in `make test`, not in the fast tier
def test_an_append_writes_one_file_and_small_files_are_compacted_as_appends_pile_up(spark):
    name = "monitoring.compaction_probe"
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    rows = [(i, f"note {i}") for i in range(9)]
    append_rows(spark, name, rows[:3], SCHEMA)
    assert spark.sql(f"DESCRIBE DETAIL {name}").first()["numFiles"] == 1

    spark.conf.set("spark.databricks.delta.autoCompact.minNumFiles", "4")  # instead of 50, to keep the test short
    try:
        for row in rows[3:]:
            append_rows(spark, name, [row], SCHEMA)
    finally:
        spark.conf.unset("spark.databricks.delta.autoCompact.minNumFiles")

    operations = [r["operation"] for r in spark.sql(f"DESCRIBE HISTORY {name}").collect()]
    assert "OPTIMIZE" in operations
    assert spark.sql(f"DESCRIBE DETAIL {name}").first()["numFiles"] < len(rows) - 2  # 7 appends, fewer files
    assert sorted(tuple(r) for r in spark.table(name).collect()) == rows
    spark.sql(f"DROP TABLE {name}")
