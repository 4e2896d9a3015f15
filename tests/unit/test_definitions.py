"""Validation of feature definitions: every error of the issue from a broken repository in a temporary folder,
all reported at once with file:line; schema checks against the catalog and against dbt's manifest."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from featurelake.errors import FeaturelakeError
from featurelake.repo import DefinitionError, load_repo
from featurelake.repo.definitions import (
    Entity,
    Feature,
    RequestFeatureError,
    RequestFeatureView,
    ValueType,
    python_value,
    typed_value,
)
from featurelake.repo.schema import check_dbt, check_schemas, load_manifest

ENTITIES = """
from featurelake.repo.definitions import Entity

carrier = Entity(name="carrier", join_keys=["carrier"], description="an airline")
route = Entity(name="route", join_keys=["origin", "dest"], description="origin and destination")
"""

SOURCES = """
from featurelake.repo.definitions import DbtModelSource, DeltaTableSource

events = DeltaTableSource(name="events", table="{table}", timestamp_column="ts", date_partition_column="day")
weather = DbtModelSource(name="weather", model="weather_hourly", schema="features", timestamp_column="obs_ts")
"""

VIEWS = """
from featurelake.repo.definitions import (
    Aggregation,
    DbtComputation,
    Feature,
    FeatureView,
    ValueType,
    WindowComputation,
)
from .entities import carrier, route
from .sources import events, weather

carrier_delays = FeatureView(
    name="carrier_delays",
    entities=[carrier],
    source=events,
    computation=WindowComputation(
        tile="1h", aggregations=[Aggregation(column="delay", function="mean", windows=["1h", "1d"])]
    ),
    ttl="1d",
)

route_weather = FeatureView(
    name="route_weather",
    entities=[route],
    source=weather,
    computation=DbtComputation(),
    features=[Feature(name="temp", dtype=ValueType.DOUBLE), Feature(name="gusts", dtype=ValueType.INT64)],
    ttl="3h",
)
"""

SERVICES = """
from featurelake.repo.definitions import FeatureService
from .feature_views import carrier_delays, route_weather

