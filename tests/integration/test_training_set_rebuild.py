"""Build a training set through the registry API, land new feature and entity data, rebuild from the manifest:
the rebuilt rows equal the original ones (also from a manifest written before manifests were typed), while a
fresh build sees the new data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.unit.test_training_set_checks import make_repo, write_entities, write_features

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
P = "tst_rebuild"
# The manifest of f"{P}_set" as this test's build wrote it at commit 6972e79 (format 1, before typed manifests).
FORMAT_1 = Path(__file__).parents[1] / "support" / "manifest_format1.json"


def same_rows(a, b) -> bool:
    return a.count() == b.count() and a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0


def test_build_then_rebuild_after_new_data(spark, settings, tmp_path):
    from featurelake.artifacts import ArtifactPath
    from featurelake.offline.training_set import build_training_set, rebuild

    artifacts = ArtifactPath(str(tmp_path), settings)
    repo = make_repo(tmp_path / "features", P)
    write_features(
        spark,
        P,
        users=[(1, T0, T0, 10.0, 0.1), (1, T0 + 2 * H, T0 + 2 * H, 12.0, 0.2), (2, T0 - 3 * 24 * H, T0, 20.0, 0.3)],
        routes=[("JFK", "LAX", T0, 1.5), ("JFK", "SFO", T0 + H, 2.5)],
    )
    spine = [
        (1, "JFK", "LAX", T0 + H, 1),
        (1, "JFK", "LAX", T0 + H, 1),  # duplicate: kept
        (1, "JFK", "SFO", T0 + 2 * H, 0),  # exact tie with the user row at T0 + 2h: taken
        (2, "JFK", "LAX", T0, 0),  # user 2's only row is older than the 2d ttl
        (3, None, "LAX", T0, 1),  # unknown user, null origin: row kept, features null
    ]
    write_entities(spark, f"training.{P}_spine", spine)

    manifest = build_training_set(
        spark, repo, name=f"{P}_set", entities=f"training.{P}_spine", service="model", artifacts=artifacts
    )
    original = spark.table(f"training.{P}_set")
    got = sorted(
        (r["user_id"], r["dest"], r["label"], r["spend"], r["score"])
        for r in original.select("user_id", "dest", "label", "spend", "score").collect()
    )
    assert got == sorted(
        [
            (1, "LAX", 1, 10.0, 1.5),
            (1, "LAX", 1, 10.0, 1.5),
            (1, "SFO", 0, 12.0, 2.5),
            (2, "LAX", 0, None, 1.5),
            (3, "LAX", 1, None, None),
        ]
    )

    # The manifest: file and table agree; every source pinned to a Delta version.
    on_disk = json.loads((tmp_path / "manifests" / f"{P}_set.json").read_text())
    assert on_disk == manifest.model_dump(mode="json")
    assert manifest.entity_source.delta_version == 0
    assert [(v.name, v.table, v.delta_version) for v in manifest.views] == [
        ("user_stats", f"features.{P}_users", 0),
        ("route_stats", f"features.{P}_routes", 0),
    ]
    assert (manifest.rows.entities, manifest.rows.output) == (5, 5)
    assert manifest.code_version["package"] and "registry_version" in on_disk
    stored = spark.sql(f"SELECT service, manifest_json FROM training.manifests WHERE name = '{P}_set'").collect()
    assert [r["service"] for r in stored] == ["model"] and json.loads(stored[0]["manifest_json"])["views"]

    # New data lands: a later-created row at an existing instant, new rows inside the ttl, more entity rows.
    write_features(
        spark,
        P,
        users=[
            (1, T0, T0 + H, 99.0, 9.9),
            (1, T0 + 30 * dt.timedelta(minutes=1), T0, 50.0, 5.0),
            (2, T0 - H, T0, 21.0, 0.4),
        ],
        routes=[("JFK", "LAX", T0 + H, 7.5)],
        mode="append",
    )
    write_entities(spark, f"training.{P}_spine", [(4, "EWR", "ORD", T0, 1)], mode="append")

    fresh = build_training_set(
        spark, repo, name=f"{P}_fresh", entities=f"training.{P}_spine", service="model", artifacts=artifacts
    )
    assert [v.delta_version for v in fresh.views] == [1, 1]
    assert not same_rows(spark.table(f"training.{P}_fresh"), original)  # the new data does change a fresh build

    rebuilt = rebuild(spark, tmp_path / "manifests" / f"{P}_set.json", name=f"{P}_again", artifacts=artifacts)
    assert [v.delta_version for v in rebuilt.views] == [0, 0]
    assert same_rows(spark.table(f"training.{P}_again"), original)

    by_name = rebuild(spark, f"{P}_set", name=f"{P}_again2")  # the latest manifest in training.manifests
    assert by_name.rebuilt_from.startswith(f"{P}_set@")
    assert same_rows(spark.table(f"training.{P}_again2"), original)

    old = json.loads(FORMAT_1.read_text())
    from_old = rebuild(spark, FORMAT_1, name=f"{P}_again3", artifacts=artifacts)
    assert from_old.rebuilt_from == f"{P}_set@{old['created_at']}"
    assert [v.delta_version for v in from_old.views] == [0, 0]
    assert same_rows(spark.table(f"training.{P}_again3"), original)
