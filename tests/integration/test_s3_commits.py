"""Delta commits on s3a:// from several drivers at once, and a driver killed mid-write (issue 19 items 4 and 6).

Each driver is a process of its own (tests/support/s3_driver.py: its own SparkSession and JVM, local[1]) with
featurelake's settings: storage.s3.commit_coordination `conditional` (the default), so a commit is a PUT
If-None-Match: * on the S3 server (S3Proxy, filesystem-nio2, on a free port). The log is listed with boto3; the
rows are read back by the test run's shared session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, isolated_env
from tests.integration.test_s3 import s3, s3a  # noqa: F401  (the S3 server and the bucket, as fixtures)
from tests.support.s3_driver import SCHEMA, day_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DRIVER_START_TIMEOUT_S = 240


def driver_env(settings) -> dict[str, str]:
    """A driver's environment: the test's S3 server and its key pair; everything else the test state's."""
    from featurelake.services.s3 import credentials_env

    s3_settings = settings.storage.s3
    return {
        **isolated_env(
            settings.state_path,
            FEATURELAKE__SERVICES__S3__PORT=str(settings.services.s3.port),
            FEATURELAKE__STORAGE__S3__ENDPOINT=str(s3_settings.endpoint),
            FEATURELAKE__STORAGE__S3__PATH_STYLE_ACCESS="true",
        ),
        **credentials_env(settings),
    }


def start_driver(settings, log: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.s3_driver", *args],
        cwd=REPO_ROOT,
        env=driver_env(settings),
        stderr=log.open("w"),
        start_new_session=True,  # its own process group: the driver's JVM is killed with it
        **popen,
    )


def log_keys(boto, bucket: str, table: str) -> list[str]:
    listed = boto.list_objects_v2(Bucket=bucket, Prefix=f"{table}/_delta_log/")
    # the folder's own marker (S3A's mkdirs) aside
    return sorted(o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", []) if not o["Key"].endswith("/"))


def commits(boto, bucket: str, table: str) -> list[str]:
    return [k for k in log_keys(boto, bucket, table) if k.endswith(".json")]


def rows_of(spark, path: str, version: int | None = None) -> list[tuple]:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return sorted(tuple(r) for r in reader.load(path).collect())


def tail(log: Path) -> str:
    return " / ".join(log.read_text(errors="replace").strip().splitlines()[-5:])


def test_concurrent_drivers_append_to_one_table_and_lose_no_commit(s3a, spark, tmp_path):  # noqa: F811
    settings, boto, bucket = s3a
    writers, rows = 4, 50
    table = "concurrent/appends"
    path = f"s3a://{bucket}/{table}"
    spark.createDataFrame([], SCHEMA).write.format("delta").save(path)  # version 0 creates the table

    start = tmp_path / "start"
    ready = [tmp_path / f"ready-{n}" for n in range(writers)]
    logs = [tmp_path / f"driver-{n}.log" for n in range(writers)]
    drivers = [
        start_driver(settings, logs[n], "append", path, f"w{n}", str(rows), str(ready[n]), str(start))
        for n in range(writers)
    ]
    try:
        deadline = time.monotonic() + DRIVER_START_TIMEOUT_S
        while not all(r.exists() for r in ready):
            for n, proc in enumerate(drivers):
                assert proc.poll() is None, f"driver {n} ended before the barrier: {tail(logs[n])}"
            assert time.monotonic() < deadline, "the drivers did not reach the barrier"
            time.sleep(0.1)
        start.touch()  # all drivers append at once
        for n, proc in enumerate(drivers):
            assert proc.wait(timeout=DRIVER_START_TIMEOUT_S) == 0, f"driver {n}: {tail(logs[n])}"
    finally:
        for proc in drivers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    expected = sorted((f"w{n}", i, 0) for n in range(writers) for i in range(rows))
    assert rows_of(spark, path) == expected
    assert commits(boto, bucket, table) == [f"{v:020d}.json" for v in range(writers + 1)]
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    assert sorted((r["version"], r["operation"]) for r in history) == [(v, "WRITE") for v in range(writers + 1)]
    # A commit that read version r but landed at v > r + 1 lost a race for r + 1 and was retried, not overwritten.
    retried = sorted(r["version"] for r in history if r["version"] > (r["readVersion"] or 0) + 1)
    print(f"commits retried after a lost race: {retried}")


def test_driver_killed_during_writes_keeps_the_last_version_and_a_rerun_converges(s3a, spark, tmp_path):  # noqa: F811
    settings, boto, bucket = s3a
    days, rows = 8, 20
    table = "killed/days"
    path = f"s3a://{bucket}/{table}"
    log = tmp_path / "driver.log"

    driver = start_driver(settings, log, "days", path, str(days), str(rows), stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None
        for line in driver.stdout:
            if line.strip() == "committed day 2":
                break
        else:
            pytest.fail(f"the driver ended before its third commit: {tail(log)}")
        time.sleep(0.5)  # into the next day's write: its job, its files, its commit
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # kill -9 of the driver (and its JVM) by its process group
        driver.wait()
    assert driver.returncode == -signal.SIGKILL

    keys = log_keys(boto, bucket, table)
    last = len(commits(boto, bucket, table)) - 1
    assert last >= 2 and last < days
    assert commits(boto, bucket, table) == [f"{v:020d}.json" for v in range(last + 1)]
    assert not [k for k in keys if not k.endswith((".json", ".crc"))], keys  # nothing half-written in the log
    for version in range(last + 1):  # every committed version whole: days 0..version, each day's rows once
        assert rows_of(spark, path, version) == sorted(r for d in range(version + 1) for r in day_rows(d, rows))

    rerun_log = tmp_path / "rerun.log"
    rerun = start_driver(settings, rerun_log, "days", path, str(days), str(rows), stdout=subprocess.DEVNULL)
    assert rerun.wait(timeout=DRIVER_START_TIMEOUT_S) == 0, tail(rerun_log)
    assert rows_of(spark, path) == sorted(r for d in range(days) for r in day_rows(d, rows))
    assert commits(boto, bucket, table) == [f"{v:020d}.json" for v in range(last + 1 + days)]