model = FeatureService(name="model", features=[carrier_delays, route_weather[["temp"]]])
"""


def write_repo(tmp_path: Path, table: str = "raw.events", **overrides: str) -> Path:
    """A feature repository ``<tmp>/features/dom`` with the base modules, some replaced or added."""
    root = tmp_path / "features" / "dom"
    root.mkdir(parents=True)
    files = {
        "__init__.py": "",
        "entities.py": ENTITIES,
        "sources.py": SOURCES.replace("{table}", table),
        "feature_views.py": VIEWS,
        "feature_services.py": SERVICES,
        **overrides,
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    return tmp_path / "features"


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line of ``path`` containing ``needle`` (computed from the text itself)."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def problems_of(root: Path) -> list[str]:
    with pytest.raises(DefinitionError) as err:
        load_repo(root)
    return err.value.problems


def test_the_base_repository_loads(tmp_path):
    repo = load_repo(write_repo(tmp_path))
    assert sorted(repo.views) == ["carrier_delays", "route_weather"]
    assert repo.join_keys(repo.views["route_weather"]) == ["origin", "dest"]
    assert repo.views["carrier_delays"].feature_names == ["delay_mean_1h", "delay_mean_1d"]


def test_duplicate_names_name_both_places(tmp_path):
    extra = 'from featurelake.repo.definitions import Entity\n\ncarrier = Entity(name="carrier", join_keys=["code"])\n'
    root = write_repo(tmp_path, **{"more_entities.py": extra})
    (problem,) = problems_of(root)
    first = line_of(root / "dom" / "entities.py", 'name="carrier"')
    second = line_of(root / "dom" / "more_entities.py", 'name="carrier"')
    assert "duplicate Entity name 'carrier'" in problem
    assert f"features/dom/entities.py:{first}" in problem and f"features/dom/more_entities.py:{second}" in problem


def test_unknown_entity(tmp_path):
    root = write_repo(tmp_path, **{"feature_views.py": VIEWS.replace("entities=[carrier]", 'entities=["airline"]')})
    (problem,) = problems_of(root)
    line = line_of(root / "dom" / "feature_views.py", "carrier_delays = FeatureView(")
    assert problem.startswith(f"features/dom/feature_views.py:{line}: ")
    assert "'carrier_delays' refers to unknown entity airline" in problem


@pytest.mark.parametrize(
    ("ttl", "message"),
    [('"0d"', "ttl must be positive"), ('"3 fortnights"', "is not a duration"), ("-60", "ttl must be positive")],
)
def test_invalid_ttl(tmp_path, ttl, message):
    root = write_repo(tmp_path, **{"feature_views.py": VIEWS.replace('ttl="3h"', f"ttl={ttl}")})
    (problem,) = problems_of(root)
    line = line_of(root / "dom" / "feature_views.py", "route_weather = FeatureView(")
    assert problem.startswith(f"features/dom/feature_views.py:{line}: FeatureView 'route_weather': ttl: ")
    assert message in problem


@pytest.mark.parametrize(
    ("old", "new", "what", "built_at"),  # built_at: the line of the call that builds the broken object
    [
        ('name="carrier_delays"', 'name="carrier delays"', "FeatureView name 'carrier delays'", "carrier_delays ="),
        ('Feature(name="temp"', 'Feature(name="temp;drop"', "feature name 'temp;drop'", "temp;drop"),
        ('column="delay"', 'column="1delay"', "aggregation column '1delay'", "1delay"),
    ],
)
def test_unsafe_identifiers(tmp_path, old, new, what, built_at):
    root = write_repo(tmp_path, **{"feature_views.py": VIEWS.replace(old, new)})
    problems = problems_of(root)
    assert any(what in p and "not a safe SQL identifier" in p for p in problems), problems
    line = line_of(root / "dom" / "feature_views.py", built_at)
    assert any(p.startswith(f"features/dom/feature_views.py:{line}: ") for p in problems), problems


def test_unsafe_table_and_join_key(tmp_path):
    root = write_repo(tmp_path, table="raw.events; drop table x")
    (root / "dom" / "entities.py").write_text(ENTITIES.replace('join_keys=["carrier"]', 'join_keys=["car rier"]'))
    problems = problems_of(root)
    assert any("table 'raw.events; drop table x' is not a safe" in p for p in problems), problems
    assert any("join key 'car rier' is not a safe SQL identifier" in p for p in problems), problems


def test_service_referring_to_missing_features(tmp_path):
    services = SERVICES.replace('route_weather[["temp"]]', 'route_weather[["temp", "humidity"]], "nowhere"')
    root = write_repo(tmp_path, **{"feature_services.py": services})
    problems = problems_of(root)
    line = line_of(root / "dom" / "feature_services.py", "FeatureService(")
    assert sorted(problems) == sorted(
        [
            f"features/dom/feature_services.py:{line}: feature service 'model' refers to missing view 'nowhere'",
            f"features/dom/feature_services.py:{line}: feature service 'model' refers to missing feature(s) "
            "route_weather:humidity",
        ]
    )


def test_every_problem_of_a_module_is_reported_at_once(tmp_path):
    views = (
        VIEWS.replace('ttl="1d"', 'ttl="never"')
        .replace("dtype=ValueType.INT64", 'dtype="varchar"')
        .replace('name="route_weather"', 'name="route-weather"')
    )
    services = SERVICES.replace("route_weather[[", '"ghost", carrier_delays[["delay_max_1d"]], route_weather[[')
    root = write_repo(tmp_path, **{"feature_views.py": views, "feature_services.py": services})
    problems = problems_of(root)
    views_py = root / "dom" / "feature_views.py"
    assert any(
        p.startswith(f"features/dom/feature_views.py:{line_of(views_py, 'carrier_delays =')}:") and "ttl" in p
        for p in problems
    ), problems
    assert any(
        p.startswith(f"features/dom/feature_views.py:{line_of(views_py, 'varchar')}:") and "dtype" in p
        for p in problems
    ), problems
    assert any("'route-weather' is not a safe SQL identifier" in p for p in problems), problems
    # the broken views are reported once, not again through the service that uses them
    assert len(problems) == 4, problems
    assert [p for p in problems if "missing" in p] == [
        f"features/dom/feature_services.py:{line_of(root / 'dom/feature_services.py', 'FeatureService(')}: "
        "feature service 'model' refers to missing view 'ghost'"
    ]


INGEST = """
from featurelake.repo.definitions import IngestReport, Ingestion, RawTable, TrainingSet
from .feature_services import model


