"""Push sources end to end: rows pushed by ``featurelake.push`` and by the feature server's ``POST /push`` (uvicorn on
a free port, in this process so that its offline pushes share the test session's Spark instead of starting a JVM of
their own) land in the source's Delta table once and in a Redis online store, never back in time; the server reads
them back through ``/get-online-features``. Expected values: each key's newest row picked by hand from the rows
pushed, and the window view's rows by the brute force of test_streaming over the rows pushed offline."""

from __future__ import annotations

import datetime as dt
import random
import textwrap
import threading
import time
import uuid

import httpx
import pandas as pd
import pytest

from featurelake.errors import InputError
from tests.integration.test_streaming import ORIGINS, brute_force, event
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

UTC = dt.UTC
TTL = dt.timedelta(hours=2)


@pytest.fixture(scope="module")
def pushed(spark, settings, redis_server, tmp_path_factory):
    """A repository with a push source (no topic), a view of its fields and a window view over it; settings on a
    Redis store of the module's; the feature server over them."""
    import uvicorn

    from featurelake.config import OnlineStoreSettings
    from featurelake.repo import load_repo
    from featurelake.serve.online import create_app

    tag = uuid.uuid4().hex[:8]
    folder = tmp_path_factory.mktemp("push_repo") / "features"
    folder.mkdir()
    (folder / "defs.py").write_text(
        textwrap.dedent(
            f"""
            from featurelake.repo.definitions import (
                Aggregation, Entity, Feature, FeatureView, StreamSource, WindowComputation,
            )

            origin = Entity(name="origin_airport", join_keys=["origin"])
            pushes = StreamSource(
                name="pushes_{tag}", table="raw.pushes_{tag}", timestamp_column="dep_ts",
                fields={{"flight_id": "bigint", "origin": "string", "dep_delay": "double", "dep_ts": "timestamp"}},
            )
            last_departure = FeatureView(
                name="last_departure_{tag}", entities=[origin], source=pushes, ttl="{int(TTL.total_seconds())}s",
                features=[Feature(name="dep_delay", dtype="double"), Feature(name="flight_id", dtype="bigint")],
            )
            pushed_windows = FeatureView(
                name="pushed_windows_{tag}", entities=[origin], source=pushes, ttl="1h",
                computation=WindowComputation(tile="5m", aggregations=[
                    Aggregation(column="dep_delay", function="mean", windows=["30m", "1h"]),
                    Aggregation(column="flight_id", function="count", windows=["30m"], name="departures"),
                ]),
            )
            """
        )
    )
    repo = load_repo(folder)
    push_settings = settings.model_copy(
        update={"online_store": OnlineStoreSettings(type="redis", redis_host="127.0.0.1", redis_port=redis_server.port)}
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(push_settings, repo), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
        yield push_settings, repo, tag, client
    server.should_exit = True
    thread.join(30)


def online(client, tag: str) -> dict[str, tuple[str, float | None, int | None]]:
    """Per origin: (status, dep_delay, flight_id) as the feature server answers."""
    body = {"features": [f"last_departure_{tag}:dep_delay", f"last_departure_{tag}:flight_id"],
            "entities": {"origin": ORIGINS}}  # fmt: skip
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 200, response.text
    _, delay, flight = response.json()["results"]
    return {
        o: (delay["statuses"][i], delay["values"][i], flight["values"][i]) for i, o in enumerate(ORIGINS)
    }  # fmt: skip


def newest(rows: list[dict]) -> dict[str, dict]:
    """Per origin, its row with the latest dep_ts (the hand-picked expectation)."""
    out: dict[str, dict] = {}
    for r in rows:
        if r["origin"] not in out or r["dep_ts"] > out[r["origin"]]["dep_ts"]:
            out[r["origin"]] = r
    return out


def columns(rows: list[dict]) -> dict[str, list]:
    return {name: [r[name] for r in rows] for name in ["flight_id", "origin", "dep_delay", "dep_ts"]}


def test_pushed_rows_land_offline_once_and_online_never_back_in_time(spark, pushed):
    import featurelake
    from featurelake.compute.aggregations import WindowPlan, rollup, tile_partials

    settings, repo, tag, client = pushed
    rng = random.Random(28)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    first = [event(i, rng.choice(ORIGINS), float(rng.randrange(-5, 60)), now - dt.timedelta(minutes=90 - i))
             for i in range(60)]  # fmt: skip
    # 1. the Python API, a pandas DataFrame, online and offline
    frame = pd.DataFrame(first).assign(dep_ts=lambda d: pd.to_datetime(d.dep_ts, utc=True))
    result = featurelake.push(f"pushes_{tag}", frame, "online_and_offline", settings=settings, repo=repo, spark=spark)
    assert (result.rows, result.offline_inserted, result.online) == (60, 60, {f"last_departure_{tag}": 3})
    expected = newest(first)
    assert online(client, tag) == {o: ("PRESENT", r["dep_delay"], r["flight_id"]) for o, r in expected.items()}

    # 2. the server: 10 rows again (a retried push), an older EWR row, a newer JFK row
    older_ewr = event(100, "EWR", 999.0, dt.datetime.fromisoformat(expected["EWR"]["dep_ts"]) - dt.timedelta(minutes=1))
    newer_jfk = event(101, "JFK", 41.0, now - dt.timedelta(seconds=5))
    body = {"push_source_name": f"pushes_{tag}", "df": columns([*first[:10], older_ewr, newer_jfk]),
            "to": "online_and_offline"}  # fmt: skip
    response = client.post("/push", json=body)
    assert response.status_code == 200, response.text
    # offline: the 2 new rows; online: JFK's only (EWR's and LGA's newest pushed rows are older than the stored)
    assert response.json() == {"source": f"pushes_{tag}", "rows": 12, "offline_inserted": 2,
                               "online": {f"last_departure_{tag}": 1}}  # fmt: skip
    expected["JFK"] = newer_jfk
    # 3. online only: a newer LGA row, not in the offline table
    newer_lga = event(102, "LGA", 7.0, now - dt.timedelta(seconds=3))
    response = client.post("/push", json={"push_source_name": f"pushes_{tag}", "df": columns([newer_lga])})
    assert response.status_code == 200, response.text
    assert response.json()["offline_inserted"] is None
    expected["LGA"] = newer_lga
    assert online(client, tag) == {o: ("PRESENT", r["dep_delay"], r["flight_id"]) for o, r in expected.items()}

    # The offline table holds every row pushed offline exactly once.
    offline = [*first, older_ewr, newer_jfk]
    table = spark.table(f"raw.pushes_{tag}").toPandas()
    assert sorted(table.flight_id) == sorted(r["flight_id"] for r in offline)
    # The window view over the source, computed by the batch engine's transforms, sees them: brute force.
    view = repo.view(f"pushed_windows_{tag}")
    plan = WindowPlan.from_view(view, ["origin"])
    rows = rollup(tile_partials(spark.table(f"raw.pushes_{tag}"), plan=plan), plan=plan).toPandas()
    rows["event_timestamp"] = pd.to_datetime(rows.event_timestamp, utc=True)
    events = pd.DataFrame(offline).assign(dep_ts=lambda d: pd.to_datetime(d.dep_ts, utc=True))
    want = brute_force(events, rows[["origin", "event_timestamp"]])
    merged = rows.merge(want, on=["origin", "event_timestamp"], suffixes=("", "_ref"))
    assert len(merged) == len(rows) == len(want) > 0
    assert (merged.departures_30m == merged.departures_30m_ref).all()
    assert ((merged.dep_delay_mean_1h - merged.dep_delay_mean_1h_ref).abs().fillna(0) < 1e-9).all()
    assert (merged.dep_delay_mean_1h.isna() == merged.dep_delay_mean_1h_ref.isna()).all()


BAD = [
    ({"push_source_name": "nope", "df": {"origin": ["EWR"]}}, 404, "no push source 'nope' (stream sources: {src})"),
    ({"push_source_name": "{src}", "df": {"origin": ["EWR"], "dep_ts": ["x"]}}, 422,
     "push to {src}: row 0: field dep_ts: 'x' is not a timestamp"),
    ({"push_source_name": "{src}", "df": {"origin": ["EWR", "JFK"], "dep_ts": ["2026-12-02T00:00", None]}}, 422,
     "push to {src}: row 1: field dep_ts is null (a required field)"),
    ({"push_source_name": "{src}", "df": {"dep_ts": ["2026-12-02T00:00"]}}, 422,
     r"push to {src}: no column for required field(s) origin"),
    ({"push_source_name": "{src}", "df": {"origin": ["EWR"], "dep_ts": ["2026-12-02T00:00"]}, "to": "both"}, 422,
     "to 'both': give one of online, offline, online_and_offline"),
    ({"push_source_name": "{src}"}, 422, "invalid push: df: Field required"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "message"), BAD)
def test_a_bad_push_is_a_4xx_with_one_line(pushed, body, status, message):
    _, _, tag, client = pushed
    src = f"pushes_{tag}"
    body = {k: v.format(src=src) if isinstance(v, str) else v for k, v in body.items()}
    response = client.post("/push", json=body)
    assert (response.status_code, response.json()) == (status, {"detail": message.format(src=src)})


def test_the_python_api_refuses_a_bad_push_with_one_line(pushed, spark):
    import featurelake

    settings, repo, tag, _ = pushed
    with pytest.raises(InputError, match=r"row 1: field dep_delay: 'late' is not a double"):
        rows = {"origin": ["EWR", "JFK"], "dep_ts": ["2026-12-02T00:00"] * 2, "dep_delay": [1.0, "late"]}
        featurelake.push(f"pushes_{tag}", rows, settings=settings, repo=repo, spark=spark)
