"""Versions side by side online: v1 and v2 of a view materialized into their own namespaces, promote (only after
materialize + check), a service pinned to v1, roll back; retire a version in every store. Expected values from the
pandas reference."""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import uuid

import pytest

from featurelake.errors import InputError
from featurelake.online.backends import open_store
from featurelake.online.check import check_view
from featurelake.online.client import OnlineClient
from featurelake.online.encoding import encode_key
from featurelake.online.materialize import materialize_views
from featurelake.online.store import Record, Watermark
from featurelake.online.versions import CHECKED, promote, record_check, retire, served_version
from featurelake.repo import load_repo
from tests.integration.test_materialize import (
    DRIVER_FEATURES,
    DRIVER_SCHEMA,
    T0,
    append,
    driver_rows,
    norm,
    reference,
)
from tests.integration.test_online_stores import STORES, config_for, store_config

pytestmark = pytest.mark.integration

AS_OF = T0 + dt.timedelta(days=5)
TTL = dt.timedelta(days=2)
DRIVERS = list(range(42))

DEFS = """
from featurelake.repo.definitions import DeltaTableSource, Entity, Feature, FeatureService, FeatureView

driver = Entity(name="driver", join_keys=["driver_id"])
driver_stats = FeatureView(
    name="driver_stats", entities=[driver], ttl="2d", version={version},
    source=DeltaTableSource(name="driver_src", table="{table}", timestamp_column="event_ts",
                            created_timestamp_column="created_ts", date_partition_column="event_date"),
    features=[Feature(name="trips", dtype="bigint"), Feature(name="rating", dtype="double"),
              Feature(name="name", dtype="string"), Feature(name="last_trip", dtype="timestamp"),
              Feature(name="active", dtype="boolean")],
)
latest = FeatureService(name="latest", features=[driver_stats[["trips", "name"]]])
trained_on_v1 = FeatureService(name="trained_on_v1", features=[driver_stats.pin(1, ["trips", "name"])])
"""


def repo_at(root, version: int, table: str):
    folder = root / f"v{version}"
    folder.mkdir()
    (folder / "defs.py").write_text(DEFS.format(version=version, table=table))
    return load_repo(folder)


def served_trips(repo, config, service: str) -> dict:
    client = OnlineClient(repo, open_store(config), pointer_ttl_s=0)
    try:
        rows = client.get_online_features([{"driver_id": d} for d in DRIVERS], service=service)
    finally:
        client.close()
    return {r["driver_id"]: (r["driver_stats__trips"], r["driver_stats__name"]) for r in rows}


def expected(pdf) -> dict:
    ref = reference(pdf, ["driver_id"], DRIVER_FEATURES, AS_OF, TTL, "created_ts")
    none = dict.fromkeys(DRIVER_FEATURES)
    return {d: (norm(ref.get((d,), none)["trips"]), norm(ref.get((d,), none)["name"])) for d in DRIVERS}


def test_versions_side_by_side_promote_pin_and_roll_back(spark, tmp_path):
    spark.sparkContext.pythonExec = sys.executable
    suffix = uuid.uuid4().hex[:8]
    t1, t2 = f"features.ver_driver_v1_{suffix}", f"features.ver_driver_v2_{suffix}"
    d1 = driver_rows(random.Random(1), 200, 40, T0, 6)
    d2 = driver_rows(random.Random(2), 200, 40, T0, 6)
    append(spark, d1, t1, DRIVER_SCHEMA, "event_date")
    append(spark, d2, t2, DRIVER_SCHEMA, "event_date")
    want1, want2 = expected(d1), expected(d2)
    assert want1 != want2
    config = store_config("sqlite", tmp_path)
    repo1, repo2 = repo_at(tmp_path, 1, t1), repo_at(tmp_path, 2, t2)
    try:
        materialize_views(spark, repo1, [repo1.view("driver_stats")], config, as_of=AS_OF)
        with open_store(config) as store:
            with pytest.raises(InputError, match="has not passed the consistency check"):
                promote(store, "driver_stats", 1)
            assert check_view(spark, repo1, store, "driver_stats", sample=100).mismatches == 0
            assert promote(store, "driver_stats", 1).previous is None
        assert served_trips(repo1, config, "latest") == want1

        # v2 defined and materialized next to v1: requests still get v1 until v2 is checked and promoted
        materialize_views(spark, repo2, [repo2.view("driver_stats")], config, as_of=AS_OF)
        assert served_trips(repo2, config, "latest") == want1
        with open_store(config) as store:
            with pytest.raises(InputError, match="v2 has not passed"):
                promote(store, "driver_stats", 2)
            with pytest.raises(InputError, match="v3 is not in"):
                promote(store, "driver_stats", 3)
            assert check_view(spark, repo2, store, "driver_stats", sample=100).mismatches == 0
            assert promote(store, "driver_stats", 2).previous == 1
        assert served_trips(repo2, config, "latest") == want2
        assert served_trips(repo2, config, "trained_on_v1") == want1  # the pin holds

        # roll back: v1 is still in the store and was checked; a re-materialized v2 must be checked again
        with open_store(config) as store:
            assert promote(store, "driver_stats", 1).previous == 2
            assert served_version(store, "driver_stats") == 1
        assert served_trips(repo2, config, "latest") == want1
        materialize_views(spark, repo2, [repo2.view("driver_stats")], config, as_of=AS_OF, full=True)
        with open_store(config) as store, pytest.raises(InputError, match="v2 has not passed"):
            promote(store, "driver_stats", 2)
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {t1}")
        spark.sql(f"DROP TABLE IF EXISTS {t2}")


