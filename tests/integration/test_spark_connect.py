"""The notebook endpoint: a Spark Connect server on the test session's catalog; a client process with no JVM builds a
training set through it and reads features, with the same rows as the in-process API; a down endpoint is one line."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, isolated_env, run_cli
from tests.support.servers import free_port
from tests.unit.test_training_set_checks import make_repo, write_features

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
P = "tst_connect"
SPINE_SCHEMA = "user_id bigint, origin string, dest string, event_timestamp timestamp, label int"

# What a notebook runs (argv: feature repository, entity path, training set name). It prints what it got and the
# processes it started: the Connect client must not start a JVM.
NOTEBOOK = """
import json, sys
import psutil
from pyspark.core.context import SparkContext
from featurelake.offline.training_set import build_training_set
from featurelake.repo import load_repo
from featurelake.services.connect import remote_session

spark = remote_session()
manifest = build_training_set(spark, load_repo(sys.argv[1]), name=sys.argv[3], entities=sys.argv[2], service="model")
print(json.dumps({
    "session": type(spark).__module__,
    "entity_version": manifest.entity_source.delta_version,
    "views": [[v.name, v.delta_version] for v in manifest.views],
    "feature_rows": spark.table("features.%s_users" % sys.argv[4]).count(),
    "children": [p.name() for p in psutil.Process().children(recursive=True)],
    "local_jvm": SparkContext._active_spark_context is not None,
}))
"""


@pytest.fixture(scope="module")
def endpoint(spark, settings):
    """A Connect server on a free port with the test session's settings (its metastore database and warehouse)."""
    from featurelake.config import ConnectSettings
    from featurelake.services.connect import connect_server

    services = settings.services.model_copy(update={"connect": ConnectSettings(port=free_port())})
    on_port = settings.model_copy(update={"services": services})
    server = connect_server(on_port)
    server.start(on_port)
    yield on_port
    server.stop(on_port)
    assert server.running_pid(on_port) is None


def rows(df) -> list[tuple]:
    return sorted((tuple(r) for r in df.collect()), key=repr)


def test_a_notebook_builds_the_same_training_set_as_the_api(spark, endpoint, state_dir, tmp_path):
    from featurelake.offline.training_set import build_training_set

    repo = make_repo(tmp_path / "features", P)
    write_features(
        spark,
        P,
        users=[(1, T0, T0, 10.0, 0.1), (1, T0 + 2 * H, T0 + 2 * H, 12.0, 0.2), (2, T0 - 3 * 24 * H, T0, 20.0, 0.3)],
        routes=[("JFK", "LAX", T0, 1.5), ("JFK", "SFO", T0 + H, 2.5)],
    )
    spine = [
        (1, "JFK", "LAX", T0 + H, 1),
        (1, "JFK", "SFO", T0 + 2 * H, 0),
        (2, "JFK", "LAX", T0, 0),  # user 2's only row is older than the 2d ttl
        (3, None, "LAX", T0, 1),
    ]
    entities = str(tmp_path / "spine")  # a Delta path: pinned by SQL, which works the same through Connect
    spark.createDataFrame(spine, SPINE_SCHEMA).write.format("delta").save(entities)

    build_training_set(spark, repo, name=f"{P}_local", entities=entities, service="model")
    proc = subprocess.run(
        [sys.executable, "-c", NOTEBOOK, str(repo.root), entities, f"{P}_remote", P],
        env=isolated_env(state_dir, FEATURELAKE__SERVICES__CONNECT__PORT=str(endpoint.services.connect.port)),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["session"] == "pyspark.sql.connect.session"
    assert not got["local_jvm"] and not [p for p in got["children"] if "java" in p]
    assert got["entity_version"] == 0 and got["views"] == [["user_stats", 0], ["route_stats", 0]]
    assert got["feature_rows"] == 3

    remote = rows(spark.table(f"training.{P}_remote"))
    assert remote == rows(spark.table(f"training.{P}_local"))
    picked = sorted((r[0], r[2], r[5], r[6]) for r in remote)  # user_id, dest, spend, score (by hand)
    assert picked == [(1, "LAX", 10.0, 1.5), (1, "SFO", 12.0, 2.5), (2, "LAX", None, 1.5), (3, "LAX", None, None)]


def test_a_down_endpoint_is_one_line_naming_the_command(state_dir, tmp_path):
    repo = make_repo(tmp_path / "features", P)
    proc = run_cli(
        state_dir,
        "training-set",
        "build",
        "--connect",
        *("--entities", "training.anything", "--name", f"{P}_never", "--service", "model", "--repo", str(repo.root)),
        check=False,
        FEATURELAKE__SERVICES__CONNECT__PORT=str(free_port()),
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1 and "is not running" in lines[0] and "featurelake serve connect" in lines[0], lines
