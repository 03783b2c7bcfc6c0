"""HTTP layer: FastAPI routes over :class:`~fusionrec.serve.service.RecService`.

Every error is JSON ``{"error", "field", "fix"?}`` with a 4xx status: pydantic
validation problems (wrong types, k out of range) are 422 naming the field,
malformed JSON is 400, bodies over ``max_body_bytes`` are 413 (checked on the
declared length *and* on the bytes actually received, so a chunked upload
cannot slip past), unknown ids 404/422. A handler for any other exception
still answers JSON 500 -- the tests and the schemathesis run check it never fires.
"""
# no `from __future__ import annotations`: FastAPI must see the real (locally built) parameter types
import logging
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fusionrec.serve.security import KeyChecker
from fusionrec.serve.service import RecService, ServeError

log = logging.getLogger("fusionrec.serve")

API_KEY_HEADER = "X-API-Key"
Id = Annotated[str | int, Field(description="an id; numbers are treated as their decimal text")]
AttrValue = str | int | float | bool | None


# ---------------------------------------------------------------------- request bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Body):
    user_id: Id = Field(description="the acting user (new ids are accepted: they become online users)")
    item_id: Id = Field(description="an item of the catalogue")
    type: str = Field("click", max_length=64, description="event type; see online.event_weights in the serve config")
    timestamp: float | None = Field(None, description="unix seconds; default: time received")
    event_id: str | None = Field(None, max_length=128, description="client id for idempotent retries")


class EventsIn(_Body):
    events: list[EventIn] = Field(min_length=1)


class ItemIn(_Body):
    item_id: Id
    text: str | None = Field(None, max_length=20_000, description="free text (description, overview)")
    image_base64: str | None = Field(None, description="image file bytes, base64")
    image_path: str | None = Field(None, max_length=1024, description="image file path under the media root")
    audio_path: str | None = Field(None, max_length=1024, description="audio file path under the media root")
    attributes: dict[str, AttrValue] = Field(default_factory=dict, description="e.g. title, genres, year")


class ItemsIn(_Body):
    items: list[ItemIn] = Field(min_length=1)


class RecommendIn(_Body):
    items: list[Id] = Field(default_factory=list, max_length=1000, description="items the user touched")
    text: str | None = Field(None, max_length=10_000, description="free-text query")
    k: int = Field(10, ge=1)
    exclude_seen: bool = True
    filters: str | None = Field(None, max_length=1000)


# ---------------------------------------------------------------------- middleware
class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413, by Content-Length and by counting what arrives."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit or declared < 0:
                    await _send_json(send, 413 if declared > self.limit else 400, {
                        "error": f"request body of {value.decode(errors='replace')} bytes; the limit is {self.limit}",
                        "field": "body", "fix": "send smaller batches"})
                    return
        # Read the whole body first (it is bounded by the limit), so an oversized chunked
        # upload is refused here with 413 instead of failing somewhere inside the framework.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            received += len(body)
            if received > self.limit:
                await _send_json(send, 413, {"error": f"request body over {self.limit} bytes", "field": "body",
                                             "fix": "send smaller batches"})
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        buffered = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": buffered, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    import json

    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Counts requests by route template and status, and observes their latency."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.requests.labels(scope["method"], path, str(status["code"])).inc()
            self.latency.labels(path).observe(time.perf_counter() - start)