def land(spark, settings, start, end):
    return IngestReport("run", start, end, {{}}, 0)


EVENTS = RawTable(name="events", keys=["carrier"], timestamp="ts", date_partition="day",
                  columns={{"carrier": "string", "ts": "timestamp", "day": "date", "delay": "double"}})
events = Ingestion(name="{name}", function=land, raw_tables=[EVENTS])
{extra}
monthly = TrainingSet(name="monthly", service={service}, entities="SELECT carrier, ts AS event_timestamp FROM t")
"""


def test_ingestions_and_training_sets_are_collected(tmp_path):
    ingest = INGEST.format(name="events", extra="", service="model")
    repo = load_repo(write_repo(tmp_path, **{"ingest.py": ingest}))
    assert list(repo.ingestions) == ["events"] and list(repo.raw_tables) == ["raw.events"]
    assert repo.raw_table("raw.events").columns["delay"] == "double"
    assert repo.training_sets["monthly"].service == "model"  # a FeatureService stands for its name
    assert repo.origin(repo.training_sets["monthly"]).startswith("features/dom/ingest.py:")


def test_training_set_of_an_unknown_service_and_a_raw_table_landed_twice(tmp_path):
    twice = 'again = Ingestion(name="again", function=land, raw_tables=[EVENTS])'
    root = write_repo(tmp_path, **{"ingest.py": INGEST.format(name="events", extra=twice, service='"nope"')})
    ingest_py = root / "dom" / "ingest.py"
    assert sorted(problems_of(root)) == [
        f"features/dom/ingest.py:{line_of(ingest_py, 'again = ')}: raw table raw.events is landed by ingestions "
        "'events' and 'again'",
        f"features/dom/ingest.py:{line_of(ingest_py, 'monthly = ')}: training set 'monthly' refers to unknown "
        "service 'nope'",
    ]


def test_a_raw_table_names_its_keys_among_its_columns(tmp_path):
    ingest = INGEST.format(name="events", extra="", service="model").replace('keys=["carrier"]', 'keys=["flight"]')
    root = write_repo(tmp_path, **{"ingest.py": ingest})
    (problem,) = problems_of(root)
    assert problem.startswith(f"features/dom/ingest.py:{line_of(root / 'dom' / 'ingest.py', 'EVENTS = ')}: ")
    assert problem.endswith("RawTable 'events': keys: flight not among the columns")


def test_a_module_that_fails_to_import_is_named(tmp_path):
    root = write_repo(tmp_path, **{"extra.py": "x = 1\nraise RuntimeError('boom')\n"})
    (problem,) = problems_of(root)
    assert problem == "features/dom/extra.py: line 2: RuntimeError: boom"


def test_outside_the_loader_an_invalid_definition_still_raises():
    with pytest.raises(ValidationError, match="not a safe SQL identifier"):
        Entity(name="bad name", join_keys=["k"])


def test_shipped_definitions_load():
    repo = load_repo(Path(__file__).resolve().parents[2] / "features")
    assert "flight_delay_model" in repo.services
    assert list(repo.raw_tables) == ["raw.flights", "raw.weather"]
    assert repo.training_sets["flight_delay_demo"].service == "flight_delay_model"
    assert repo.join_keys(repo.view("route_arrival_delays")) == ["origin", "dest"]


# ---------------------------------------------------------------------------------- against the catalog


@pytest.fixture()
def events_table(spark):
    """raw.defs_events: ts is a string (wrong type), delay a string (not numeric), no `day` column."""
    spark.sql("DROP TABLE IF EXISTS raw.defs_events")
    spark.sql("CREATE TABLE raw.defs_events (carrier STRING, ts STRING, delay STRING) USING delta")
    spark.sql("DROP TABLE IF EXISTS features.weather_hourly")
    spark.sql(
        "CREATE TABLE features.weather_hourly (origin STRING, dest STRING, obs_ts TIMESTAMP, temp FLOAT, gusts BIGINT)"
        " USING delta"
    )
    yield "raw.defs_events"
    spark.sql("DROP TABLE IF EXISTS raw.defs_events")
    spark.sql("DROP TABLE IF EXISTS features.weather_hourly")


def test_schema_problems_against_the_catalog(spark, tmp_path, events_table):
    repo = load_repo(write_repo(tmp_path, table=events_table))
    report = check_schemas(spark, repo)
    line = line_of(tmp_path / "features" / "dom" / "feature_views.py", "carrier_delays = FeatureView(")
    where = f"features/dom/feature_views.py:{line}: feature view 'carrier_delays'"
    assert sorted(report.problems) == sorted(
        [
            f"{where}: timestamp column 'ts' of raw.defs_events is string, not a timestamp",
            f"{where}: date partition column 'day' is missing from raw.defs_events",
            f"{where}: aggregation mean column 'delay' of raw.defs_events is string, not numeric",
            f"features/dom/feature_views.py:{line_of(tmp_path / 'features/dom/feature_views.py', 'route_weather =')}: "
            "feature view 'route_weather': feature column 'temp' is typed double but features.weather_hourly has float",
        ]
    )
    assert report.notes == []


def test_missing_tables_are_notes_not_problems(spark, tmp_path):
    repo = load_repo(write_repo(tmp_path, table="raw.defs_not_there"))
    spark.sql("DROP TABLE IF EXISTS features.weather_hourly")
    report = check_schemas(spark, repo)
    assert report.problems == []
    assert report.notes == [
        "raw.defs_not_there not computed yet: not checked for carrier_delays",
        "features.weather_hourly (dbt model) not computed yet: not checked for route_weather",
    ]


def test_matching_schemas_pass(spark, tmp_path):
    spark.sql("DROP TABLE IF EXISTS raw.defs_good")
    spark.sql("CREATE TABLE raw.defs_good (carrier STRING, ts TIMESTAMP, day DATE, delay INT) USING delta")
    try:
        repo = load_repo(write_repo(tmp_path, table="raw.defs_good"))
        assert [p for p in check_schemas(spark, repo).problems if "carrier_delays" in p] == []
    finally:
        spark.sql("DROP TABLE IF EXISTS raw.defs_good")


# ---------------------------------------------------------------------------------- against dbt's manifest


def _model(name: str, schema: str, columns: dict[str, str | None], *, enforced: bool = False, deps=()) -> dict:
    return {
        "resource_type": "model",
        "name": name,
        "schema": schema,
        "alias": name,
        "columns": {c: {"name": c, "data_type": t} for c, t in columns.items()},
        "contract": {"enforced": enforced},
        "depends_on": {"nodes": list(deps)},
    }


def write_manifest(folder: Path, models: list[dict], catalog: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "metadata": {"dbt_version": "1.11.0"},
        "nodes": {f"model.proj.{m['name']}": m for m in models},
        "sources": {"source.proj.raw.obs": {"schema": "raw", "name": "obs", "identifier": "weather"}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if catalog is not None:
        (folder / "catalog.json").write_text(json.dumps(catalog))
    return folder / "manifest.json"


def test_dbt_model_missing_or_in_another_schema(tmp_path):
    repo = load_repo(write_repo(tmp_path))
    report = check_dbt(repo, load_manifest(write_manifest(tmp_path / "t1", [])))
    assert len(report.problems) == 1 and "dbt model 'weather_hourly' is not in manifest.json" in report.problems[0]
    model = _model("weather_hourly", "staging", {"origin": None, "dest": None, "obs_ts": None, "temp": None})
    report = check_dbt(repo, load_manifest(write_manifest(tmp_path / "t2", [model])))
    assert any("built in schema 'staging', the source says 'features'" in p for p in report.problems)


def test_dbt_declared_types_and_undeclared_columns(tmp_path):
    repo = load_repo(write_repo(tmp_path))
    model = _model("weather_hourly", "features", {"origin": None, "obs_ts": "timestamp", "temp": "integer"})
    report = check_dbt(repo, load_manifest(write_manifest(tmp_path / "t", [model])))
    assert len(report.problems) == 1
    assert "feature 'temp' is typed double but dbt model 'weather_hourly' declares int" in report.problems[0]
    assert report.notes == [
        "feature view 'route_weather': dbt model 'weather_hourly' does not declare dest, gusts in its YAML "
        "(checked against the table once built)"
    ]


def test_dbt_enforced_contract_makes_missing_columns_problems(tmp_path):
    repo = load_repo(write_repo(tmp_path))
    model = _model("weather_hourly", "features", {"origin": "string", "obs_ts": "timestamp"}, enforced=True)
    report = check_dbt(repo, load_manifest(write_manifest(tmp_path / "t", [model])))
    assert sorted(p.split(": ", 2)[2] for p in report.problems) == sorted(
        f"dbt model 'weather_hourly' has no {role} column '{c}'"
        for role, c in (("join key", "dest"), ("feature", "temp"), ("feature", "gusts"))
    )


def test_dbt_catalog_json_gives_the_built_columns(tmp_path):
    repo = load_repo(write_repo(tmp_path))
    model = _model("weather_hourly", "features", {"origin": None})
    built = {"origin": "string", "dest": "string", "obs_ts": "timestamp", "temp": "double", "gusts": "int"}
    catalog = {"nodes": {"model.proj.weather_hourly": {"columns": {c: {"type": t} for c, t in built.items()}}}}
    report = check_dbt(repo, load_manifest(write_manifest(tmp_path / "t", [model], catalog)))
    assert len(report.problems) == 1 and "feature 'gusts' is typed bigint but" in report.problems[0]
    assert report.notes == []


def test_dbt_lineage_from_the_manifest(tmp_path):
    stg = _model("stg_weather", "staging", {}, deps=["source.proj.raw.obs"])
    model = _model("weather_hourly", "features", {}, deps=["model.proj.stg_weather"])
    manifest = load_manifest(write_manifest(tmp_path / "t", [stg, model]))
    models, edges = manifest.lineage_of("weather_hourly")
    assert models == {"stg_weather", "weather_hourly"}
    assert edges == {
        ("table:raw.weather", "dbt_model:stg_weather"),
        ("dbt_model:stg_weather", "dbt_model:weather_hourly"),
    }


def test_no_manifest_is_a_note(tmp_path):
    repo = load_repo(write_repo(tmp_path))
    assert load_manifest(tmp_path / "none" / "manifest.json") is None
    report = check_dbt(repo, None)
    assert report.problems == [] and "no dbt manifest" in report.notes[0]


def test_pinned_selections_and_online_namespaces(tmp_path):
    services = SERVICES + (
        '\npinned = FeatureService(name="pinned", features=[route_weather.pin(2, ["temp", "other_feature"])])\n'
        'twice = FeatureService(name="twice", features=[route_weather.pin(1, ["temp"]), route_weather[["gusts"]]])\n'
    )
    repo = load_repo(write_repo(tmp_path, **{"feature_services.py": services}))
    assert repo.views["route_weather"].online_namespace == "route_weather.v1"
    (sel,) = repo.selections_for("pinned")
    # another version than the defined one: its features are checked against what it was materialized with
    assert (sel.view, sel.features, sel.version) == ("route_weather", ("temp", "other_feature"), 2)
    assert repo.selections_for(None, ["route_weather:temp"])[0].version is None
    with pytest.raises(FeaturelakeError, match="selected at two versions"):
        repo.selections_for("twice")


REQUEST_VIEWS = """
from featurelake.repo.definitions import Feature, FeatureService, RequestFeatureView, ValueType
from .feature_views import carrier_delays, route_weather


