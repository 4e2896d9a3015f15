"""Drivers start from the class archive `make setup` built (featurelake.class_archive): a driver on the test run's
PostgreSQL metastore (the class path of every driver here) loads Spark's and Delta's classes from it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import TEST_JVM_OPTIONS, metastore_database, run_cli

pytestmark = pytest.mark.integration


def test_a_driver_loads_spark_and_delta_classes_from_the_archive(tmp_path, postgres, settings):
    from featurelake.class_archive import archive_path

    assert archive_path(settings) is not None and archive_path(settings).is_file()  # built by `make setup`
    state, logs = tmp_path / "state", tmp_path / "logs"
    logs.mkdir()
    postgres.ensure_database(metastore_database(state))
    try:
        # Every JVM of the command logs where each class came from, one file per process.
        options = f"{TEST_JVM_OPTIONS} -Xlog:class+load=info:file={logs}/classes-%p.log"
        out = run_cli(state, "sql", "--json", "SELECT 6 * 7 AS n", JAVA_TOOL_OPTIONS=options).stdout
    finally:
        postgres.drop_database(metastore_database(state))
    assert '{"n": 42}' in out
    sources = {}
    for log in logs.glob("classes-*.log"):
        for name, source in re.findall(r"\] (\S+) source: (.+)$", log.read_text(), re.M):
            sources.setdefault(name, source)
    for name in ("org.apache.spark.sql.SparkSession", "io.delta.sql.DeltaSparkSessionExtension"):
        assert sources.get(name) == "shared objects file (top)", (name, sources.get(name))
