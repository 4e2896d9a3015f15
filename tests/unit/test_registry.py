"""Registry: plan diffs (breaking or not, version bumps), apply round trip on Delta with time travel, lineage
edges, and the static catalog page."""

from __future__ import annotations

import datetime as dt
import json
from html.parser import HTMLParser

import pytest

from featurelake.monitoring.catalog import NODE_H, NODE_W, CatalogData, layout, render_catalog
from featurelake.offline.manifest import read_training_sets
from featurelake.registry import (
    LINEAGE_TABLE,
    REGISTRY_TABLE,
    RegistryObject,
    load_applied,
    read_lineage,
    registry_version,
)
from featurelake.repo import DefinitionError, load_repo
from featurelake.repo.diff import diff_registry
from featurelake.repo.lineage import TrainingSetRef, downstream_of, lineage_edges, upstream_of
from featurelake.repo.plan import apply, make_plan
from featurelake.repo.schema import load_manifest
from featurelake.repo.specs import serialize
from tests.unit.test_definitions import ENTITIES, SERVICES, SOURCES, VIEWS, _model, write_manifest, write_repo

MANIFESTS = "training.test_registry_manifests"


def objects_of(tmp_path, name: str, **overrides: str):
    folder = tmp_path / name
    folder.mkdir()
    return serialize(load_repo(write_repo(folder, **overrides)))


def change_of(changes, kind: str, name: str):
    (change,) = [c for c in changes if c.kind == kind and c.name == name]
    return change


def test_no_difference_no_change(tmp_path):
    assert diff_registry(objects_of(tmp_path, "a"), objects_of(tmp_path, "b")) == []


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("dtype=ValueType.INT64", "dtype=ValueType.DOUBLE", "feature gusts type bigint -> double"),
        ('Feature(name="gusts", dtype=ValueType.INT64)', "", "removes feature(s) gusts"),
        ('ttl="3h"', 'ttl="6h"', "ttl 3h -> 6h"),
        ("entities=[route]", "entities=[carrier]", "join keys"),
        ('schema="features"', 'schema="staging"', "source schema: features -> staging"),
    ],
)
def test_breaking_change_to_a_version_is_refused_unless_raised(tmp_path, old, new, expect):
    base = objects_of(tmp_path, "a")
    sources = {}
    if "schema" in old:
        sources = {"sources.py": SOURCES.replace(old, new).replace("{table}", "raw.events")}
        views = VIEWS
    else:
        views = VIEWS.replace(old, new)
    services = SERVICES.replace('route_weather[["temp"]]', "route_weather") if "route" in new else SERVICES
    same = objects_of(tmp_path, "b", **{"feature_views.py": views, "feature_services.py": services, **sources})
    change = change_of(diff_registry(base, same), "feature_view", "route_weather")
    assert change.breaking and change.refused, change
    assert any(expect in d for d in change.details), change.details
    assert any("raise `version` to 2" in d for d in change.details)

    bumped_views = views.replace('name="route_weather",', 'name="route_weather", version=2,')
    bumped = objects_of(tmp_path, "c", **{"feature_views.py": bumped_views, "feature_services.py": services, **sources})
    change = change_of(diff_registry(base, bumped), "feature_view", "route_weather")
    assert change.breaking and not change.refused
    assert change.details == ("new version 1 -> 2",)


def test_entity_key_change_reaches_its_views(tmp_path):
    base = objects_of(tmp_path, "a")
    entities = ENTITIES.replace('join_keys=["carrier"]', 'join_keys=["carrier_code"]')
    changes = diff_registry(base, objects_of(tmp_path, "b", **{"entities.py": entities}))
    assert change_of(changes, "entity", "carrier").breaking
    view = change_of(changes, "feature_view", "carrier_delays")
    assert view.refused and any('join keys ["carrier"] -> ["carrier_code"]' in d for d in view.details)


def test_a_renamed_aggregation_keeping_its_feature_name_is_breaking(tmp_path):
    views = VIEWS.replace('column="delay", function="mean"', 'column="delay", function="max", name="delay_mean"')
    changes = diff_registry(objects_of(tmp_path, "a"), objects_of(tmp_path, "b", **{"feature_views.py": views}))
    change = change_of(changes, "feature_view", "carrier_delays")
    assert change.refused and any("feature delay_mean_1h derivation" in d for d in change.details)


def test_non_breaking_changes_apply_at_the_same_version(tmp_path):
    views = VIEWS.replace(
        'tile="1h", aggregations=[',
        'tile="1h", aggregations=[Aggregation(column="delay", function="count", windows=["1d"]), ',
    ).replace('ttl="3h",', 'ttl="3h", owner="ml", online=False,')
    changes = diff_registry(objects_of(tmp_path, "a"), objects_of(tmp_path, "b", **{"feature_views.py": views}))
    carrier = change_of(changes, "feature_view", "carrier_delays")
    route = change_of(changes, "feature_view", "route_weather")
    assert not carrier.breaking and carrier.details == ("adds feature(s) delay_count_1d",)
    assert not route.breaking and set(route.details) == {"online: True -> False", "owner: None -> ml"}
    service = change_of(changes, "feature_service", "model")  # the whole view now has one more feature
    assert not service.breaking and service.details == ("adds carrier_delays:delay_count_1d",)


