"""Versions side by side online: v1 and v2 of a view materialized into their own namespaces, promote (only after
materialize + check), a service pinned to v1, roll back. Expected values from the pandas reference."""

from __future__ import annotations

import datetime as dt
import random
import sys
import uuid

import pytest

from featurelake.errors import InputError
from featurelake.online.backends import open_store
from featurelake.online.check import check_view
from featurelake.online.client import OnlineClient
from featurelake.online.materialize import materialize_views
from featurelake.online.versions import promote, served_version
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
from tests.integration.test_online_stores import store_config

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
