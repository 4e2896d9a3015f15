"""Shared fixtures: one session-scoped local SparkSession on an isolated, temporary warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The test session's JVM runs many small jobs for a few minutes: compiling with C1 only and collecting garbage on
# one thread halves its CPU time (the C2 compiler and parallel GC threads cost more than they save there), and its
# throwaway Derby metastore need not sync every commit to disk.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dderby.system.durability=test"


def isolated_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a featurelake process whose state (warehouse, metastore, online store) is ``state_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEATURELAKE")}
    env.update(
        {
            "FEATURELAKE_HOME": str(REPO_ROOT),
            "FEATURELAKE_ENV": "ci",
            "FEATURELAKE__STATE_DIR": str(state_dir),
            "FEATURELAKE__STORAGE__WAREHOUSE": str(state_dir / "warehouse"),
            "FEATURELAKE__STORAGE__METASTORE__DERBY_DIR": str(state_dir / "metastore_db"),
            "FEATURELAKE__ONLINE_STORE__SQLITE_PATH": str(state_dir / "online" / "online.db"),
            "PYSPARK_PYTHON": sys.executable,
        }
    )
    env.update(extra)
    return env


def run_cli(state_dir: Path, *args: str, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
    """Run ``featurelake *args`` in a new process on ``state_dir``; output is captured as text."""
    exe = Path(sys.executable).parent / "featurelake"
    proc = subprocess.run(
        [str(exe), *args],
        env=isolated_env(state_dir, **extra_env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"featurelake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def settings(state_dir):
    from featurelake.config import load_settings

    # Two shuffle partitions (one per core) instead of ci.yaml's 4: a multi-stage plan over a few rows costs
    # mostly per-task overhead.
    settings = load_settings(environ=isolated_env(state_dir, FEATURELAKE__SPARK__SHUFFLE_PARTITIONS="2"))
    settings.spark.conf["spark.driver.defaultJavaOptions"] = TEST_JVM_OPTIONS
    return settings


@pytest.fixture(scope="session")
def spark(settings):
    """The one SparkSession of the test run (local[2], UTC, 2 shuffle partitions, Delta, Hive on Derby, a JVM
    tuned for a short run: TEST_JVM_OPTIONS)."""
    from featurelake.spark import get_spark

    session = get_spark(settings)
    yield session
    session.stop()
