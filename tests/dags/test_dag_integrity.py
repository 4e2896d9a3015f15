"""DAG integrity: every DAG loads, follows the policy (tags, owners, retries, timeouts) under the production
configuration, imports nothing heavy, and the nightly DAG has its shape, assets and params. No Spark, no runs:
Airflow's DagBag parses the DAG files in a process of its own (the end-to-end runs are in tests/integration)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO_ROOT, isolated_env

PROD = "prod.example"
HEAVY_MODULES = ("pyspark", "great_expectations", "dbt", "delta", "pandas", "boto3", "redis")

ENVS = (PROD, "ci")

# Loads the DagBag under each configuration named in argv[2:] in turn (the DAG files read the settings at import).
DESCRIBE_DAGS = textwrap.dedent(
    """
    import json, os, sys
    from airflow.dag_processing.dagbag import DagBag
    from featurelake.config import get_settings
    out = {}
    for env in sys.argv[2:]:
        os.environ["FEATURELAKE_ENV"] = env
        get_settings.cache_clear()
        bag = DagBag()
        dags = {}
        for dag_id, dag in bag.dags.items():
            dags[dag_id] = {
                "tags": sorted(dag.tags),
                "timetable": type(dag.timetable).__name__,
                "params": sorted(dag.params.keys()),
                "max_active_runs": dag.max_active_runs,
                "tasks": [
                    {
                        "id": t.task_id,
                        "owner": t.owner,
                        "retries": t.retries,
                        "backoff": bool(t.retry_exponential_backoff),
                        "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                        "outlets": sorted(getattr(a, "name", "") for a in t.outlets),
                        "upstream": sorted(t.upstream_task_ids),
                    }
                    for t in dag.tasks
                ],
            }
        out[env] = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": dags}
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[1].split(","))
    print("JSON:" + json.dumps({"envs": out, "heavy": heavy}))
    """
)


@pytest.fixture(scope="module")
def described(tmp_path_factory) -> dict:
    """The DAGs as Airflow's DagBag loads them per configuration (conf/<env>.yaml) in one process of their own,
    and the heavy modules that process imported."""
    from featurelake.config import load_settings
    from featurelake.services.airflow import airflow_env

    environ = isolated_env(tmp_path_factory.mktemp("dags"))
    proc = subprocess.run(
        [sys.executable, "-c", DESCRIBE_DAGS, ",".join(HEAVY_MODULES), *ENVS],
        env=airflow_env(load_settings(environ=environ), environ),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("JSON:"))
    return json.loads(line[len("JSON:") :])


@pytest.mark.parametrize("env", ENVS)
def test_dagbag_loads_every_dag_without_import_errors(described, env):
    loaded = described["envs"][env]
    assert loaded["import_errors"] == {}
    assert set(loaded["dags"]) == {"feature_pipeline", "training_set", "feature_backfill"}


def test_policy_tags_owners_retries_timeouts_and_light_imports(described):
    from featurelake.config import load_settings, parse_duration

    o = load_settings(PROD, environ={"FEATURELAKE_HOME": str(REPO_ROOT)}).orchestration
    for dag_id, dag in described["envs"][PROD]["dags"].items():
        assert "featurelake" in dag["tags"], dag_id
        for t in dag["tasks"]:
            assert t["owner"] == o.owner, (dag_id, t["id"])
            assert t["retries"] >= 2, (dag_id, t["id"])  # production tasks ride out a transient failure
            assert t["backoff"], (dag_id, t["id"])
            assert t["timeout"] == parse_duration(o.task_timeout).total_seconds(), (dag_id, t["id"])
    # Parsing the DAG files imports none of the heavy libraries: the tasks' jobs do.
    assert described["heavy"] == []


@pytest.mark.parametrize("env", ENVS)
def test_nightly_dag_shape_assets_and_params(described, env):
    from featurelake.repo import load_repo

    dags = described["envs"][env]["dags"]
    dag = dags["feature_pipeline"]
    tasks = {t["id"]: t for t in dag["tasks"]}
    repo = load_repo(REPO_ROOT / "features")
    computed = sorted(v.offline_table for v in repo.views.values() if v.computation.kind in ("window", "transform"))
    dbt_tables = sorted(v.offline_table for v in repo.views.values() if v.computation.kind == "dbt")
    assert tasks["ingest"]["upstream"] == []
    assert tasks["dbt_staging"]["upstream"] == ["ingest"]
    assert tasks["dbt_features"]["upstream"] == ["dbt_staging"]
    assert tasks["dbt_features"]["outlets"] == dbt_tables
    compute = [t for t in tasks.values() if t["id"].startswith("compute_")]
    assert len(compute) == len(computed)  # one task per window/transform view, side by side
    assert sorted(a for t in compute for a in t["outlets"]) == computed
    assert all(t["upstream"] == ["dbt_features"] for t in compute)
    assert tasks["materialize"]["upstream"] == sorted(t["id"] for t in compute)
    assert tasks["check_features"]["upstream"] == ["materialize"]
    assert tasks["monitor_report"]["upstream"] == ["check_features"]
    assert dag["max_active_runs"] == 1
    assert dag["timetable"] == "CronDataIntervalTimetable"
    assert dags["training_set"]["timetable"] == "NullTimetable"
    assert dag["params"] == ["end", "start"]
    assert dags["training_set"]["params"] == [
        "end",
        "entities",
        "full_feature_names",
        "name",
        "overwrite",
        "service",
        "start",
    ]
