"""The HTTP feature server: Feast's ``POST /get-online-features`` over the configured online store, ``GET /health``
and ``GET /metrics`` (Prometheus text), run by uvicorn (``featurelake serve online``).

Request (as Feast's feature server): ``{"features": ["view:feature", ...]}`` or ``{"feature_service": "name"}``,
``"entities": {"key": [v1, v2, ...]}`` (columns of join-key values, and of request data for request feature views,
which may come in ``"request_context"`` instead), ``"full_feature_names": false``. Response:
``{"metadata": {"feature_names": [...]}, "results": [{"values", "statuses", "event_timestamps"}, ...]}``, one result
per column, the entity key columns first. Statuses: PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE (the store still holds a
value past its ttl; it is not served). Timestamps and dates are ISO strings, a NaN double is null (JSON has no NaN):
msgspec's JSON encoder writes them so (UTC as ``Z``), several times faster than the standard library's.

``POST /push`` (Feast's): ``{"push_source_name": "...", "df": {"field": [v1, ...]}, "to": "online"}`` (``to``:
``online``, ``offline`` or ``online_and_offline``) lands rows of a stream source (``featurelake.streaming.push``):
``{"source", "rows", "offline_inserted", "online": {view: written}}``. Rows that do not match the source's fields
are a 422 naming the field and the row, an unknown source a 404. An offline push writes Delta through Spark: the
server starts its Spark session on the first one (tens of seconds), in a worker thread, one offline push at a time.

Bad input is a 4xx with one line (``{"detail": ...}``); a failing store a 503 naming it; never a traceback.
Reads run on the event loop: each is one store round trip, shorter than a hop to a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from featurelake.errors import FeaturelakeError, InputError
from featurelake.online.backends import open_store
from featurelake.online.client import PRESENT, OnlineClient, ViewValues
from featurelake.online.encoding import EPOCH
from featurelake.online.store import StoreConfig
from featurelake.online.versions import applied_registry
from featurelake.repo.definitions import RequestFeatureError, ValueType
from featurelake.repo.specs import definitions_fingerprint, serialize

if TYPE_CHECKING:
    from featurelake.config import Settings
    from featurelake.repo import Repo

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class GetOnlineFeaturesRequest(BaseModel):
    """Feast's request body (its other fields, e.g. vector search, are ignored)."""

    model_config = ConfigDict(extra="ignore")

    entities: dict[str, list[Any]]
    request_context: dict[str, list[Any]] | None = None
    features: list[str] | None = None
    feature_service: str | None = None
    full_feature_names: bool = False


class PushRequest(BaseModel):
    """Feast's push body (``allow_registry_cache`` and ``transform_on_write`` are ignored)."""

    model_config = ConfigDict(extra="ignore")

    push_source_name: str
    df: dict[str, list[Any]]
    to: str = "online"


class RequestError(Exception):
    """A request the server refuses: HTTP ``status`` and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class StoreUnavailable(Exception):
    """The online store failed a read or a health probe."""


def parse_request(body: bytes, max_entities: int) -> GetOnlineFeaturesRequest:
    """The validated request; :class:`RequestError` (400) with one line otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not JSON: {exc}") from None
    try:
        req = GetOnlineFeaturesRequest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise RequestError(400, f"invalid request: {where}: {err['msg']}") from None
    if bool(req.features) == bool(req.feature_service):
        raise RequestError(400, "give either features (a non-empty list of view:feature) or feature_service")
    if not req.entities:
        raise RequestError(400, "entities is empty: give each join key as a column of values")
    if clash := sorted(set(req.entities) & set(req.request_context or {})):
        raise RequestError(400, f"column(s) {', '.join(clash)} in both entities and request_context")
    lengths = {len(v) for v in (*req.entities.values(), *(req.request_context or {}).values())}
    if len(lengths) > 1:
        raise RequestError(400, f"entity and request_context columns differ in length: {sorted(lengths)}")
    rows = lengths.pop()
    if rows > max_entities:
        raise RequestError(400, f"{rows} entities requested, more than online.max_entities ({max_entities})")
    return req


