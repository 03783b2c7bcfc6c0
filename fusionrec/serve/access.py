"""Who may call what, checked before the request body is read.

Every route declares the role it needs in its OpenAPI ``x-role`` (``read``, ``write``,
``admin``; none: public). :class:`AccessMiddleware` sits in front of the body-size limit
and the framework, so a request without a valid key is answered 401/403/429 before a byte
of its body is read or parsed. Each key spends from its own token bucket per kind of endpoint
(read/write/admin, at that kind's rate);
wrong keys spend from a bucket per client address, so guessing is throttled; public reads
(``public_reads: true``) spend from a bucket per address.
"""
from __future__ import annotations

import json
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from fusionrec.serve.config import ServeConfig
from fusionrec.serve.ratelimit import RateLimiter, retry_after
from fusionrec.serve.security import ROLE_RANK, KeyChecker, key_digest

API_KEY_HEADER = "X-API-Key"
_HEADER = API_KEY_HEADER.lower().encode()


def required_role(app: Any, scope: Scope) -> str | None:
    """The ``x-role`` of the route ``scope`` fully matches (None: public, unknown path, wrong method)."""
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            extra = getattr(route, "openapi_extra", None) or {}
            return extra.get("x-role")
    return None


async def send_json(send: Send, status: int, payload: dict[str, Any],
                    headers: dict[str, str] | None = None) -> None:
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


Refusal = tuple[int, dict[str, Any], dict[str, str]]


class AccessPolicy:
    """Keys, roles and the rate-limit buckets; :meth:`check` decides one request."""

    def __init__(self, keys: KeyChecker, cfg: ServeConfig) -> None:
        self.keys = keys
        self.public_reads = cfg.public_reads and not cfg.require_key_for_reads
        lim = cfg.rate_limits
        self.by_role = {role: RateLimiter(getattr(lim, role), lim.burst_seconds) for role in ROLE_RANK}
        self.anonymous = RateLimiter(lim.anonymous, lim.burst_seconds)
        self.failed = RateLimiter(lim.failed_auth, lim.burst_seconds)

    def check(self, scope: Scope, need: str) -> Refusal | None:
        """None when the request may go on, else ``(status, body, headers)`` of its refusal."""
        presented = None
        for name, value in scope.get("headers", []):
            if name == _HEADER:
                presented = value.decode("latin-1")
                break
        address = (scope.get("client") or ("-",))[0]
        role = self.keys.role_of(presented) if presented else None
        fix = f"send a key with the {need} role (or higher) in the {API_KEY_HEADER} header"
        if role is None:
            if presented is not None:
                wait = self.failed.take(address)
                if wait:
                    return self._too_many(wait, "too many requests with a wrong API key from this address")
                return 401, {"error": "invalid API key", "field": API_KEY_HEADER, "fix": fix}, {}
            if need == "read" and self.public_reads:
                wait = self.anonymous.take(address)
                return self._too_many(wait, "too many requests from this address") if wait else None
            return 401, {"error": f"missing API key (this endpoint needs the {need} role)",
                         "field": API_KEY_HEADER, "fix": fix}, {}
        if ROLE_RANK[role] < ROLE_RANK[need]:
            return 403, {"error": f"this key has the {role} role; the endpoint needs {need}",
                         "field": API_KEY_HEADER, "fix": fix}, {}
        # one bucket per key and kind of endpoint, at that kind's rate: an admin key reading is
        # limited like a read key, and admin operations stay at the admin rate whoever sends them
        limiter = self.by_role[need]
        wait = limiter.take(key_digest(presented))
        if wait:
            return self._too_many(wait, f"rate limit of this key for {need} endpoints "
                                        f"({limiter.rate:g} requests/s) reached")
        return None

    @staticmethod
    def _too_many(wait: float, message: str) -> Refusal:
        after = retry_after(wait)
        return 429, {"error": message, "field": None, "fix": f"retry after {after} s"}, {"Retry-After": after}


class AccessMiddleware:
    """Applies the :class:`AccessPolicy` to every request of a keyed route, before its body is read."""

    def __init__(self, app: ASGIApp, fastapi_app: Any, policy: AccessPolicy) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        need = required_role(self.fastapi_app, scope)
        refusal = self.policy.check(scope, need) if need is not None else None
        if refusal is not None:
            status, payload, headers = refusal
            await send_json(send, status, payload, headers)
            return
        await self.app(scope, receive, send)