def test_version_going_down_is_refused_and_removals_are_breaking(tmp_path):
    up = VIEWS.replace('name="route_weather",', 'name="route_weather", version=3,')
    down = VIEWS.replace('name="route_weather",', 'name="route_weather", version=2,')
    changes = diff_registry(
        objects_of(tmp_path, "a", **{"feature_views.py": up}), objects_of(tmp_path, "b", **{"feature_views.py": down})
    )
    assert change_of(changes, "feature_view", "route_weather").refused
    services = SERVICES.replace("carrier_delays, ", "")
    changes = diff_registry(objects_of(tmp_path, "c"), objects_of(tmp_path, "d", **{"feature_services.py": services}))
    service = change_of(changes, "feature_service", "model")
    assert service.breaking and not service.refused
    assert service.details[0] == "removes carrier_delays:delay_mean_1d, carrier_delays:delay_mean_1h"


def test_lineage_walks_match_a_brute_force_closure():
    edges = [("a", "b"), ("b", "c"), ("x", "c"), ("c", "d"), ("d", "e"), ("y", "z")]

    def closure(start, pairs):
        out, changed = set(), True
        while changed:
            new = {b for a, b in pairs if (a == start or a in out) and b not in out}
            changed, out = bool(new), out | new
        return out

    for node in "abcdexyz":
        assert set(downstream_of(node, edges)) == closure(node, edges)
        assert set(upstream_of(node, edges)) == closure(node, [(b, a) for a, b in edges])


# ---------------------------------------------------------------------------------------------- on Delta


@pytest.fixture()
def clean_registry(spark):
    for table in (REGISTRY_TABLE, LINEAGE_TABLE, MANIFESTS):
        spark.sql(f"DROP TABLE IF EXISTS {table}")
    yield
    for table in (REGISTRY_TABLE, LINEAGE_TABLE, MANIFESTS):
        spark.sql(f"DROP TABLE IF EXISTS {table}")


@pytest.mark.slow  # a sequence of registry commits read back by time travel: in `make test`, not in the fast tier
def test_plan_apply_round_trip_with_time_travel_and_lineage(spark, tmp_path, clean_registry):
    stg = _model("stg_weather", "staging", {}, deps=["source.proj.raw.obs"])
    model = _model("weather_hourly", "features", {}, deps=["model.proj.stg_weather"])
    manifest = load_manifest(write_manifest(tmp_path / "dbt", [stg, model]))
    (tmp_path / "v1").mkdir()
    repo = load_repo(write_repo(tmp_path / "v1", table="raw.not_built"))

    assert registry_version(spark) is None
    first = make_plan(spark, repo, manifest)
    assert first.base_version is None and {c.action for c in first.changes} == {"added"}
    assert len(first.changes) == len(serialize(repo))
    applied = apply(spark, repo, manifest, training_sets=read_training_sets(spark, MANIFESTS))
    v1 = applied.version
    assert applied.written and registry_version(spark) == v1
    assert make_plan(spark, repo, manifest).changes == []
    again = apply(spark, repo, manifest, training_sets=read_training_sets(spark, MANIFESTS))
    assert not again.written and registry_version(spark) == v1  # nothing changed: no new version

    # a breaking change at the same version is refused and writes nothing
    (tmp_path / "v2").mkdir()
    broken = load_repo(
        write_repo(
            tmp_path / "v2", table="raw.not_built", **{"feature_views.py": VIEWS.replace('ttl="3h"', 'ttl="6h"')}
        )
    )
    with pytest.raises(DefinitionError, match="raise `version` to 2"):
        apply(spark, broken, manifest, training_sets=read_training_sets(spark, MANIFESTS))
    assert registry_version(spark) == v1

    # with the version raised it applies as the next registry version; the old one stays readable
    views = VIEWS.replace('ttl="3h"', 'ttl="6h"').replace('name="route_weather",', 'name="route_weather", version=2,')
    (tmp_path / "v3").mkdir()
    bumped = load_repo(write_repo(tmp_path / "v3", table="raw.not_built", **{"feature_views.py": views}))
    spark.createDataFrame(
        [("ts_jan", "model", dt.datetime(2013, 2, 1), json.dumps({"views": [{"name": "route_weather"}]}))],
        "name STRING, service STRING, created_at TIMESTAMP, manifest_json STRING",
    ).write.format("delta").saveAsTable(MANIFESTS)
    result = apply(spark, bumped, manifest, training_sets=read_training_sets(spark, MANIFESTS))
    assert result.written and result.version == v1 + 1 == registry_version(spark)
    now, before = load_applied(spark), load_applied(spark, version=v1)
    assert now.get("feature_view", "route_weather").version == 2
    assert now.get("feature_view", "route_weather").spec["ttl"] == "6h"
    assert before.get("feature_view", "route_weather").version == 1
    assert before.get("feature_view", "route_weather").spec["ttl"] == "3h"
    assert {k for k in now.objects} == {(o.kind, o.name) for o in serialize(bumped)}

    edges = set(read_lineage(spark))
    chain = [
        "table:raw.weather",
        "dbt_model:stg_weather",
        "dbt_model:weather_hourly",
        "feature_view:route_weather",
        "feature_service:model",
        "training_set:ts_jan",
    ]
    assert set(zip(chain, chain[1:], strict=False)) <= edges
    assert ("table:raw.not_built", "feature_view:carrier_delays") in edges
    assert ("feature_view:carrier_delays", "feature_service:model") in edges
    versions = {r[0] for r in spark.table(LINEAGE_TABLE).select("registry_version").collect()}
    assert versions == {result.version}


