"""The three reads the web page needs and the API lacks: user lookup, a user's recent items, item images.

Everything else the page shows comes from the public API (``/recommendations``,
``/explain``, ``/items``, ``/events``). These routes sit under ``/ui/api``, need the
``read`` role like the API's reads, and stay out of the OpenAPI schema (they serve
the page, not integrations).
"""
from __future__ import annotations

import functools
import io
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from fastapi import FastAPI, Query
from fastapi.params import Depends
from fastapi.responses import Response

from fusionrec.serve.security import PathEscapeError, resolve_media_path
from fusionrec.serve.service import RecService, ServeError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
# the role the API's own reads declare (fusionrec.serve.access reads it from each route)
READ_ROLE = {"openapi_extra": {"x-role": "read"}}


class _RecentIndex:
    """Per served state: each user's training positives, newest first (built once per state)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: Any = None
        self._order: sp.csr_matrix | None = None
        self._degree: np.ndarray | None = None
        self._ids: np.ndarray | None = None

    def get(self, state: Any) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """(latest-timestamp matrix, training items per user, user ids as a numpy string array)."""
        with self._lock:
            if self._state is not state:  # a retrain swapped the state: rebuild for the new one
                self._order, self._degree = _build_recent(state)
                self._ids = np.asarray(state.user_ids, dtype=str)
                self._state = state
            return self._order, self._degree, self._ids


def _build_recent(state: Any) -> tuple[sp.csr_matrix, np.ndarray]:
    """A user x item matrix of the latest training timestamp (row position when there is none), seen items only."""
    seen = state.seen.tocsr()
    frame = state.dataset.interactions
    if "split" in frame and frame["split"].notna().all():
        frame = frame[frame["split"] == "train"]
    ts = frame["timestamp"].to_numpy(np.float64) if "timestamp" in frame else np.full(len(frame), np.nan)
    # no timestamps: the log's own order stands for time (later rows are more recent)
    rank = np.where(np.isnan(ts), np.arange(len(frame), dtype=np.float64), ts)
    users = frame["user"].to_numpy(np.int64)
    items = frame["item"].to_numpy(np.int64)
    # an item met several times counts at its latest meeting
    order = np.argsort(rank, kind="stable")[::-1]
    _, first = np.unique(users[order] * seen.shape[1] + items[order], return_index=True)
    keep = order[first]
    latest = sp.csr_matrix((rank[keep] + 1.0, (users[keep], items[keep])), shape=seen.shape)
    latest = latest.multiply(seen > 0).tocsr()  # training positives only (negative feedback is not 'seen')
    return latest, np.diff(seen.indptr)


def _image_mime(data: bytes) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return Image.MIME.get(im.format or "", "application/octet-stream")
    except (UnidentifiedImageError, OSError):
        return "application/octet-stream"


def _posted_image(db: Path, item_id: str) -> bytes | None:
    """The image bytes ``POST /items`` stored for ``item_id`` (read-only connection; the store is WAL)."""
    if not db.is_file():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT image FROM items WHERE item_id = ?", (item_id,)).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return bytes(row[0]) if row and row[0] else None


def _catalogue_image(service: RecService, state: Any, row: int) -> bytes | None:
    """The file the item table names in ``image_path``, resolved inside the media root or the dataset root."""
    frame = state.catalogue.frame
    if "image_path" not in frame.columns or row >= len(frame):
        return None
    value = frame["image_path"].iloc[row]
    if not isinstance(value, str) or not value.strip():
        return None
    roots = [r for r in (service.media_root, state.dataset.root) if r is not None]
    for root in roots:
        try:
            path = resolve_media_path(root, value)
        except (PathEscapeError, FileNotFoundError, OSError):
            continue
        if path.stat().st_size <= MAX_IMAGE_BYTES:
            return path.read_bytes()
    return None


def add_ui_routes(app: FastAPI, service: RecService, reads: list[Depends] | None = None) -> None:
    """Routes under ``/ui/api``, each declaring the ``read`` role like the API's reads.

    The service's access middleware enforces the ``x-role`` of the route a request
    matches; it sees only routes on the app itself (an included ``APIRouter`` is one
    opaque entry in this FastAPI), so they go straight onto ``app``. ``reads`` adds
    per-route dependencies for an app that checks keys per route instead.
    """
    get = functools.partial(app.get, include_in_schema=False, dependencies=list(reads or []), **READ_ROLE)
    recent_index = _RecentIndex()

    @get("/ui/api/users")
    async def users(q: str = Query("", max_length=256), limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
        """Users whose id starts with ``q`` (most active first), for the page's user picker."""
        state = service.state
        _, degree, ids = recent_index.get(state)
        rows = np.flatnonzero(np.char.startswith(ids, q)) if q else np.arange(len(ids))
        top = rows[np.argsort(-degree[rows], kind="stable")[:limit]]
        out = [{"user_id": str(ids[j]), "n_items": int(degree[j])} for j in top.tolist()]
        if q and service.online.has(q) and all(u["user_id"] != q for u in out):
            out.insert(0, {"user_id": q, "n_items": len(service.online.history(q))})
        return {"users": out, "n_users": len(ids)}

    @get("/ui/api/users/{user_id}/recent")
    async def recent(user_id: str, limit: int = Query(12, ge=1, le=200)) -> dict[str, Any]:
        """The user's latest items: events posted to this server first, then training history, newest first."""
        state = service.state
        cat = state.catalogue
        base = service._base_user(state, user_id)  # the service's rule: None for a forgotten user
        online = service.online.history(user_id)
        if base is None and not online:
            raise ServeError(404, "user_id", f"unknown user {user_id!r}", "pick a user from the list")
        out: list[dict[str, Any]] = []
        listed: set[str] = set()
        for ev in sorted(online, key=lambda e: -e.seq):
            if ev.item not in listed and ev.item in cat.index_of:
                listed.add(ev.item)
                out.append({"item_id": ev.item, "title": cat.title(cat.index_of[ev.item]), "source": "online"})
        if base is not None:
            latest, _, _ = recent_index.get(state)
            lo, hi = latest.indptr[base], latest.indptr[base + 1]
            cols, when = latest.indices[lo:hi], latest.data[lo:hi]
            for r in cols[np.argsort(-when, kind="stable")].tolist():
                item = cat.item_ids[r]
                if item not in listed:
                    listed.add(item)
                    out.append({"item_id": item, "title": cat.title(r), "source": "trained"})
        return {"user_id": user_id, "items": out[:limit], "n_history": len(listed)}

    @get("/ui/api/items/{item_id}/image")
    def image(item_id: str) -> Response:
        """The item's image: a posted upload, else the catalogue's file; 204 when it has none."""
        state = service.state
        row = state.catalogue.index_of.get(item_id)
        if row is None:
            raise ServeError(404, "item_id", f"unknown item {item_id!r}")
        data = _posted_image(service.store.path, item_id) or _catalogue_image(service, state, row)
        if data is None:
            # the item exists and has no picture: 204, not an error (the page then draws a placeholder)
            return Response(status_code=204)
        return Response(data, media_type=_image_mime(data), headers={"Cache-Control": "private, max-age=300"})