PIN_V1 = 'trained_on_v1 = FeatureService(name="trained_on_v1", features=[driver_stats.pin(1, ["trips", "name"])])'


def stored_values(version: int) -> dict:
    """What the retire test writes for ``version``: driver -> (trips, name)."""
    return {d: (version * 1000 + d, f"driver {d} v{version}") for d in DRIVERS[:40]}


def write_version(store, version: int) -> None:
    """``version`` as a materialization leaves it, written directly: values, watermark, a passed check."""
    namespace = f"driver_stats.v{version}"
    records = [
        Record(encode_key([d]), 1, 0, json.dumps({"trips": trips, "name": name}), None, None)
        for d, (trips, name) in stored_values(version).items()
    ]
    assert store.write(namespace, records).written == len(records)
    types = {"trips": "bigint", "rating": "double", "name": "string", "last_trip": "timestamp", "active": "boolean"}
    watermark = Watermark("features.t", 1, AS_OF, 123 + version, "full", types)
    store.set_watermark(namespace, watermark)
    record_check(store, namespace, watermark, len(records))


@pytest.fixture(params=STORES)
def store_kind(request, tmp_path):
    return request.param, config_for(request.param, request, tmp_path)


def test_retire_removes_a_version_that_is_neither_served_nor_pinned(store_kind, tmp_path):
    kind, config = store_kind
    pinned = repo_at(tmp_path, 3, "features.t")  # defined v3; trained_on_v1 pins v1
    unpinned_dir = tmp_path / "unpinned"
    unpinned_dir.mkdir()
    (unpinned_dir / "defs.py").write_text(DEFS.format(version=3, table="features.t").replace(PIN_V1, ""))
    unpinned = load_repo(unpinned_dir)
    with open_store(config) as store:
        for version in (1, 2, 3):
            store.prepare(f"driver_stats.v{version}")
            write_version(store, version)
        # refused, and nothing removed: the defined version before any promote, the promoted one, a pinned one
        with pytest.raises(InputError, match=r"v3 is the version served \(defined and never promoted\)"):
            retire(store, pinned, "driver_stats", 3)
        promote(store, "driver_stats", 2)
        with pytest.raises(InputError, match=r"v2 is the version served \(promoted\)"):
            retire(store, pinned, "driver_stats", 2)
        with pytest.raises(InputError, match="v1 is pinned by feature service\\(s\\) trained_on_v1"):
            retire(store, pinned, "driver_stats", 1)
        with pytest.raises(InputError, match="v4 is not in"):
            retire(store, pinned, "driver_stats", 4)
        assert served_trips(pinned, config, "trained_on_v1") == {**stored_values(1), 40: (None, None), 41: (None, None)}

        done = retire(store, unpinned, "driver_stats", 1)
        assert done.removed == (None if kind == "dynamodb" else 40)
        assert store.get_watermark("driver_stats.v1") is None and store.get_doc(CHECKED + "driver_stats.v1") is None
        assert store.read_entries([("driver_stats.v1", [encode_key([d]) for d in DRIVERS])]) == [[None] * len(DRIVERS)]
        with pytest.raises(InputError, match="v1 is not in"):
            retire(store, unpinned, "driver_stats", 1)
        with pytest.raises(InputError, match="v1 is not in"):
            promote(store, "driver_stats", 1)
    # a deployment still pinning v1 gets the read path's error; the other versions are untouched
    with pytest.raises(InputError, match="'driver_stats' v1 is not in the online store"):
        served_trips(pinned, config, "trained_on_v1")
    none = {40: (None, None), 41: (None, None)}
    assert served_trips(unpinned, config, "latest") == {**stored_values(2), **none}
    with open_store(config) as store:
        promote(store, "driver_stats", 3)
    assert served_trips(unpinned, config, "latest") == {**stored_values(3), **none}
