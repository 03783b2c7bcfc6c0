"""The API's endpoints: each declares its role (``x-role``), response model and error responses.

Keys, roles and rate limits are applied before routing by
:class:`~fusionrec.serve.access.AccessMiddleware` from the ``x-role`` declared here, so the
handlers below only translate between HTTP and :class:`~fusionrec.serve.service.RecService`.
"""
# no `from __future__ import annotations`: FastAPI must see the real (locally built) parameter types
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fusionrec.serve.metrics import ServeMetrics
from fusionrec.serve.schemas import (
    MAX_ID_CHARS,
    ErrorOut,
    EventsOut,
    ExplanationOut,
    ForgetOut,
    HealthOut,
    ItemProfileOut,
    ItemsOut,
    RecommendationsOut,
    RetrainStartedOut,
    RetrainStatusOut,
    SimilarOut,
    UserProfileOut,
    bounded_requests,
)
from fusionrec.serve.service import RecService

_WHAT = {400: "malformed JSON or headers", 401: "missing or invalid API key",
         403: "the key's role does not allow this endpoint", 404: "unknown id",
         409: "conflicts with the server's state (a retrain is running, no encoder, ...)",
         413: "body, batch or file over its limit", 422: "invalid input (names the field)",
         429: "rate limit reached (see Retry-After)"}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorOut, "description": _WHAT[c]} for c in codes}


KEYED = (401, 403, 429)
READ = {"openapi_extra": {"x-role": "read"}, "responses": _errors(*KEYED, 404, 422)}
BODY_READ = {"openapi_extra": {"x-role": "read"}, "responses": _errors(*KEYED, 400, 404, 413, 422)}
WRITE = {"openapi_extra": {"x-role": "write"}, "responses": _errors(*KEYED, 400, 404, 409, 413, 422)}
ADMIN = {"openapi_extra": {"x-role": "admin"}, "responses": _errors(*KEYED, 404, 409, 422)}


class _Params:
    """The request parameter types of one service (their bounds come from its config)."""

    def __init__(self, service: RecService) -> None:
        cfg = service.cfg
        max_k = cfg.max_k
        self.EventsIn, self.ItemsIn, self.RecommendIn = bounded_requests(
            sorted(cfg.online.event_weights), max_k, cfg.max_events_per_request, cfg.max_items_per_request)
        self.K = Annotated[int, Query(ge=1, le=max_k, description=f"number of items, 1..{max_k}")]
        self.Filters = Annotated[str | None, Query(max_length=1000, description="e.g. genres:Comedy;year>=1990")]
        self.UserId = Annotated[str, Path(max_length=MAX_ID_CHARS, description="a user id")]
        self.ItemId = Annotated[str, Path(max_length=MAX_ID_CHARS, description="an item id")]


def add_routes(router: FastAPI, service: RecService, metrics: ServeMetrics) -> None:
    """Add the API's routes over ``service`` to the app (see the module docstring).

    They go on the app itself, not through an included APIRouter, so that the access
    middleware finds each route and its ``x-role`` by matching the request's scope.
    """
    params = _Params(service)
    _add_recommend_routes(router, service, params)
    _add_write_routes(router, service, metrics, params)
    _add_admin_routes(router, service, metrics, params)


