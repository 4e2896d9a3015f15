"""State off the local disk: with ``storage.artifacts`` on ``s3a://`` (S3Proxy on a free port, the shared session's
S3A pointed at it), a validation writes its GE result and Data Docs to the bucket, a training set's manifest JSON
lands there equal to the one in ``training.manifests``, and ``featurelake report`` / ``catalog`` write their pages
there, the same as a local rendering (``--out`` gives a local copy to open); the state folder gains none of them."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from tests.conftest import isolated_env
from tests.unit.test_training_set_checks import T0, make_repo, write_entities, write_features

pytestmark = pytest.mark.integration

P = "tst_art"
DAY = T0.date()


def state_files(state: Path) -> set[str]:
    """Files of the state folder but the warehouse's (the tables this test writes stay local)."""
    files = (p.relative_to(state) for p in state.rglob("*") if p.is_file())
    return {str(p) for p in files if p.parts[0] != "warehouse"}


def keys(boto, bucket: str, prefix: str) -> list[str]:
    """The objects under ``prefix`` (not the folders S3Proxy's filesystem backend also lists, ending in /)."""
    pages = boto.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", []) if o["Key"][-1] != "/")


def body(boto, bucket: str, key: str) -> str:
    return boto.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


@pytest.fixture(scope="module")
def remote(s3a, spark, settings, tmp_path_factory):
    """The shared session's settings with the artifacts in the test bucket (S3A and boto3 on the S3 server), a small
    feature repository with its tables, and the state folder's files before anything was written."""
    s3_settings, boto, bucket = s3a
    storage = settings.storage.model_copy(update={"artifacts": f"s3a://{bucket}/art", "s3": s3_settings.storage.s3})
    repo_dir = tmp_path_factory.mktemp("art_repo") / "features"
    repo = make_repo(repo_dir, P)
    h = dt.timedelta(hours=1)
    write_features(spark, P, [(1, T0, T0, 10.0, 0.5), (2, T0 + h, T0 + h, 7.0, 0.25)], [("JFK", "LAX", T0, 0.1)])
    write_entities(spark, f"training.{P}_spine", [(1, "JFK", "LAX", T0 + h, 1), (2, "JFK", "SFO", T0 + 2 * h, 0)])
    before = state_files(settings.state_path)
    yield settings.model_copy(update={"storage": storage}), boto, bucket, repo, repo_dir
    assert state_files(settings.state_path) == before  # nothing of the artifacts landed in the state folder


def test_a_gate_run_writes_its_result_and_data_docs_to_the_bucket(remote, spark):
    from featurelake.runs import Interval
    from featurelake.tables import write_interval
    from featurelake.validation import gate
    from featurelake.validation.gate import data_docs_index
    from featurelake.validation.targets import view_target

    settings, boto, bucket, repo, _ = remote
    view = repo.view("user_stats")
    table = f"features.{P}_users"

    def publish(df):
        return write_interval(df, table, date_column="ts_date", start=DAY, end=DAY)

    batch = spark.table(table).where(f"ts_date = '{DAY}'")
    result = gate(spark, settings, view_target(view, repo.join_keys(view)), batch, Interval(DAY, DAY), publish=publish)
    assert result.outcomes and result.success and result.published, result.message()

    results = [k for k in keys(boto, bucket, "art/gx/validations/") if result.run_id in k]
    assert len(results) == 1 and results[0].startswith(f"{result.suite}/{result.run_id}/")
    stored = json.loads(body(boto, bucket, "art/gx/validations/" + results[0]))
    assert stored["success"] is True
    assert sorted(r["expectation_config"]["type"] for r in stored["results"]) == sorted(
        o.expectation_type for o in result.outcomes
    )
    recorded = spark.sql(f"SELECT count(*) FROM monitoring.validation_results WHERE run_id = '{result.run_id}'")
    assert recorded.first()[0] == len(result.outcomes)  # and its rows in the Delta table, as always

    docs = keys(boto, bucket, "art/gx/data_docs/")
    page = results[0].removesuffix(".json") + ".html"
    assert "index.html" in docs and f"validations/{page}" in docs and any(k.startswith("static/") for k in docs)
    assert result.data_docs == f"s3a://{bucket}/art/gx/data_docs/validations/{page}"
    assert data_docs_index(settings) == f"s3a://{bucket}/art/gx/data_docs/index.html"
    assert result.run_id in body(boto, bucket, f"art/gx/data_docs/validations/{page}")
    head = boto.head_object(Bucket=bucket, Key="art/gx/data_docs/index.html")
    assert head["ContentType"] == "text/html"  # a browser shows it when served from the bucket


