"""Input checks of the training-set builder: each bad input gives one clear InputError and writes nothing."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from featurelake.errors import InputError

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)

REPO = """
from featurelake.repo.definitions import DeltaTableSource, Entity, Feature, FeatureService, FeatureView, ValueType

user = Entity(name="user", join_keys=["user_id"])
route = Entity(name="route", join_keys=["origin", "dest"])
user_src = DeltaTableSource(name="user_src", table="features.{p}_users", timestamp_column="ts",
                            created_timestamp_column="created", date_partition_column="ts_date")
route_src = DeltaTableSource(name="route_src", table="features.{p}_routes", timestamp_column="ts")
user_stats = FeatureView(name="user_stats", entities=[user], source=user_src, ttl="2d",
                         features=[Feature(name="spend", dtype=ValueType.DOUBLE),
                                   Feature(name="score", dtype=ValueType.DOUBLE)])
route_stats = FeatureView(name="route_stats", entities=[route], source=route_src,
                          features=[Feature(name="score", dtype=ValueType.DOUBLE)])
missing_src = DeltaTableSource(name="missing_src", table="features.{p}_absent", timestamp_column="ts")
missing_view = FeatureView(name="missing_view", entities=[user], source=missing_src,
                           features=[Feature(name="x", dtype=ValueType.DOUBLE)])
model = FeatureService(name="model", features=[user_stats[["spend"]], route_stats])
both = FeatureService(name="both", features=[user_stats, route_stats])
broken = FeatureService(name="broken", features=[missing_view])
"""


def make_repo(folder: Path, prefix: str):
    from featurelake.repo import load_repo

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "defs.py").write_text(textwrap.dedent(REPO.format(p=prefix)))
    return load_repo(folder)


def write_features(spark, prefix: str, users: list[tuple], routes: list[tuple], mode: str = "overwrite") -> None:
    """users: (user_id, ts, created, spend, score); routes: (origin, dest, ts, score)."""
    u = spark.createDataFrame(
        [(uid, ts, cr, ts.date(), sp, sc) for uid, ts, cr, sp, sc in users],
        "user_id bigint, ts timestamp, created timestamp, ts_date date, spend double, score double",
    )
    u.write.format("delta").mode(mode).partitionBy("ts_date").saveAsTable(f"features.{prefix}_users")
    r = spark.createDataFrame(routes, "origin string, dest string, ts timestamp, score double")
    r.write.format("delta").mode(mode).saveAsTable(f"features.{prefix}_routes")


def write_entities(spark, table: str, rows: list[tuple], mode: str = "overwrite") -> None:
    """rows: (user_id, origin, dest, event_timestamp, label)."""
    df = spark.createDataFrame(rows, "user_id bigint, origin string, dest string, event_timestamp timestamp, label int")
    df.write.format("delta").mode(mode).saveAsTable(table)


@pytest.fixture(scope="module")
def setup(spark, tmp_path_factory):
    prefix = "tst_checks"
    repo = make_repo(tmp_path_factory.mktemp("repo") / "features", prefix)
    h = dt.timedelta(hours=1)
    write_features(spark, prefix, [(1, T0, T0, 10.0, 0.5)], [("JFK", "LAX", T0, 0.1)])
    write_entities(spark, "training.tst_checks_entities", [(1, "JFK", "LAX", T0 + h, 1), (2, None, "SFO", T0, 0)])
    return repo


def build(spark, repo, **kw):
    from featurelake.offline.training_set import build_training_set

    args = {"name": "tst_checks_out", "entities": "training.tst_checks_entities", "service": "model", **kw}
    return build_training_set(spark, repo, **args)


def assert_nothing_written(spark, name="tst_checks_out"):
    assert not spark.catalog.tableExists(f"training.{name}")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"service": "nope"}, "unknown feature service 'nope'"),
        ({"service": None, "features": ["user_stats:nope"]}, "has no feature(s) nope"),
        ({"service": None, "features": ["ghost:x"]}, "unknown feature view 'ghost'"),
        ({"service": None}, "name a feature service"),
        ({"name": "bad-name; drop"}, "is not a safe SQL identifier"),
        ({"entities": "training.no_such_table"}, "no such table"),
        ({"entities": "/no/such/path"}, "no such table or path"),
        ({"service": "broken"}, "feature table features.tst_checks_absent of view 'missing_view' does not exist"),
        ({"service": "both"}, "output column 'score' of view 'route_stats' collides"),
        ({"timestamp_column": "ts"}, "no timestamp column 'ts'"),
    ],
)
def test_bad_input_is_refused_before_any_write(spark, setup, kwargs, message):
    if "timestamp_column" in kwargs:
        kwargs = {"event_timestamp_column": kwargs.pop("timestamp_column"), **kwargs}
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(spark, setup, **kwargs)
    assert_nothing_written(spark)


def test_entity_source_problems(spark, setup):
    spark.sql(
        "CREATE OR REPLACE TABLE training.tst_checks_no_key USING delta AS "
        "SELECT 1L AS user_id, timestamp'2024-05-01 10:00:00' AS event_timestamp"
    )
    with pytest.raises(InputError, match=r"missing join key\(s\) \['origin', 'dest'\] of feature view 'route_stats'"):
        build(spark, setup, entities="training.tst_checks_no_key")
    with pytest.raises(InputError, match="'event_timestamp' is string, expected timestamp"):
        build(spark, setup, entities="SELECT 1L AS user_id, 'a' AS origin, 'b' AS dest, 'x' AS event_timestamp")
    with pytest.raises(InputError, match="'event_timestamp' has null timestamps"):
        build(
            spark,
            setup,
            entities="SELECT 1L AS user_id, 'a' AS origin, 'b' AS dest, CAST(NULL AS TIMESTAMP) AS event_timestamp",
        )
    assert_nothing_written(spark)


@pytest.mark.slow  # two training sets written (joins, manifests): in `make test`, not in the fast tier
def test_existing_output_needs_overwrite_and_full_names_resolve_collisions(spark, setup):
    first = build(spark, setup, name="tst_checks_exists", service="both", full_feature_names=True)
    assert {"user_stats__score", "route_stats__score"} <= set(spark.table("training.tst_checks_exists").columns)
    with pytest.raises(InputError, match="training.tst_checks_exists exists"):
        build(spark, setup, name="tst_checks_exists", service="both", full_feature_names=True)
    again = build(spark, setup, name="tst_checks_exists", service="both", full_feature_names=True, overwrite=True)
    assert again.table_version == first.table_version + 1


def test_cli_refuses_bad_input_with_exit_2(tmp_path):
    from tests.conftest import run_cli

    bad = run_cli(
        tmp_path,
        "training-set",
        "build",
        "--entities",
        "training.x",
        "--service",
        "no_such_service",
        "--name",
        "t1",
        check=False,
    )
    assert bad.returncode == 2, bad.stderr
    assert "unknown feature service 'no_such_service'" in bad.stderr
    assert "Traceback" not in bad.stderr
