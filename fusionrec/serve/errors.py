"""The one error type of the service: an HTTP status, the offending field, what is wrong and how to fix it."""
from __future__ import annotations

from typing import Any


class ServeError(Exception):
    """A request the service cannot answer: HTTP ``status``, the offending ``field``, and a fix.

    ``headers`` carries response headers the status needs (``Retry-After`` on 429).
    """

    def __init__(self, status: int, field: str | None, message: str, fix: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message
        self.fix = fix
        self.headers = headers or {}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "field": self.field}
        if self.fix:
            out["fix"] = self.fix
        return out