def parse_push(body: bytes) -> PushRequest:
    """The push request; :class:`RequestError` (400: not JSON, 422: not a push body) with one line otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request body is not JSON: {exc}") from None
    try:
        return PushRequest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise RequestError(422, f"invalid push: {where}: {err['msg']}") from None


def check_keys(req: GetOnlineFeaturesRequest, keys: dict[str, str]) -> None:
    """Every join key the request needs (key -> a view needing it) is a column of non-null strings or integers."""
    if missing := [f"{k} (view {v})" for k, v in keys.items() if k not in req.entities]:
        raise RequestError(400, f"entities has no column for join key(s) {', '.join(missing)}")
    for name in keys:
        for i, value in enumerate(req.entities[name]):
            if value is None:
                raise RequestError(400, f"entity key {name!r} is null in entity {i}")
            if not isinstance(value, str | int):  # bool is an int
                raise RequestError(400, f"entity key {name!r}: {value!r} is not a string, integer or boolean")


def request_rows(req: GetOnlineFeaturesRequest, fields: dict[str, ValueType]) -> list[dict[str, Any]]:
    """One dict per entity: its key values and request fields (from ``entities`` or ``request_context``; ISO strings
    of timestamp and date fields parsed, as JSON has neither)."""
    columns = {**req.entities, **(req.request_context or {})}
    for name, dtype in fields.items():
        if name in columns and dtype in (ValueType.TIMESTAMP, ValueType.DATE):
            columns[name] = [_parse_iso(v, dtype, name) for v in columns[name]]
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _parse_iso(value: Any, dtype: ValueType, name: str) -> Any:
    if not isinstance(value, str):
        return value  # typed (and refused if wrong) with every other request value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise RequestError(400, f"request field {name!r}: {value!r} is not an ISO {dtype.value}") from None
    return parsed if dtype is ValueType.TIMESTAMP else parsed.date()


def _stamp(ts_us: int | None) -> dt.datetime:
    return EPOCH if ts_us is None else EPOCH + dt.timedelta(microseconds=ts_us)


def shape_response(
    req: GetOnlineFeaturesRequest, selections: list[tuple[str, tuple[str, ...]]], found: list[list[ViewValues]]
) -> dict[str, Any]:
    """Feast's response with typed values (:func:`encode_response` writes it): entity key columns first (PRESENT,
    epoch timestamps), then each feature's column."""
    names: list[str] = list(req.entities)
    results = [
        {"values": column, "statuses": [PRESENT] * len(column), "event_timestamps": [EPOCH] * len(column)}
        for column in req.entities.values()
    ]
    for (view, features), per_row in zip(selections, found, strict=True):
        statuses = [r.status for r in per_row]
        stamps = [_stamp(r.ts_us) for r in per_row]
        for feature in features:
            names.append(f"{view}__{feature}" if req.full_feature_names else feature)
            values = [r.values[feature] for r in per_row]
            results.append({"values": values, "statuses": statuses, "event_timestamps": stamps})
    return {"metadata": {"feature_names": names}, "results": results}


def encode_response(body: dict[str, Any]) -> bytes:
    """JSON with timestamps as ISO strings (UTC as ``Z``), dates as ``YYYY-MM-DD``, NaN and infinities as null."""
    return msgspec.json.encode(body)


