"""HTTP layer: the FastAPI app over :class:`~fusionrec.serve.service.RecService`.

Requests pass, outermost first: metrics, ``OPTIONS`` (204 with ``Allow``), access (key, role,
rate limit: 401/403/429 before any body is read), the body-size limit (413 on the declared
length *and* on the bytes received), then the routes of :mod:`fusionrec.serve.routes`.
Every error is JSON ``{"error", "field", "fix"?}`` with a 4xx status: pydantic validation
problems are 422 naming the field, malformed JSON is 400, unknown ids 404. A handler for any
other exception still answers JSON 500 -- the tests and the schemathesis run check it never fires.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fusionrec.serve.access import API_KEY_HEADER, AccessMiddleware, AccessPolicy
from fusionrec.serve.errors import ServeError
from fusionrec.serve.metrics import ServeMetrics
from fusionrec.serve.middleware import (
    BodyLimitMiddleware,
    MetricsMiddleware,
    OptionsMiddleware,
)
from fusionrec.serve.routes import add_routes
from fusionrec.serve.security import KeyChecker
from fusionrec.serve.service import RecService

log = logging.getLogger("fusionrec.serve")

DESCRIPTION = (
    "Real-time multimodal recommendations: per-user and anonymous recommendations, similar items, online "
    "events, content cold start for new items, explanations and profiles. Endpoints need the "
    f"`{API_KEY_HEADER}` header with a key whose role (`x-role` of each operation: read < write < admin) "
    "covers them; reads are public only when the server runs with `public_reads`."
)


def create_app(service: RecService, keys: KeyChecker) -> FastAPI:
    """The FastAPI app for ``service``; ``keys`` maps API keys to roles (see :mod:`fusionrec.serve.security`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # shutdown (SIGTERM under uvicorn): checkpoint and close the store, so no WAL is left behind
        service.close()

    app = FastAPI(title="fusionrec recommendation service", version="1.0", description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.service = service
    metrics = ServeMetrics(service)
    add_routes(app, service, metrics)
    install_error_handlers(app)
    policy = AccessPolicy(keys, service.cfg)
    # add_middleware puts each one outside the previous: the last added runs first
    app.add_middleware(BodyLimitMiddleware, limit=service.cfg.max_body_bytes)
    app.add_middleware(AccessMiddleware, fastapi_app=app, policy=policy)
    app.add_middleware(OptionsMiddleware, fastapi_app=app)
    app.add_middleware(MetricsMiddleware, requests=metrics.requests, latency=metrics.latency)
    app.openapi = lambda: openapi_with_security(app)  # type: ignore[method-assign]

    # the /ui web page and /docs, /redoc from local assets
    from fusionrec.serve.ui import mount_ui

    mount_ui(app, service)  # its routes declare x-role: read, enforced by AccessMiddleware like the API's
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Every error as JSON ``{"error", "field", "fix"?}``."""

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, err: ServeError) -> JSONResponse:
        return JSONResponse(err.as_dict(), status_code=err.status, headers=err.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        errors = err.errors()
        first = errors[0] if errors else {}
        field = ".".join(str(p) for p in first.get("loc", ())) or "body"
        status = 400 if first.get("type") == "json_invalid" else 422
        details = [{"field": ".".join(str(p) for p in e.get("loc", ())), "error": e.get("msg", "")}
                   for e in errors[:20]]
        return JSONResponse({"error": f"{field}: {first.get('msg', 'invalid request')}", "field": field,
                             "details": details}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        fix = "see /docs for the endpoints and their methods"
        return JSONResponse({"error": str(err.detail), "field": "path", "fix": fix}, status_code=err.status_code,
                            headers=err.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(err).__name__})", "field": None}, status_code=500)


def openapi_with_security(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec plus the API-key scheme on every operation that declares a role."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    spec.setdefault("components", {})["securitySchemes"] = {
        "APIKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
                   "description": "a key with the operation's role (x-role): read < write < admin"}}
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            if isinstance(op, dict) and op.get("x-role"):
                op["security"] = [{"APIKey": []}]
    app.openapi_schema = spec
    return spec
