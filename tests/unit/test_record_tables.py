"""Record tables (run records, validation results, statistics, manifests): one file per append, compacted; a
run's records held and written together at its end, or committed behind a block of runs as each run ends."""

from __future__ import annotations

import threading
import time
from contextvars import copy_context

import pytest

from featurelake.tables import append_rows

SCHEMA = "run INT, note STRING"


@pytest.mark.slow  # nine Delta commits and a compaction: in `make test`, not in the fast tier
def test_an_append_writes_one_file_and_every_nth_version_compacts_the_table(spark, monkeypatch):
    from featurelake import tables

    monkeypatch.setattr(tables, "RECORD_COMPACT_EVERY", 4)  # instead of 10, to keep the test short
    name = "monitoring.compaction_probe"
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    rows = [(i, f"note {i}") for i in range(9)]
    append_rows(spark, name, rows[:3], SCHEMA)
    assert spark.sql(f"DESCRIBE DETAIL {name}").first()["numFiles"] == 1
    for row in rows[3:]:
        append_rows(spark, name, [row], SCHEMA)

    history = sorted((r["version"], r["operation"]) for r in spark.sql(f"DESCRIBE HISTORY {name}").collect())
    # versions 1-4 are appends; the fourth compacts the five files (version 5), then two more appends
    assert [op for _, op in history[1:]] == ["WRITE"] * 4 + ["OPTIMIZE"] + ["WRITE"] * 2
    assert spark.sql(f"DESCRIBE DETAIL {name}").first()["numFiles"] == 3
    assert sorted(tuple(r) for r in spark.table(name).collect()) == rows
    spark.sql(f"DROP TABLE {name}")


def _versions(spark, name: str) -> int:
    return len(spark.sql(f"DESCRIBE HISTORY {name}").collect())


def test_held_records_land_at_the_end_of_the_block_in_one_commit_per_table(spark):
    from featurelake.runs import holding_records
    from featurelake.tables import table_exists

    first, second, direct = "monitoring.held_probe_a", "monitoring.held_probe_b", "monitoring.held_probe_direct"
    for name in (first, second, direct):
        spark.sql(f"DROP TABLE IF EXISTS {name}")
    with holding_records(spark):
        append_rows(spark, first, [(1, "a"), (2, "b")], SCHEMA)
        with holding_records(spark):  # an inner block adds to the outer one's commit
            append_rows(spark, first, [(3, "c")], SCHEMA)
        # a thread in a copy of this context holds its rows too; a thread in a fresh context appends at once
        held = threading.Thread(target=copy_context().run, args=(append_rows, spark, second, [(4, "d")], SCHEMA))
        at_once = threading.Thread(target=append_rows, args=(spark, direct, [(5, "e")], SCHEMA))
        for thread in (held, at_once):
            thread.start()
            thread.join()
        assert not table_exists(spark, first) and not table_exists(spark, second)
        assert table_exists(spark, direct)
    assert sorted(tuple(r) for r in spark.table(first).collect()) == [(1, "a"), (2, "b"), (3, "c")]
    assert [tuple(r) for r in spark.table(second).collect()] == [(4, "d")]
    assert _versions(spark, first) == 1 and _versions(spark, second) == 1
    for name in (first, second, direct):
        spark.sql(f"DROP TABLE {name}")


def test_held_records_are_written_when_the_block_raises_and_a_failed_write_is_noted_on_its_error(spark):
    from featurelake.runs import holding_records
    from featurelake.tables import table_exists

    name, broken = "monitoring.held_probe_failed", "monitoring.held_probe_broken"
    for table in (name, broken):
        spark.sql(f"DROP TABLE IF EXISTS {table}")
    with pytest.raises(ValueError, match="the run failed") as raised, holding_records(spark):
        append_rows(spark, name, [(1, "recorded anyway")], SCHEMA)
        append_rows(spark, broken, [("not a number", "x")], SCHEMA)
        raise ValueError("the run failed")
    assert [tuple(r) for r in spark.table(name).collect()] == [(1, "recorded anyway")]
    assert [n for n in raised.value.__notes__ if n.startswith("(its records could not be written")]
    assert not table_exists(spark, broken)
    spark.sql(f"DROP TABLE {name}")


def test_records_held_behind_a_block_are_committed_after_its_inner_blocks_end_together(spark, monkeypatch):
    from featurelake import runs
    from featurelake.runs import holding_records, run_all
    from featurelake.tables import table_exists

    monkeypatch.setattr(runs, "RECORD_LINGER_S", 2.0)  # instead of 30 s, to keep the test short
    name = "monitoring.behind_probe"
    spark.sql(f"DROP TABLE IF EXISTS {name}")

    def one_run(i: int) -> None:  # a run of its own (e.g. a view's), on a run_all thread
        with holding_records(spark):
            append_rows(spark, name, [(i, f"run {i}")], SCHEMA)

    def committed() -> list[tuple]:
        return sorted(tuple(r) for r in spark.table(name).collect()) if table_exists(spark, name) else []

    with holding_records(spark, behind=True):
        run_all(one_run, [1, 2], label=str, workers=2)  # both end within the linger: one commit
        deadline = time.monotonic() + 120
        while committed() != [(1, "run 1"), (2, "run 2")] and time.monotonic() < deadline:
            time.sleep(0.2)
        during = committed()  # the runs' records, committed while the block goes on
        append_rows(spark, name, [(3, "at the end")], SCHEMA)
    assert during == [(1, "run 1"), (2, "run 2")]
    assert committed() == [(1, "run 1"), (2, "run 2"), (3, "at the end")]
    assert _versions(spark, name) == 2  # the two runs' rows in one commit, then the rest
    spark.sql(f"DROP TABLE {name}")


def test_a_commit_behind_the_block_that_fails_is_raised_at_its_end(spark):
    from featurelake.runs import holding_records, run_all
    from featurelake.tables import table_exists

    name, broken = "monitoring.behind_probe_good", "monitoring.behind_probe_broken"
    for table in (name, broken):
        spark.sql(f"DROP TABLE IF EXISTS {table}")

    def one_run(i: int) -> None:
        with holding_records(spark):
            append_rows(spark, name, [(i, "recorded")], SCHEMA)
            if i == 2:
                append_rows(spark, broken, [("not a number", "x")], SCHEMA)

    # the broken row's commit, behind the block, raised at its end
    with pytest.raises(TypeError, match="can not accept object 'not a number'"), holding_records(spark, behind=True):
        run_all(one_run, [1, 2], label=str, workers=1)
    assert sorted(tuple(r) for r in spark.table(name).collect()) == [(1, "recorded"), (2, "recorded")]
    assert not table_exists(spark, broken)
    spark.sql(f"DROP TABLE {name}")