class Metrics:
    """Prometheus text exposition of requests by path and status, a latency histogram, store errors.

    Hand-written: prometheus_client is not in the lock, and these three series need a few lines.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, list[int]] = {}  # path -> counts per bucket (cumulative at render), +Inf last
        self.latency_sum: dict[str, float] = {}
        self.store_errors = 0

    def observe(self, path: str, status: int, seconds: float) -> None:
        self.requests[(path, status)] = self.requests.get((path, status), 0) + 1
        counts = self.latency.setdefault(path, [0] * (len(LATENCY_BUCKETS_S) + 1))
        counts[next((i for i, b in enumerate(LATENCY_BUCKETS_S) if seconds <= b), len(LATENCY_BUCKETS_S))] += 1
        self.latency_sum[path] = self.latency_sum.get(path, 0.0) + seconds

    def render(self) -> str:
        lines = [
            "# HELP featurelake_online_requests_total HTTP requests by path and status.",
            "# TYPE featurelake_online_requests_total counter",
        ]
        for (path, status), n in sorted(self.requests.items()):
            lines.append(f'featurelake_online_requests_total{{path="{path}",status="{status}"}} {n}')
        lines += [
            "# HELP featurelake_online_request_seconds Request latency.",
            "# TYPE featurelake_online_request_seconds histogram",
        ]
        for path, counts in sorted(self.latency.items()):
            total = 0
            for bound, n in zip([*map(str, LATENCY_BUCKETS_S), "+Inf"], counts, strict=True):
                total += n
                lines.append(f'featurelake_online_request_seconds_bucket{{path="{path}",le="{bound}"}} {total}')
            lines.append(f'featurelake_online_request_seconds_sum{{path="{path}"}} {self.latency_sum[path]}')
            lines.append(f'featurelake_online_request_seconds_count{{path="{path}"}} {total}')
        lines += [
            "# HELP featurelake_online_store_errors_total Online store reads that failed.",
            "# TYPE featurelake_online_store_errors_total counter",
            f"featurelake_online_store_errors_total {self.store_errors}",
        ]
        return "\n".join(lines) + "\n"


class _Observe:
    """ASGI middleware recording each HTTP request's path (known routes only), status and latency."""

    def __init__(self, app: Any, metrics: Metrics, paths: set[str]):
        self.app, self.metrics, self.paths = app, metrics, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def record_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            path = scope["path"] if scope["path"] in self.paths else "other"
            self.metrics.observe(path, status, time.perf_counter() - start)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def create_app(settings: Settings | None = None, repo: Repo | None = None) -> FastAPI:
    """The feature server over the online store of ``settings`` and the definitions of ``repo`` (default: the
    configured ones); uvicorn's ``--factory`` target."""
    from featurelake.config import get_settings
    from featurelake.repo import feature_repo

    settings = settings or get_settings()
    repo = repo or feature_repo(settings)
    store_config = StoreConfig.from_settings(settings)
    client = OnlineClient(repo, open_store(store_config))
    max_entities = settings.online.max_entities
    fingerprint = definitions_fingerprint(serialize(repo))
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        client.close()

    app = FastAPI(
        title="featurelake feature server", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.add_middleware(_Observe, metrics=metrics, paths={"/get-online-features", "/push", "/health", "/metrics"})
    offline_push = asyncio.Lock()  # one offline push at a time (and one Spark session start)

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        metrics.store_errors += 1
        return _error(503, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])

    def unavailable(exc: Exception) -> StoreUnavailable:
        first = (str(exc).splitlines() or [""])[0]
        return StoreUnavailable(f"online store {store_config.identity} unavailable: {type(exc).__name__}: {first}")

    @app.post("/get-online-features")
    async def get_online_features(request: Request) -> Response:
        req = parse_request(await request.body(), max_entities)
        try:
            plan = client.plan(req.feature_service, req.features)
        except FeaturelakeError as exc:
            raise RequestError(404, str(exc)) from None
        check_keys(req, plan.key_columns)
        rows = request_rows(req, plan.request_fields)
        try:
            found = client.lookup(rows, service=req.feature_service, features=req.features)
        except InputError as exc:
            raise RequestError(400, str(exc)) from None
        except RequestFeatureError:
            raise  # a request feature view's function failed: its one line, as an internal error
        except Exception as exc:  # anything the store's client raises: connection refused, timeouts, I/O
            raise unavailable(exc) from None
        body = shape_response(req, [(s.view, s.features) for s in plan.selections], found)
        return Response(encode_response(body), media_type="application/json")

    @app.post("/push")
    async def push(request: Request) -> JSONResponse:
        from featurelake.streaming.push import PushMode, PushResult, check_rows, push_offline, push_online, push_source

        req = parse_push(await request.body())
        try:
            source = push_source(repo, req.push_source_name)
        except InputError as exc:
            raise RequestError(404, str(exc)) from None
        try:
            mode = PushMode.parse(req.to)
            rows = check_rows(repo, source, req.df)
        except InputError as exc:
            raise RequestError(422, str(exc)) from None

        def land_offline() -> int:
            from featurelake.spark import get_spark

            return push_offline(get_spark(settings), source, rows)

        inserted = None
        if mode.offline:  # Spark's work in a thread; the store's on the loop, as the reads
            async with offline_push:
                inserted = await run_in_threadpool(land_offline)
        try:
            online = push_online(repo, source, rows, client.store) if mode.online else {}
        except Exception as exc:  # anything the store's client raises
            raise unavailable(exc) from None
        return JSONResponse(dataclasses.asdict(PushResult(source.name, len(rows), inserted, online)))

    @app.get("/health")
    async def health() -> JSONResponse:
        try:
            client.store.ping()
            applied = applied_registry(client.store)
        except Exception as exc:  # the probe's only purpose is to report any store failure
            metrics.store_errors += 1
            return _error(503, str(unavailable(exc)))
        return JSONResponse(
            {
                "status": "ok",
                "store": store_config.identity,
                "registry": fingerprint,
                # the applied registry version holding the served definitions (None: they differ, restart after
                # `featurelake apply`, or were never applied), and the last one applied
                "registry_version": applied[0] if applied and applied[1] == fingerprint else None,
                "registry_applied_version": applied[0] if applied else None,
            }
        )

    @app.get("/metrics")
    async def prometheus() -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