# Reads that are in-memory work (well under a millisecond) are `async def`: they run on the
# event loop without a thread-pool hop (an online user evicted from memory costs one indexed
# SQLite read there). Anything that can block longer -- SQLite writes (events, items, delete),
# model inference for text queries, retrain, profiles -- stays `def` (thread pool).
def _add_recommend_routes(router: FastAPI, service: RecService, p: _Params) -> None:
    K, Filters, UserId, ItemId, RecommendIn = p.K, p.Filters, p.UserId, p.ItemId, p.RecommendIn

    @router.get("/recommendations/{user_id}", response_model=RecommendationsOut, tags=["recommend"], **READ)
    async def recommend(user_id: UserId, k: K = 10, exclude_seen: bool = True, filters: Filters = None) -> dict[str, Any]:
        """Top-k items for a known user (trained or with online events); seen items excluded by default."""
        return service.recommend_user(user_id, k=k, exclude_seen=exclude_seen, filters=filters)

    @router.post("/recommendations", response_model=RecommendationsOut, tags=["recommend"], **BODY_READ)
    def recommend_anonymous(body: RecommendIn) -> dict[str, Any]:
        """Anonymous or new users: the items they touched, their attributes and/or a free-text query."""
        return service.recommend_anonymous([str(i) for i in body.items], body.text, body.k,
                                           body.exclude_seen, body.filters, attributes=body.attributes)

    @router.get("/items/{item_id}/similar", response_model=SimilarOut, tags=["items"], **READ)
    async def similar(item_id: ItemId, k: K = 10, filters: Filters = None) -> dict[str, Any]:
        """Items closest to this one in the model's item space (cosine)."""
        return service.similar(item_id, k=k, filters=filters)

    @router.get("/items/{item_id}", response_model=ItemProfileOut, tags=["items"], **READ)
    async def item_profile(item_id: ItemId) -> dict[str, Any]:
        """Item profile: attributes, popularity, modalities present, nearest items."""
        return service.item_profile(item_id)

    @router.get("/explain/{user_id}/{item_id}", response_model=ExplanationOut, tags=["explain"], **READ)
    def explain(user_id: UserId, item_id: ItemId) -> dict[str, Any]:
        """Why this item: modality contributions to the score and the past items that drove it."""
        return service.explain(user_id, item_id)

    @router.get("/users/{user_id}/profile", response_model=UserProfileOut, tags=["users"], **READ)
    def user_profile(user_id: UserId) -> dict[str, Any]:
        """Readable profile: top attributes, representative past items, how much each modality drives scores."""
        return service.user_profile(user_id)


def _add_write_routes(router: FastAPI, service: RecService, metrics: ServeMetrics, p: _Params) -> None:
    ItemsIn, EventsIn = p.ItemsIn, p.EventsIn

    @router.post("/items", response_model=ItemsOut, tags=["items"], **WRITE)
    def post_items(body: ItemsIn) -> dict[str, Any]:
        """Add or update items; they are encoded and indexed at once (no retraining)."""
        result = service.upsert_items([it.model_dump() for it in body.items])
        metrics.items.inc(len(body.items))
        return result

    @router.post("/events", response_model=EventsOut, tags=["events"], **WRITE)
    def post_events(body: EventsIn) -> dict[str, Any]:
        """Store a batch of events durably (acknowledged = on disk) and update the users' online vectors."""
        result = service.ingest([e.model_dump() for e in body.events])
        metrics.events.inc(result["accepted"])
        return result


def _add_admin_routes(router: FastAPI, service: RecService, metrics: ServeMetrics, p: _Params) -> None:
    UserId = p.UserId

    @router.delete("/users/{user_id}", response_model=ForgetOut, tags=["users"], **ADMIN)
    def forget_user(user_id: UserId) -> dict[str, Any]:
        """Forget a user: events, online state and older model versions removed; a retrain replaces the served one."""
        return service.forget_user(user_id)

    @router.post("/admin/retrain", status_code=202, response_model=RetrainStartedOut, tags=["admin"], **ADMIN)
    def retrain() -> dict[str, Any]:
        """Start a full retrain on the stored events (409 while one runs); the new version is swapped in."""
        started = service.retrain_in_background()
        return {"started": started, "status": service.retrain_status}

    @router.get("/admin/retrain", response_model=RetrainStatusOut, tags=["admin"], **ADMIN)
    def retrain_status() -> dict[str, Any]:
        """Whether a retrain is running, and the last one's outcome."""
        return {**service.retrain_status, "served_version": service.state.version_name}

    @router.get("/health", response_model=HealthOut, tags=["ops"])
    async def health() -> dict[str, Any]:
        """Liveness and a summary of what is served (public; no filesystem paths)."""
        return service.health()

    # errors stay JSON like everywhere else; only the 200 answer is Prometheus text
    @router.get("/metrics", response_model=None, tags=["ops"], openapi_extra={"x-role": "read"},
                responses={200: {"description": "Prometheus text format",
                                 "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
                           **_errors(*KEYED)})
    def prometheus() -> PlainTextResponse:
        """Prometheus text format: request counts, latencies, index size, events ingested."""
        return PlainTextResponse(generate_latest(metrics.registry).decode(), media_type=CONTENT_TYPE_LATEST)
