"""The recommendation service: every endpoint's logic, independent of HTTP.

:class:`RecService` owns the current :class:`~fusionrec.serve.state.ServiceState`
(swapped atomically on retrain), the durable :class:`~fusionrec.serve.store.EventStore`,
the :class:`~fusionrec.serve.online.OnlineState` and an optional content encoder. Its
endpoints live in one module each and are mixed in here:

* :mod:`~fusionrec.serve.recommend` -- recommendations and similar items;
* :mod:`~fusionrec.serve.ingest` -- events;
* :mod:`~fusionrec.serve.items` -- item upserts (typed, bounded, encoded);
* :mod:`~fusionrec.serve.explain` -- explanations and profiles;
* :mod:`~fusionrec.serve.privacy` -- forgetting users;
* :mod:`~fusionrec.serve.lifecycle` -- retrains (one at a time) and version clean-up.

Methods return plain JSON-ready dicts and raise :class:`ServeError` (status,
field, message, fix) for anything the caller got wrong; the FastAPI layer in
:mod:`fusionrec.serve.app` only translates.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.serve.config import ServeConfig
from fusionrec.serve.content import ContentEncoder
from fusionrec.serve.errors import ServeError
from fusionrec.serve.explain import ExplainMixin
from fusionrec.serve.index import SearchStats
from fusionrec.serve.ingest import IngestMixin
from fusionrec.serve.items import ItemsMixin
from fusionrec.serve.lifecycle import RetrainMixin
from fusionrec.serve.online import OnlineEvent, OnlineState
from fusionrec.serve.privacy import PrivacyMixin
from fusionrec.serve.recommend import RecommendMixin
from fusionrec.serve.state import FilterError, ServiceState
from fusionrec.serve.store import EventStore
from fusionrec.serve.versions import ModelVersions

__all__ = ["RecService", "RetrainFn", "ServeError"]

log = logging.getLogger("fusionrec.serve")

# A retrain function gets the service (to read the merged training data) and returns a new state.
RetrainFn = Callable[["RecService"], ServiceState]


class RecService(RecommendMixin, IngestMixin, ItemsMixin, ExplainMixin, PrivacyMixin, RetrainMixin):
    """See the module docstring. Thread-safe: FastAPI calls it from its worker threads."""

    def __init__(self, state: ServiceState, store: EventStore, cfg: ServeConfig,
                 encoder: ContentEncoder | None = None, media_root: str | Path | None = None,
                 retrain_fn: RetrainFn | None = None, versions: ModelVersions | None = None,
                 base_fingerprint: str | None = None, retrained_available: str | None = None) -> None:
        self._state = state
        self.store = store
        self.cfg = cfg
        self.encoder = encoder
        self.media_root = Path(media_root).resolve() if media_root else None
        self.upload_dir = store.path.parent / (store.path.stem + "-media")
        self.retrain_fn = retrain_fn
        self.versions = versions
        self.base_fingerprint = base_fingerprint
        self.retrained_available = retrained_available
        self.online = OnlineState(cfg.online, cfg.max_online_users, loader=self._load_online)
        self.forgotten: dict[str, int] = store.forgotten_users()   # salted user hash -> forgotten_seq
        self._write_lock = threading.Lock()   # orders event/item writes against a state swap
        self._init_retrain()
        self.started = time.time()
        self._replay(state.trained_upto_seq)

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> ServiceState:
        """The current snapshot; read it once per request and use that object throughout."""
        return self._state

    def _replay(self, after_seq: int) -> None:
        """Rebuild online state from stored events newer than the model (after a restart); the
        online LRU keeps the most recent users, the others are read back on demand."""
        for ev in self.store.events(after_seq=after_seq):
            self.online.add(ev.user, OnlineEvent(ev.item, ev.weight, ev.seq, ev.ts))

    def _load_online(self, user: str) -> list[OnlineEvent]:
        """An evicted user's online events, read back from the store."""
        return [OnlineEvent(ev.item, ev.weight, ev.seq, ev.ts)
                for ev in self.store.events(after_seq=self._state.trained_upto_seq, user=user)]

    def swap(self, new_state: ServiceState) -> None:
        """Make ``new_state`` current. Items posted while it was being built are applied first."""
        with self._write_lock:
            known = set(new_state.catalogue.index_of)
            for item in self.store.items():
                if item.item_id not in known:
                    new_state.upsert_item(item)
            new_state.version = self._state.version + 1
            self._state = new_state  # one reference assignment: atomic for every reader
            self.online.drop_upto(new_state.trained_upto_seq)
            self.retrained_available = None

    def close(self) -> None:
        """Shut down cleanly: no new pending retrain, store checkpointed and closed (WAL removed)."""
        self._closing = True
        sync = getattr(self, "replica_sync", None)
        if sync is not None:
            sync.stop()
        self.store.close()

    # ------------------------------------------------------------------ helpers
    def _check_k(self, k: int) -> int:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k > self.cfg.max_k:
            raise ServeError(422, "k", f"k must be an integer in [1, {self.cfg.max_k}], got {k!r}")
        return k

    def _item_row(self, state: ServiceState, item_id: str, field: str = "item_id") -> int:
        row = state.catalogue.index_of.get(str(item_id))
        if row is None:
            raise ServeError(404, field, f"unknown item {item_id!r}",
                             "use an id from the catalogue, or add the item with POST /items")
        return row

    def _base_user(self, state: ServiceState, user_id: str) -> int | None:
        row = state.user_index.get(user_id)
        if row is None or not self.forgotten:
            return row
        seq = self.forgotten.get(self.store.user_hash(user_id))
        if seq is not None and state.trained_upto_seq < seq:
            return None  # trained before the user was forgotten: that vector is never used again
        return row

    def _require_ip(self, state: ServiceState, what: str) -> None:
        if not state.inner_product:
            raise ServeError(422, "model", f"{what} needs a model that scores by inner product "
                             f"(user_embeddings/item_embeddings); {type(state.model).__name__} does not",
                             "serve an embedding model such as bpr or lightgcn")

    def _user_vector(self, state: ServiceState, user_id: str) -> tuple[np.ndarray | None, str]:
        base_row = self._base_user(state, user_id)
        base = state.user_vectors[base_row] if base_row is not None and state.user_vectors is not None else None
        events = self.online.history(user_id)
        if callable(getattr(state.model, "history_vector", None)):
            # a sequential model encodes the training history with the online events appended in
            # order: the next recommendation changes through the model, not an average of item vectors
            rows = [state.catalogue.index_of.get(e.item) for e in events]
            vec = state.model.history_vector(base_row, rows)
            return vec, "trained" if not events else ("online" if base_row is None else "trained+online")
        agg = None
        if events and state.item_vectors is not None:
            rows = [state.catalogue.index_of.get(e.item) for e in events]
            agg = self.online.aggregate(events, rows, state.item_vectors)
        vec = self.online.blend(base, agg, len(events))
        source = "trained" if agg is None else ("online" if base is None else "trained+online")
        return vec, source

    def _seen_rows(self, state: ServiceState, user_id: str) -> np.ndarray:
        rows: list[int] = []
        base_row = self._base_user(state, user_id)
        if base_row is not None:
            seen = state.seen
            rows.extend(seen.indices[seen.indptr[base_row]:seen.indptr[base_row + 1]].tolist())
        for item in self.online.seen(user_id):
            r = state.catalogue.index_of.get(item)
            if r is not None:
                rows.append(r)
        return np.asarray(sorted(set(rows)), dtype=np.int64)

    def _filters(self, state: ServiceState, filters: str | None) -> np.ndarray | None:
        try:
            return state.filter_mask(filters)
        except FilterError as err:
            raise ServeError(422, "filters", str(err), "write clauses like genres:Comedy;year>=1990") from err

    def _items_out(self, state: ServiceState, rows: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        cat = state.catalogue
        out = []
        for r, s in zip(rows.tolist(), scores.tolist()):
            entry: dict[str, Any] = {"item_id": cat.item_ids[r], "score": round(float(s), 6)}
            title = cat.title(r)
            if title:
                entry["title"] = title
            entry["cold"] = bool(cat.cold[r])
            out.append(entry)
        return out

    def _rank(self, state: ServiceState, query: np.ndarray, k: int, allowed: np.ndarray | None,
              exclude: np.ndarray, index_name: str = "index") -> tuple[np.ndarray, np.ndarray, SearchStats]:
        stats = SearchStats()
        index = getattr(state, index_name)
        rows, scores = index.search(query, k, allowed=allowed, exclude=exclude, stats=stats)
        return rows, scores, stats

    # ------------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        """What is served, without filesystem paths (the response is public)."""
        state = self.state
        return {
            "status": "ok", "model": type(state.model).__name__, "model_version": state.version,
            "served_version": state.version_name, "retrained_available": self.retrained_available,
            "n_users": len(state.user_ids), "n_items": state.catalogue.n_items,
            "index": state.index.kind if state.index is not None else "model-scores",
            "online_users": self.online.users(), "events_ingested": self.online.n_ingested,
            "content_encoder": self.encoder.modalities if self.encoder else [],
            "content_map_r2": round(state.content_map.fit_r2, 4) if state.content_map else None,
            "new_items_placed_by": state.placement,
            "retrain": {**self.retrain_status, "served_version": state.version_name},
            "uptime_seconds": round(time.time() - self.started, 1),
        }