def test_manifest_json_lands_in_the_bucket(remote, spark):
    from featurelake.artifacts import artifacts_root
    from featurelake.offline.manifest import load_manifest
    from featurelake.offline.training_set import build_training_set

    settings, boto, bucket, repo, _ = remote
    manifest = build_training_set(
        spark, repo, name=f"{P}_set", entities=f"training.{P}_spine", service="model", overwrite=True,
        artifacts=artifacts_root(settings),
    )  # fmt: skip
    in_bucket = json.loads(body(boto, bucket, f"art/manifests/{P}_set.json"))
    in_table = spark.sql(f"SELECT manifest_json FROM training.manifests WHERE name = '{P}_set'").collect()
    assert len(in_table) == 1 and in_bucket == json.loads(in_table[0][0]) == manifest.model_dump(mode="json")
    assert load_manifest(spark, f"s3a://{bucket}/art/manifests/{P}_set.json") == manifest  # rebuild reads it there


def strip_times(page: str) -> str:
    """A page without the times it was written at (the only thing two renderings differ by)."""
    return re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?( UTC)?", "<time>", page)


@pytest.mark.parametrize("command", ["report", "catalog"])
def test_report_and_catalog_pages_go_to_the_bucket(remote, command, monkeypatch, tmp_path, spark):
    from typer.testing import CliRunner

    from featurelake.cli import app
    from featurelake.config import get_settings

    settings, boto, bucket, _, repo_dir = remote
    s3 = settings.storage.s3
    env = isolated_env(
        settings.state_path,
        FEATURELAKE__STORAGE__ARTIFACTS=f"s3a://{bucket}/art",
        FEATURELAKE__STORAGE__S3__ENDPOINT=str(s3.endpoint),
        FEATURELAKE__STORAGE__S3__PATH_STYLE_ACCESS="true",
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = [command, "--repo", str(repo_dir)] + (["--as-of", "2024-05-02T00:00"] if command == "report" else [])
    folder = "reports" if command == "report" else "catalog"

    def run(*extra: str):
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(app, [*args, *extra])
        finally:
            get_settings.cache_clear()

    copy = tmp_path / "copy"
    written = run("--out", str(copy))
    assert written.exit_code in (0, 1), written.output  # a report exits 1 on a breach, after writing
    flat = "".join(written.output.split())
    assert f"s3a://{bucket}/art/{folder}/index.html" in flat and (copy / "index.html").as_uri() in flat
    pages = keys(boto, bucket, f"art/{folder}/")
    assert "index.html" in pages and pages == sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file())
    for page in pages:  # the local copy is the bucket's pages
        assert body(boto, bucket, f"art/{folder}/{page}") == (copy / page).read_text()

    local = tmp_path / "local"  # the same command with the artifacts on the local disk
    monkeypatch.setenv("FEATURELAKE__STORAGE__ARTIFACTS", str(local))
    run()
    assert sorted(str(p.relative_to(local / folder)) for p in (local / folder).rglob("*")) == pages
    for page in pages:
        in_bucket = body(boto, bucket, f"art/{folder}/{page}")
        assert strip_times(in_bucket) == strip_times((local / folder / page).read_text())