def _f(row):
    return {"delay_over_mean": None if row["delay_mean_1h"] is None else row["delay"] - row["delay_mean_1h"],
            "warm": None if row["temp"] is None else row["temp"] > 20}


over = RequestFeatureView(
    name="over", request={"delay": ValueType.DOUBLE},
    sources=[carrier_delays[["delay_mean_1h"]], route_weather[["temp"]]],
    features=[Feature(name="delay_over_mean", dtype=ValueType.DOUBLE), Feature(name="warm", dtype=ValueType.BOOL)],
    function=_f,
)
with_request = FeatureService(name="with_request", features=[carrier_delays[["delay_mean_1d", "delay_mean_1h"]], over])
"""


def test_request_views_plan_their_inputs(tmp_path):
    repo = load_repo(write_repo(tmp_path, **{"request_views.py": REQUEST_VIEWS}))
    reads = repo.reads_for("with_request")
    assert [(s.view, s.features) for s in reads.selections] == [
        ("carrier_delays", ("delay_mean_1d", "delay_mean_1h")),
        ("over", ("delay_over_mean", "warm")),
    ]
    # delay_mean_1h is selected anyway; temp is read only for the request view, from a view nothing else selects
    assert [(s.view, reads.features_read(s)) for s in reads.reads] == [
        ("carrier_delays", ("delay_mean_1d", "delay_mean_1h")),
        ("route_weather", ("temp",)),
    ]
    assert reads.inputs_only == {"route_weather": ("temp",)} and reads.request_fields == {"delay": ValueType.DOUBLE}
    only = repo.reads_for(None, ["over:warm"])
    assert [(s.view, s.features) for s in only.selections] == [("over", ("warm",))]
    assert only.inputs_only == {"carrier_delays": ("delay_mean_1h",), "route_weather": ("temp",)}
    with pytest.raises(FeaturelakeError, match="request feature view 'over' has no feature"):
        repo.reads_for(None, ["over:nope"])


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'route_weather[["temp"]]',
            'route_weather[["temp", "nope"]]',
            "refers to missing feature(s) route_weather:nope",
        ),
        ('request={"delay": ValueType.DOUBLE}', 'request={"temp": ValueType.DOUBLE}', "input(s) named twice"),
        ("route_weather[[", "ghost[[", "NameError"),
        ('name="over"', 'name="route_weather"', "feature view name 'route_weather' is taken twice"),
        ("features=[Feature(", "features=[], _=[Feature(", "Extra inputs are not permitted"),
    ],
)
def test_request_view_problems(tmp_path, old, new, message):
    assert old in REQUEST_VIEWS
    root = write_repo(tmp_path, **{"request_views.py": REQUEST_VIEWS.replace(old, new, 1)})
    assert any(message in p for p in problems_of(root)), problems_of(root)


def test_request_view_compute_types_its_inputs_and_outputs():
    rv = RequestFeatureView(
        name="r",
        request={"x": ValueType.DOUBLE},
        features=[Feature(name="n", dtype=ValueType.INT64), Feature(name="d", dtype=ValueType.DOUBLE)],
        function=lambda row: {"n": 3, "d": 2} if row["x"] else {"n": None},
    )
    assert rv.compute({"x": 1.0}) == {"n": 3, "d": 2.0} and isinstance(rv.compute({"x": 1.0})["d"], float)
    assert rv.compute({"x": 0.0}) == {"n": None, "d": None}  # left out: None
    wrong = rv.model_copy(update={"function": lambda row: {"n": 1.5}})
    with pytest.raises(RequestFeatureError, match="r:n: 1.5 is not a bigint"):
        wrong.compute({"x": 1.0})
    extra = rv.model_copy(update={"function": lambda row: {"z": 1}})
    with pytest.raises(RequestFeatureError, match="returned undeclared feature"):
        extra.compute({"x": 1.0})
    failing = rv.model_copy(update={"function": lambda row: {"n": 1 // 0}})
    with pytest.raises(RequestFeatureError, match="its function raised ZeroDivisionError"):
        failing.compute({"x": 1.0})
    naive = dt.datetime(2013, 1, 1, 5)
    assert python_value(naive) == naive.replace(tzinfo=dt.UTC)  # Arrow and JSON give the function one kind
    assert typed_value(True, ValueType.BOOL, "b") is True
    with pytest.raises(RequestFeatureError, match="True is not a double"):
        typed_value(True, ValueType.DOUBLE, "b")
    with pytest.raises(ValidationError, match="request fields, source features or both"):
        RequestFeatureView(name="empty", features=[Feature(name="n", dtype=ValueType.INT64)], function=len)
