"""Typed training-set manifests: format 1 as written before they were typed loads and is written back unchanged;
anything else is refused with one line naming the problem; a view reference reads its pinned Delta version."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest

from featurelake.errors import InputError
from featurelake.offline.manifest import ViewRef, load_manifest

FORMAT_1 = json.loads((Path(__file__).parents[1] / "support" / "manifest_format1.json").read_text())


def variant(**changes) -> dict:
    data = copy.deepcopy(FORMAT_1)
    data.update(changes)
    return data


SQL_ENTITIES = variant(entity_source={"kind": "sql", "sql": "SELECT 1 AS user_id"})
PATH_VIEW = variant(
    views=[
        {
            **{k: v for k, v in FORMAT_1["views"][0].items() if k != "table"},
            "path": "/data/users",
            "format": "parquet",
            "delta_version": None,
        }
    ],
    entity_source={"kind": "path", "path": "/data/spine", "format": "delta", "delta_version": 3},
)


@pytest.mark.parametrize("data", [FORMAT_1, SQL_ENTITIES, PATH_VIEW], ids=["table", "sql", "path"])
def test_format_1_loads_and_is_written_back_unchanged(data):
    assert load_manifest(None, data).model_dump(mode="json") == data


def test_attributes_of_a_format_1_manifest():
    m = load_manifest(None, FORMAT_1)
    assert (m.name, m.table, m.table_version, m.rows.entities, m.rows.output) == (
        FORMAT_1["name"],
        FORMAT_1["table"],
        FORMAT_1["table_version"],
        FORMAT_1["rows"]["entities"],
        FORMAT_1["rows"]["output"],
    )
    assert m.spec.service == FORMAT_1["spec"]["service"] and m.spec.start is None
    assert m.entity_source.kind == "table" and m.entity_source.table == FORMAT_1["entity_source"]["table"]
    assert m.view("route_stats").join_keys == ["origin", "dest"] and m.view("nope") is None
    assert m.label == f"{FORMAT_1['name']}@{FORMAT_1['created_at']}"  # what a rebuild records as rebuilt_from
    assert m.created_at == dt.datetime.fromisoformat(FORMAT_1["created_at"].replace("Z", "+00:00"))


def test_a_file_is_read_like_a_dict(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(FORMAT_1))
    assert load_manifest(None, path) == load_manifest(None, FORMAT_1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x"}, "not a featurelake training-set manifest (format 1): table: Field required"),
        (variant(format=2), "not a featurelake training-set manifest (format 1): format: Input should be 1"),
        ([1, 2], "not a featurelake training-set manifest (format 1): (top level): Input should be an object"),
        (
            variant(entity_source={"kind": "table"}),
            "entity_source: Value error, exactly one of table, path or sql is needed",
        ),
        (variant(rows={"entities": 5}), "rows.output: Field required"),
    ],
)
def test_anything_else_is_refused_with_one_line(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as caught:
        load_manifest(None, path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_or_broken_files_are_named(tmp_path):
    with pytest.raises(InputError, match="manifest file .*nope.json does not exist"):
        load_manifest(None, tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="broken.json: not a featurelake training-set manifest .*Invalid JSON"):
        load_manifest(None, tmp_path / "broken.json")


def test_a_view_reference_reads_its_pinned_version_and_the_latest_on_request(spark):
    table = "features.tst_manifest_ref"
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    rows = [(1, dt.datetime(2024, 1, 1), 1.0), (2, dt.datetime(2024, 1, 2), 2.0)]
    schema = "user_id bigint, ts timestamp, spend double"
    spark.createDataFrame(rows[:1], schema).write.format("delta").saveAsTable(table)
    ref = ViewRef(
        name="v",
        version=1,
        table=table,
        features=["spend"],
        join_keys=["user_id"],
        timestamp_field="ts",
        created_timestamp_field=None,
        date_partition_field=None,
        ttl_seconds=3600,
    ).pinned(spark)
    spark.createDataFrame(rows[1:], schema).write.format("delta").mode("append").saveAsTable(table)
    assert ref.delta_version == 0
    pinned, latest = ref.to_input(spark), ref.to_input(spark, latest=True)
    assert sorted(tuple(r) for r in pinned.df.collect()) == rows[:1]
    assert sorted(tuple(r) for r in latest.df.collect()) == rows
    assert (pinned.name, list(pinned.join_keys), list(pinned.features)) == ("v", ["user_id"], ["spend"])
    assert (pinned.timestamp_field, pinned.ttl) == ("ts", dt.timedelta(hours=1))
    assert ref.pinned(spark).delta_version == 1
