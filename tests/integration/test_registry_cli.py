"""`featurelake plan / apply / list / describe / catalog` on the shipped definitions, through the CLI."""

from __future__ import annotations

import textwrap

import pytest

from featurelake.online.backends import open_store
from featurelake.online.versions import applied_registry
from featurelake.repo import load_repo
from featurelake.repo.specs import definitions_fingerprint, serialize
from tests.conftest import REPO_ROOT, run_cli
from tests.integration.test_online_stores import store_config

pytestmark = pytest.mark.integration


def test_plan_apply_describe_catalog_on_the_shipped_definitions(tmp_path_factory):
    state = tmp_path_factory.mktemp("registry_state")
    repo = load_repo(REPO_ROOT / "features")

    applied = run_cli(state, "apply")
    assert "plan against nothing applied yet" in applied.stdout
    assert "applied: monitoring.registry version 0" in applied.stdout
    for name in [*repo.views, *repo.services, *repo.entities]:
        assert name in applied.stdout

    with open_store(store_config("sqlite", state / "online")) as store:
        assert applied_registry(store) == (0, definitions_fingerprint(serialize(repo)))  # for the servers' /health

    planned = run_cli(state, "plan")
    assert "no changes (registry version 0)" in planned.stdout

    described = run_cli(state, "describe", "flight_delay_model")
    assert "applied (registry version 0)" in described.stdout
    flat = "".join(described.stdout.split())  # undo rich's wrapping
    for view in repo.views:  # every view of the service is upstream of it
        assert f"feature_view:{view}" in flat

    out = tmp_path_factory.mktemp("catalog")
    run_cli(state, "catalog", "--out", str(out))
    page = (out / "index.html").read_text()
    for name in [*repo.views, *repo.services]:
        assert f'data-node="feature_view:{name}"' in page or f'data-node="feature_service:{name}"' in page
    assert "registry version 0" in page


def test_a_broken_repository_stops_with_all_its_errors(tmp_path):
    domain = tmp_path / "features" / "dom"
    domain.mkdir(parents=True)
    (domain / "defs.py").write_text(
        textwrap.dedent(
            """
            from featurelake.repo.definitions import DeltaTableSource, Entity, Feature, FeatureService, FeatureView

            e = Entity(name="e", join_keys=["k"])
            src = DeltaTableSource(name="src", table="raw.t", timestamp_column="ts")
            v = FeatureView(name="v", entities=["nope"], source=src, features=[Feature(name="f", dtype="int")])
            w = FeatureView(name="w", entities=[e], source=src, features=[Feature(name="g", dtype="int")], ttl="0s")
            s = FeatureService(name="s", features=["v:missing"])
            """
        )
    )
    proc = run_cli(tmp_path / "state", "plan", "--repo", str(tmp_path / "features"), check=False)
    assert proc.returncode == 2
    assert "3 problem(s)" in proc.stderr
    assert "features/dom/defs.py:6: feature view 'v' refers to unknown entity nope" in proc.stderr
    assert "features/dom/defs.py:7: FeatureView 'w': ttl: ttl must be positive" in proc.stderr
    assert "features/dom/defs.py:8: feature service 's' refers to missing feature(s) v:missing" in proc.stderr

    listed = run_cli(tmp_path / "state", "list", "views")
    assert "carrier_departure_delays" in listed.stdout
