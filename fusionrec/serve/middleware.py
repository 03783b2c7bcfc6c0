"""ASGI middleware of the service: body size limit, OPTIONS with ``Allow``, request metrics."""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fusionrec.serve.access import send_json


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
                    await send_json(send, 413 if declared > self.limit else 400, {
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
                await send_json(send, 413, {"error": f"request body over {self.limit} bytes", "field": "body",
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


class OptionsMiddleware:
    """``OPTIONS /path`` answers 204 with ``Allow`` listing the path's methods (404 for an unknown path)."""

    def __init__(self, app: ASGIApp, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        methods: set[str] = set()
        for route in self.fastapi_app.router.routes:
            match, _ = route.matches(scope)
            if match != Match.NONE and getattr(route, "methods", None):
                methods |= set(route.methods)
        if not methods:
            await send_json(send, 404, {"error": f"no endpoint at {scope['path']!r}", "field": "path",
                                        "fix": "see /docs for the endpoints"})
            return
        allow = ", ".join(sorted(methods | {"OPTIONS"}))
        await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", allow.encode())]})
        await send({"type": "http.response.body", "body": b""})


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