def test_training_sets_without_a_service_link_their_views():
    objects = [
        RegistryObject("feature_view", "v", {}, version=1, upstream=("table:raw.t",)),
        RegistryObject("feature_service", "s", {}, upstream=("feature_view:v",)),
    ]
    sets = [TrainingSetRef("adhoc", None, None, ("v", "gone")), TrainingSetRef("svc", "s", None, ("v",))]
    assert lineage_edges(objects, None, sets) == sorted(
        [
            ("table:raw.t", "feature_view:v"),
            ("feature_view:v", "feature_service:s"),
            ("feature_view:v", "training_set:adhoc"),
            ("feature_service:s", "training_set:svc"),
        ]
    )


# ---------------------------------------------------------------------------------------------- the catalog


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cards, self.nodes, self.edges, self.scripts = [], {}, [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "article":
            self.cards.append(a["id"] if "id" in a else a["data-search"])
        if tag == "g" and a.get("class") == "node":
            x, y = a["transform"].removeprefix("translate(").removesuffix(")").split(",")
            self.nodes[a["data-node"]] = (float(x), float(y))
        if tag == "path" and a.get("class") == "edge":
            self.edges.append((a["data-from"], a["data-to"]))
        if tag == "script":
            self._in_script = True
            self.scripts.append(a.get("src"))


def test_catalog_page_holds_every_object_and_a_consistent_graph(tmp_path):
    views = VIEWS.replace('ttl="3h",', 'ttl="3h", description="<script>alert(1)</script> & more",')
    repo = load_repo(write_repo(tmp_path, **{"feature_views.py": views}))
    objects = serialize(repo)
    stg = _model("stg_weather", "staging", {}, deps=["source.proj.raw.obs"])
    model = _model("weather_hourly", "features", {}, deps=["model.proj.stg_weather"])
    edges = lineage_edges(objects, load_manifest(write_manifest(tmp_path / "dbt", [stg, model])))
    page = render_catalog(CatalogData(objects=objects, edges=edges, generated_at=dt.datetime(2026, 1, 1)))
    parsed = _Collector()
    parsed.feed(page)

    assert sorted(parsed.cards) == sorted(f"{o.kind}-{o.name}" for o in objects)
    assert sorted(parsed.edges) == sorted(edges)
    assert set(parsed.nodes) == {n for e in edges for n in e}
    assert parsed.scripts == [None, None]  # inline only: nothing fetched from the network
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    for a, b in edges:  # every edge runs left to right
        assert parsed.nodes[a][0] + NODE_W < parsed.nodes[b][0]
    placed = list(parsed.nodes.values())
    for i, (x1, y1) in enumerate(placed):  # no two nodes overlap
        for x2, y2 in placed[i + 1 :]:
            assert abs(x1 - x2) >= NODE_W or abs(y1 - y2) >= NODE_H


def test_layout_puts_each_featurelake_kind_in_one_column():
    edges = [
        ("table:a", "dbt_model:m1"),
        ("dbt_model:m1", "dbt_model:m2"),
        ("dbt_model:m2", "feature_view:deep"),
        ("table:b", "feature_view:shallow"),
        ("feature_view:deep", "feature_service:s"),
        ("feature_view:shallow", "feature_service:s"),
        ("feature_view:shallow", "training_set:t_adhoc"),
        ("feature_service:s", "training_set:t"),
    ]
    placed, _, _ = layout(edges)
    assert placed["feature_view:deep"].x == placed["feature_view:shallow"].x > placed["dbt_model:m2"].x
    assert placed["training_set:t"].x == placed["training_set:t_adhoc"].x > placed["feature_service:s"].x