# ---------------------------------------------------------------------- app
def create_app(service: RecService, keys: KeyChecker) -> FastAPI:
    """The FastAPI app for ``service``; ``keys`` guards write endpoints (and reads when configured)."""
    cfg = service.cfg
    max_k = cfg.max_k
    app = FastAPI(
        title="fusionrec recommendation service",
        version="1.0",
        description="Real-time multimodal recommendations: per-user and anonymous recommendations, similar "
                    "items, online events, content cold start for new items, explanations and profiles. "
                    f"Write endpoints need the `{API_KEY_HEADER}` header.",
    )
    app.state.service = service

    registry = CollectorRegistry()
    requests = Counter("fusionrec_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("fusionrec_request_seconds", "request latency", ["route"], registry=registry,
                        buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
    events_total = Counter("fusionrec_events_ingested", "events accepted by POST /events", registry=registry)
    items_total = Counter("fusionrec_items_posted", "items added or updated by POST /items", registry=registry)
    Gauge("fusionrec_index_items", "items in the serving index", registry=registry).set_function(
        lambda: service.state.catalogue.n_items)
    Gauge("fusionrec_users", "users with a trained vector", registry=registry).set_function(
        lambda: len(service.state.user_ids))
    Gauge("fusionrec_online_users", "users with online events", registry=registry).set_function(
        lambda: service.online.users())
    Gauge("fusionrec_model_version", "version of the serving state (increments on swap)",
          registry=registry).set_function(lambda: service.state.version)
    mem_cache: dict[int, int] = {}

    def index_memory() -> float:
        st = service.state
        if st.index is None:
            return 0.0
        key = (id(st), st.catalogue.n_items)
        if key not in mem_cache:
            mem_cache.clear()
            mem_cache[key] = st.index.memory_bytes() + st.sim_index.memory_bytes()
        return float(mem_cache[key])

    Gauge("fusionrec_index_memory_bytes", "bytes held by the faiss indexes and vectors",
          registry=registry).set_function(index_memory)

    app.add_middleware(MetricsMiddleware, requests=requests, latency=latency)
    app.add_middleware(BodyLimitMiddleware, limit=cfg.max_body_bytes)

    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="API key (write endpoints)")

    async def write_key(key: Annotated[str | None, Depends(header)]) -> None:
        if not keys.check(key):
            raise ServeError(401, API_KEY_HEADER, "missing or invalid API key",
                             f"send a configured key in the {API_KEY_HEADER} header")

    async def read_key(key: Annotated[str | None, Depends(header)]) -> None:
        if cfg.require_key_for_reads and not keys.check(key):
            raise ServeError(401, API_KEY_HEADER, "missing or invalid API key (reads require a key on this server)",
                             f"send a configured key in the {API_KEY_HEADER} header")

    # Reads carry the key dependency only when the config asks for read keys: resolving a
    # dependency is a measurable share of a sub-millisecond request.
    reads = [Depends(read_key)] if cfg.require_key_for_reads else []

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, err: ServeError) -> JSONResponse:
        return JSONResponse(err.as_dict(), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        errors = err.errors()
        first = errors[0] if errors else {}
        field = ".".join(str(p) for p in first.get("loc", ())) or "body"
        status = 400 if first.get("type") == "json_invalid" else 422
        details = [{"field": ".".join(str(p) for p in e.get("loc", ())), "error": e.get("msg", "")} for e in errors[:20]]
        return JSONResponse({"error": f"{field}: {first.get('msg', 'invalid request')}", "field": field,
                             "details": details}, status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(err).__name__})", "field": None}, status_code=500)

    errors = {401: {"description": "missing/invalid API key"}, 404: {"description": "unknown id"},
              422: {"description": "invalid input (names the field)"}}
    K = Annotated[int, Query(ge=1, le=max_k, description=f"number of items, 1..{max_k}")]
    Filters = Annotated[str | None, Query(max_length=1000, description="e.g. genres:Comedy;year>=1990")]

    # Reads that are pure in-memory work (well under a millisecond) are `async def`: they run on
    # the event loop without a thread-pool hop. Anything that can block -- SQLite fsync (events,
    # items, delete), model inference for text queries, retrain -- stays `def` (thread pool).
    @app.get("/recommendations/{user_id}", dependencies=reads, responses=errors, tags=["recommend"])
    async def recommend(user_id: str, k: K = 10, exclude_seen: bool = True, filters: Filters = None) -> dict[str, Any]:
        """Top-k items for a known user (trained or with online events); seen items excluded by default."""
        return service.recommend_user(user_id, k=k, exclude_seen=exclude_seen, filters=filters)

    @app.post("/recommendations", dependencies=reads, responses=errors, tags=["recommend"])
    def recommend_anonymous(body: RecommendIn) -> dict[str, Any]:
        """Anonymous or new users: the items they touched and/or a free-text query."""
        return service.recommend_anonymous([str(i) for i in body.items], body.text, body.k,
                                           body.exclude_seen, body.filters)

    @app.get("/items/{item_id}/similar", dependencies=reads, responses=errors, tags=["items"])
    async def similar(item_id: str, k: K = 10, filters: Filters = None) -> dict[str, Any]:
        """Items closest to this one in the model's item space (cosine)."""
        return service.similar(item_id, k=k, filters=filters)

    @app.get("/items/{item_id}", dependencies=reads, responses=errors, tags=["items"])
    async def item_profile(item_id: str) -> dict[str, Any]:
        """Item profile: attributes, popularity, modalities present, nearest items."""
        return service.item_profile(item_id)

    @app.post("/items", dependencies=[Depends(write_key)], responses=errors, tags=["items"])
    def post_items(body: ItemsIn) -> dict[str, Any]:
        """Add or update items; they are encoded and indexed at once (no retraining)."""
        result = service.upsert_items([it.model_dump() for it in body.items])
        items_total.inc(len(body.items))
        return result

    @app.post("/events", dependencies=[Depends(write_key)], responses=errors, tags=["events"])
    def post_events(body: EventsIn) -> dict[str, Any]:
        """Store a batch of events durably (acknowledged = on disk) and update the users' online vectors."""
        result = service.ingest([e.model_dump() for e in body.events])
        events_total.inc(result["accepted"])
        return result

    @app.get("/explain/{user_id}/{item_id}", dependencies=reads, responses=errors, tags=["explain"])
    async def explain(user_id: str, item_id: str) -> dict[str, Any]:
        """Why this item: modality contributions to the score and the past items that drove it."""
        return service.explain(user_id, item_id)

    @app.get("/users/{user_id}/profile", dependencies=reads, responses=errors, tags=["users"])
    async def user_profile(user_id: str) -> dict[str, Any]:
        """Readable profile: top attributes, representative past items, how much each modality drives scores."""
        return service.user_profile(user_id)

    @app.delete("/users/{user_id}", dependencies=[Depends(write_key)], responses=errors, tags=["users"])
    def forget_user(user_id: str) -> dict[str, Any]:
        """Forget a user: events, profile and online state removed; excluded from every later retrain."""
        return service.forget_user(user_id)

    @app.post("/admin/retrain", dependencies=[Depends(write_key)], status_code=202, responses=errors, tags=["admin"])
    def retrain() -> dict[str, Any]:
        """Start a full retrain on the stored events; the new model is swapped in without downtime."""
        started = service.retrain_in_background()
        return {"started": started, "status": service.retrain_status}

    @app.get("/admin/retrain", dependencies=reads, tags=["admin"])
    def retrain_status() -> dict[str, Any]:
        """Whether a retrain is running, and the last one's outcome."""
        return dict(service.retrain_status)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, Any]:
        """Liveness and a summary of what is served."""
        return service.health()

    @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
    def metrics() -> PlainTextResponse:
        """Prometheus text format: request counts, latencies, index size, events ingested."""
        return PlainTextResponse(generate_latest(registry).decode(), media_type=CONTENT_TYPE_LATEST)

    return app
