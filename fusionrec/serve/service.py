"""The recommendation service: every endpoint's logic, independent of HTTP.

:class:`RecService` owns the current :class:`~fusionrec.serve.state.ServiceState`
(swapped atomically on retrain), the durable :class:`~fusionrec.serve.store.EventStore`,
the :class:`~fusionrec.serve.online.OnlineState` and an optional content encoder.
Methods return plain JSON-ready dicts and raise :class:`ServeError` (status,
field, message, fix) for anything the caller got wrong; the FastAPI layer in
:mod:`fusionrec.serve.app` only translates.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fusionrec.data.roles import split_list
from fusionrec.data.validation.items import join_text
from fusionrec.serve.config import ServeConfig
from fusionrec.serve.content import ContentEncoder, ContentEncodingError
from fusionrec.serve.index import SearchStats
from fusionrec.serve.online import OnlineEvent, OnlineState
from fusionrec.serve.security import PathEscapeError, resolve_media_path
from fusionrec.serve.state import FilterError, ServiceState
from fusionrec.serve.store import EventStore, StoredItem

log = logging.getLogger("fusionrec.serve")

# A retrain function gets the service (to read the merged training data) and returns a new state.
RetrainFn = Callable[["RecService"], ServiceState]


class ServeError(Exception):
    """A request the service cannot answer: HTTP ``status``, the offending ``field``, and a fix."""

    def __init__(self, status: int, field: str, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message
        self.fix = fix

    def as_dict(self) -> dict[str, Any]:
        out = {"error": self.message, "field": self.field}
        if self.fix:
            out["fix"] = self.fix
        return out


class RecService:
    """See the module docstring. Thread-safe: FastAPI calls it from its worker threads."""

    def __init__(self, state: ServiceState, store: EventStore, cfg: ServeConfig,
                 encoder: ContentEncoder | None = None, media_root: str | Path | None = None,
                 retrain_fn: RetrainFn | None = None) -> None:
        self._state = state
        self.store = store
        self.cfg = cfg
        self.encoder = encoder
        self.media_root = Path(media_root).resolve() if media_root else None
        self.upload_dir = store.path.parent / (store.path.stem + "-media")
        self.retrain_fn = retrain_fn
        self.online = OnlineState(cfg.online)
        self.forgotten: set[str] = store.forgotten_users()
        self._write_lock = threading.Lock()   # orders event/item writes against a state swap
        self._retrain_lock = threading.Lock()
        self.retrain_status: dict[str, Any] = {"running": False, "last": None, "error": None, "count": 0}
        self.started = time.time()
        self._replay(state.trained_upto_seq)

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> ServiceState:
        """The current snapshot; read it once per request and use that object throughout."""
        return self._state

    def _replay(self, after_seq: int) -> None:
        """Rebuild online state from stored events newer than the model (after a restart)."""
        for ev in self.store.events(after_seq=after_seq):
            self.online.add(ev.user, OnlineEvent(ev.item, ev.weight, ev.seq, ev.ts))

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
        if user_id in self.forgotten:
            return None  # the trained vector of a forgotten user is never used again
        return state.user_index.get(user_id)

    def _require_ip(self, state: ServiceState, what: str) -> None:
        if not state.inner_product:
            raise ServeError(422, "model", f"{what} needs a model that scores by inner product "
                             f"(user_embeddings/item_embeddings); {type(state.model).__name__} does not",
                             "serve an embedding model such as bpr or lightgcn")

    def _user_vector(self, state: ServiceState, user_id: str) -> tuple[np.ndarray | None, str]:
        base_row = self._base_user(state, user_id)
        base = state.user_vectors[base_row] if base_row is not None and state.user_vectors is not None else None
        events = self.online.history(user_id)
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
            if cat.cold[r]:
                entry["cold"] = True
            out.append(entry)
        return out

    def _rank(self, state: ServiceState, query: np.ndarray, k: int, allowed: np.ndarray | None,
              exclude: np.ndarray, index_name: str = "index") -> tuple[np.ndarray, np.ndarray, SearchStats]:
        stats = SearchStats()
        index = getattr(state, index_name)
        rows, scores = index.search(query, k, allowed=allowed, exclude=exclude, stats=stats)
        return rows, scores, stats

    # ------------------------------------------------------------------ recommendations
    def recommend_user(self, user_id: str, k: int = 10, exclude_seen: bool = True,
                       filters: str | None = None) -> dict[str, Any]:
        k = self._check_k(k)
        state = self.state
        user_id = str(user_id)
        base_row = self._base_user(state, user_id)
        if base_row is None and not self.online.has(user_id):
            raise ServeError(404, "user_id", f"unknown user {user_id!r}",
                             "post events for this user first (POST /events), or use POST /recommendations "
                             "with the items they touched")
        allowed = self._filters(state, filters)
        exclude = self._seen_rows(state, user_id) if exclude_seen else np.zeros(0, np.int64)
        if state.inner_product:
            query, source = self._user_vector(state, user_id)
            if query is None:  # only online events about items that are no longer served
                raise ServeError(404, "user_id", f"user {user_id!r} has no usable history",
                                 "post events about catalogue items, or use POST /recommendations")
            rows, scores, stats = self._rank(state, query, k, allowed, exclude)
            path = stats.path
        else:
            if base_row is None:
                raise ServeError(404, "user_id", f"user {user_id!r} has no trained history and "
                                 f"{type(state.model).__name__} cannot fold in online events",
                                 "serve an embedding model (bpr, lightgcn) for online users")
            rows, scores = self._score_with_model(state, base_row, k, allowed, exclude)
            source, path = "trained", "model"
        return {"user_id": user_id, "k": k, "items": self._items_out(state, rows, scores),
                "user_state": source, "search": path, "model_version": state.version}

    def _score_with_model(self, state: ServiceState, base_row: int, k: int, allowed: np.ndarray | None,
                          exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Non-embedding models (pop, itemknn): full_sort_predict, then mask and top-k."""
        with torch.no_grad():
            scores = state.model.full_sort_predict(torch.tensor([base_row])).cpu().numpy()[0].astype(np.float64)
        n = state.catalogue.n_items
        full = np.full(n, -np.inf)
        full[: scores.shape[0]] = scores  # posted items have no score from such a model
        if allowed is not None:
            full[~allowed[:n]] = -np.inf
        full[exclude] = -np.inf
        valid = np.flatnonzero(np.isfinite(full))
        order = valid[np.argsort(-full[valid], kind="stable")][:k]
        return order, full[order]

    def recommend_anonymous(self, items: list[str] | None = None, text: str | None = None, k: int = 10,
                            exclude_seen: bool = True, filters: str | None = None) -> dict[str, Any]:
        """For anonymous/new users: the items they touched and/or a free-text query."""
        k = self._check_k(k)
        state = self.state
        self._require_ip(state, "anonymous recommendations")
        items = list(items or [])
        if not items and not (text and text.strip()):
            raise ServeError(422, "items", "send at least one item id in 'items' or a non-empty 'text' query")
        rows = [self._item_row(state, i, f"items[{n}]") for n, i in enumerate(items)]
        parts = []
        if rows:
            events = [OnlineEvent(str(i), 1.0, n, 0.0) for n, i in enumerate(items)]
            parts.append(self.online.aggregate(events, rows, state.item_vectors))
        if text and text.strip():
            parts.append(self._text_query_vector(state, text))
        query = parts[0] if len(parts) == 1 else _mean_direction(parts)
        allowed = self._filters(state, filters)
        exclude = np.asarray(rows, dtype=np.int64) if exclude_seen else np.zeros(0, np.int64)
        out_rows, scores, stats = self._rank(state, query, k, allowed, exclude)
        return {"k": k, "items": self._items_out(state, out_rows, scores), "search": stats.path,
                "model_version": state.version}

    def _text_query_vector(self, state: ServiceState, text: str) -> np.ndarray:
        if len(text) > 10_000:
            raise ServeError(422, "text", f"text query has {len(text)} characters; the limit is 10000")
        if self.encoder is None or state.placement is None:
            raise ServeError(422, "text", "free-text queries need a text encoder and a model served with "
                             "text features", "encode the catalogue (fusionrec encode) and serve with a text encoder")
        cols = [c for c in state.catalogue.frame.columns if str(c) in _DESCRIPTION_COLUMNS] or ["title"]
        vecs = self.encoder.encode_text(text, fields=[str(c) for c in cols])
        if not state.can_place(vecs):
            raise ServeError(422, "text", f"the model places items by {state.placement_modalities}, no text "
                             "modality, so a text query has no position", "serve a model trained with text features")
        return state.place(vecs)

    def similar(self, item_id: str, k: int = 10, filters: str | None = None) -> dict[str, Any]:
        k = self._check_k(k)
        state = self.state
        self._require_ip(state, "similar items")
        row = self._item_row(state, item_id)
        query = state.sim_index.vectors[row]
        allowed = self._filters(state, filters)
        rows, scores, stats = self._rank(state, query, k, allowed, np.array([row]), index_name="sim_index")
        return {"item_id": str(item_id), "k": k, "items": self._items_out(state, rows, scores),
                "metric": "cosine", "search": stats.path, "model_version": state.version}

    # ------------------------------------------------------------------ events
    def ingest(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Validate the whole batch, store it durably in one transaction, then update online state."""
        if not events:
            raise ServeError(422, "events", "the batch is empty; send at least one event")
        if len(events) > self.cfg.max_events_per_request:
            raise ServeError(413, "events", f"{len(events)} events in one request; the limit is "
                             f"{self.cfg.max_events_per_request}", "split the batch")
        weights = self.cfg.online.event_weights
        state = self.state
        rows = []
        now = time.time()
        for n, ev in enumerate(events):
            user, item, typ = str(ev["user_id"]), str(ev["item_id"]), str(ev.get("type") or "click")
            if not user.strip() or len(user) > 256:
                raise ServeError(422, f"events[{n}].user_id", "user_id must be 1-256 characters")
            if item not in state.catalogue.index_of:
                raise ServeError(422, f"events[{n}].item_id", f"unknown item {item!r}",
                                 "add the item with POST /items before sending events about it")
            if typ not in weights:
                raise ServeError(422, f"events[{n}].type", f"unknown event type {typ!r}; allowed: {sorted(weights)}")
            ts = ev.get("timestamp")
            ts = now if ts is None else float(ts)
            if not math.isfinite(ts):
                raise ServeError(422, f"events[{n}].timestamp", "timestamp must be a finite number of seconds")
            event_id = ev.get("event_id")
            rows.append((None if event_id is None else str(event_id), user, item, typ, float(weights[typ]), ts))
        with self._write_lock:
            seqs = self.store.add_events(rows)  # durable (fsynced) before we answer
            for (event_id, user, item, typ, weight, ts), seq in zip(rows, seqs):
                self.online.add(user, OnlineEvent(item, weight, seq, ts))
        return {"accepted": len(rows), "seqs": seqs}

    # ------------------------------------------------------------------ items
    def upsert_items(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Encode, store and index items at once (content cold start)."""
        if not items:
            raise ServeError(422, "items", "send at least one item")
        if len(items) > self.cfg.max_items_per_request:
            raise ServeError(413, "items", f"{len(items)} items in one request; the limit is "
                             f"{self.cfg.max_items_per_request}", "split the batch")
        state = self.state
        if state.inner_product and state.placement is None:
            raise ServeError(409, "items", "this model was trained without content features, so posted items "
                             "cannot be placed in its item space", "encode the catalogue (fusionrec encode), "
                             "retrain with text/image modalities and serve that model")
        prepared: list[StoredItem] = []
        for n, it in enumerate(items):
            prepared.append(self._prepare_item(state, it, f"items[{n}]"))
        results = []
        with self._write_lock:
            self.store.upsert_items(prepared)
            state = self.state
            for it in prepared:
                row, created = state.upsert_item(it)
                results.append({"item_id": it.item_id, "created": created, "cold": bool(state.catalogue.cold[row])})
        return {"items": results, "n_items": self.state.catalogue.n_items}

    def _prepare_item(self, state: ServiceState, it: dict[str, Any], where: str) -> StoredItem:
        item_id = str(it["item_id"])
        if not item_id.strip() or len(item_id) > 256:
            raise ServeError(422, f"{where}.item_id", "item_id must be 1-256 characters")
        text = it.get("text")
        attributes = dict(it.get("attributes") or {})
        image_bytes = None
        image_file = None
        if it.get("image_base64"):
            try:
                image_bytes = base64.b64decode(it["image_base64"], validate=True)
            except (binascii.Error, ValueError) as err:
                raise ServeError(422, f"{where}.image_base64", f"not valid base64: {err}") from err
            image_file = self._save_upload(image_bytes)
        elif it.get("image_path"):
            try:
                image_file = resolve_media_path(self.media_root, str(it["image_path"]))
            except PathEscapeError as err:
                raise ServeError(422, f"{where}.image_path", str(err),
                                 "use a path relative to the media root, without '..' or links leading out") from err
            except FileNotFoundError as err:
                raise ServeError(422, f"{where}.image_path", str(err)) from err
            image_bytes = image_file.read_bytes()
        if image_bytes is not None:
            _check_image(image_bytes, f"{where}.image_base64" if it.get("image_base64") else f"{where}.image_path")
        audio_file = self._media_file(it.get("audio_path"), f"{where}.audio_path")
        features: dict[str, np.ndarray] = {}
        # attributes such as title/genres feed the text template too, so they count as content
        has_content = (bool(text and str(text).strip()) or image_file is not None or audio_file is not None
                       or any(isinstance(v, str) and v.strip() for v in attributes.values()))
        if has_content:
            if self.encoder is None:
                raise ServeError(409, where, "the server runs without a content encoder, so item text/images "
                                 "cannot be encoded", "start fusionrec serve with text/image encoders enabled")
            fields = self._item_fields(state, item_id, text, attributes, image_file)
            fields["audio_path"] = str(audio_file) if audio_file is not None else None
            try:
                features = self.encoder.encode_item(fields, None)
            except ContentEncodingError as err:
                kind = self.encoder.kinds().get(err.modality, "")
                field = {"image": f"{where}.image_base64" if it.get("image_base64") else f"{where}.image_path",
                         "audio": f"{where}.audio_path", "attribute": f"{where}.attributes"}.get(kind, f"{where}.text")
                raise ServeError(422, field, f"cannot encode {err.modality}: {err.reason}") from err
        row = state.catalogue.index_of.get(item_id)
        cold_target = row is None or bool(state.catalogue.cold[row])
        if state.inner_product and cold_target and not state.can_place(features):
            raise ServeError(422, where, f"item {item_id!r} has no content the model can use "
                             f"(needs one of {state.placement_modalities})",
                             "send 'text' and/or an image")
        return StoredItem(item_id, text, image_bytes, attributes, features)

    def _media_file(self, value: Any, field: str) -> Path | None:
        """A media file named by a posted item, checked to lie under the media root."""
        if not value:
            return None
        try:
            return resolve_media_path(self.media_root, str(value))
        except PathEscapeError as err:
            raise ServeError(422, field, str(err),
                             "use a path relative to the media root, without '..' or links leading out") from err
        except FileNotFoundError as err:
            raise ServeError(422, field, str(err), "upload the file under the media root first") from err

    def _item_fields(self, state: ServiceState, item_id: str, text: str | None, attributes: dict[str, Any],
                     image_file: Path | None) -> dict[str, Any]:
        """One row shaped like the catalogue's item table, so the encoders read it like a catalogue item."""
        fields: dict[str, Any] = {str(c): None for c in state.catalogue.frame.columns}
        fields.update({str(k): v for k, v in attributes.items()})
        if not text:
            # the description's text columns sent as attributes make the text, as in the catalogue
            described = [c for c in split_list(state.config.data.item_columns.get("text")) if c in attributes]
            text = join_text(pd.DataFrame([attributes]), described)[0] if described else None
            fields["text"] = text
        if text:
            for col in list(fields) + ["text"]:
                if col in _DESCRIPTION_COLUMNS and not fields.get(col):
                    fields[col] = text
            if not fields.get("title"):
                fields["title"] = attributes.get("title") or ""
        fields["image_path"] = str(image_file) if image_file is not None else None
        return fields

    def _save_upload(self, data: bytes) -> Path:
        """Uploaded image bytes go to a server-owned folder, named by content hash (never by the client)."""
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        path = self.upload_dir / (hashlib.sha256(data).hexdigest()[:32] + ".img")
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path

    # ------------------------------------------------------------------ explanations
    def explain(self, user_id: str, item_id: str) -> dict[str, Any]:
        state = self.state
        self._require_ip(state, "explanations")
        user_id = str(user_id)
        if self._base_user(state, user_id) is None and not self.online.has(user_id):
            raise ServeError(404, "user_id", f"unknown user {user_id!r}")
        row = self._item_row(state, item_id)
        query, source = self._user_vector(state, user_id)
        item_vec = state.item_vectors[row]
        score = float(query @ item_vec)
        return {
            "user_id": user_id, "item_id": str(item_id), "score": round(score, 6), "user_state": source,
            "modality_contributions": self._modality_contributions(state, query, row),
            "because_of": self._driving_items(state, user_id, row),
            "model_version": state.version,
        }

    def _modality_contributions(self, state: ServiceState, query: np.ndarray, row: int) -> dict[str, Any]:
        """Split ``u . e_i`` into content parts (via the linear content map) and a collaborative remainder.

        The map gives ``e_i ~ sum_m W_m x_m + b``; each part's inner product with the
        user vector is that modality's contribution and ``u . (e_i - sum)`` is what the
        ids learned beyond content (all of a posted item's score is content).
        """
        cat = state.catalogue
        item_vec = state.item_vectors[row]
        score = float(query @ item_vec)
        cmap = state.content_map
        model_hook = getattr(state.model, "modality_weights", None)
        out: dict[str, Any] = {"score": round(score, 6), "method": "none"}
        if cmap is None:
            out["collaborative"] = round(score, 6)
            return out
        vecs = {n: cat.features[n][row] for n in cmap.modalities if cat.masks[n][row]}
        parts = cmap.parts(vecs)
        if cat.cold[row]:
            # a posted item's vector is exactly the rescaled map output: scale the parts the same way
            total = sum(parts.values())
            scale = cmap.target_norm / max(float(np.linalg.norm(total)), 1e-12)
            parts = {k: v * scale for k, v in parts.items()}
        contrib = {k: float(query @ v) for k, v in parts.items()}
        content_sum = sum(contrib.values())
        contrib["collaborative"] = score - content_sum
        out.update({k: round(v, 6) for k, v in contrib.items()})
        denom = sum(abs(v) for v in contrib.values()) or 1.0
        out["share"] = {k: round(abs(v) / denom, 4) for k, v in contrib.items()}
        out["method"] = "linear content map (ridge) decomposition of the item vector"
        if callable(model_hook):
            try:
                out["model_modality_weights"] = {k: round(float(v), 4) for k, v in model_hook().items()}
            except Exception as err:  # noqa: BLE001 -- an optional model hook must never fail an explanation
                log.debug("model_modality_weights hook failed: %s", err)
        return out

    def _history_rows(self, state: ServiceState, user_id: str) -> list[tuple[int, float]]:
        """(row, weight) of the user's past items: training positives (weight 1) and online events."""
        out: dict[int, float] = {}
        base_row = self._base_user(state, user_id)
        if base_row is not None:
            seen = state.seen
            for r in seen.indices[seen.indptr[base_row]:seen.indptr[base_row + 1]].tolist():
                out[r] = out.get(r, 0.0) + 1.0
        for ev in self.online.history(user_id):
            r = state.catalogue.index_of.get(ev.item)
            if r is not None:
                out[r] = out.get(r, 0.0) + ev.weight
        return list(out.items())

    def _driving_items(self, state: ServiceState, user_id: str, row: int, top: int = 5) -> list[dict[str, Any]]:
        hist = self._history_rows(state, user_id)
        if not hist:
            return []
        rows = np.asarray([h[0] for h in hist])
        w = np.asarray([h[1] for h in hist])
        sims = state.sim_index.vectors[rows] @ state.sim_index.vectors[row]
        strength = sims * w
        order = np.argsort(-strength)[:top]
        cat = state.catalogue
        return [{"item_id": cat.item_ids[rows[i]], "title": cat.title(int(rows[i])),
                 "similarity": round(float(sims[i]), 4), "weight": round(float(w[i]), 3)}
                for i in order if strength[i] > 0]

    # ------------------------------------------------------------------ profiles
    def user_profile(self, user_id: str, top: int = 5) -> dict[str, Any]:
        state = self.state
        user_id = str(user_id)
        if self._base_user(state, user_id) is None and not self.online.has(user_id):
            raise ServeError(404, "user_id", f"unknown user {user_id!r}")
        hist = self._history_rows(state, user_id)
        cat = state.catalogue
        rows = np.asarray([h[0] for h in hist], dtype=np.int64)
        weights = np.asarray([h[1] for h in hist], dtype=np.float64)
        profile: dict[str, Any] = {"user_id": user_id, "n_history": len(hist),
                                   "n_online_events": len(self.online.history(user_id))}
        profile["top_attributes"] = _top_attributes(cat, rows, weights, top)
        if state.inner_product and len(rows):
            query, source = self._user_vector(state, user_id)
            profile["user_state"] = source
            # representative = the past items the user's own vector scores highest
            scores = state.item_vectors[rows] @ query
            order = np.argsort(-scores)[:top]
            profile["representative_items"] = [
                {"item_id": cat.item_ids[rows[i]], "title": cat.title(int(rows[i])), "score": round(float(scores[i]), 4)}
                for i in order]
            recs = self.recommend_user(user_id, k=20)
            drive: dict[str, list[float]] = {}
            for entry in recs["items"]:
                shares = self._modality_contributions(state, query, cat.index_of[entry["item_id"]]).get("share", {})
                for key, val in shares.items():
                    drive.setdefault(key, []).append(val)
            profile["modality_drive"] = {k: round(float(np.mean(v)), 4) for k, v in drive.items()}
        return profile

    def item_profile(self, item_id: str) -> dict[str, Any]:
        state = self.state
        row = self._item_row(state, item_id)
        cat = state.catalogue
        out: dict[str, Any] = {
            "item_id": cat.item_ids[row], "title": cat.title(row), "attributes": cat.attributes(row),
            "popularity": int(cat.popularity[row]), "cold": bool(cat.cold[row]),
            "modalities": {n: bool(cat.masks[n][row]) for n in cat.masks},
        }
        if state.inner_product:
            out["similar"] = self.similar(str(item_id), k=5)["items"]
        return out

    # ------------------------------------------------------------------ privacy
    def forget_user(self, user_id: str) -> dict[str, Any]:
        state = self.state
        user_id = str(user_id)
        known = (user_id in state.user_index and user_id not in self.forgotten) or self.online.has(user_id)
        if not known:
            raise ServeError(404, "user_id", f"unknown user {user_id!r}")
        with self._write_lock:
            n = self.store.forget_user(user_id)
            self.online.forget(user_id)
            self.forgotten.add(user_id)
        return {"user_id": user_id, "deleted_events": n, "forgotten": True}

    # ------------------------------------------------------------------ retrain
    def retrain(self) -> dict[str, Any]:
        """Build a new state with ``retrain_fn`` off to the side, then swap it in (blocking)."""
        if self.retrain_fn is None:
            raise ServeError(409, "retrain", "no retrain function is configured for this server")
        if not self._retrain_lock.acquire(blocking=False):
            raise ServeError(409, "retrain", "a retrain is already running")
        try:
            self.retrain_status["running"] = True
            t0 = time.time()
            new_state = self.retrain_fn(self)
            self.swap(new_state)
            self.retrain_status.update(last=time.time(), error=None, seconds=round(time.time() - t0, 2),
                                       count=self.retrain_status["count"] + 1)
            return {"model_version": self.state.version, "seconds": self.retrain_status["seconds"]}
        except Exception as err:
            log.exception("retrain failed")
            self.retrain_status["error"] = f"{type(err).__name__}: {err}"
            raise
        finally:
            self.retrain_status["running"] = False
            self._retrain_lock.release()

    def retrain_in_background(self) -> bool:
        """Start a retrain thread; False when one is already running."""
        if self.retrain_fn is None:
            raise ServeError(409, "retrain", "no retrain function is configured for this server")
        if self.retrain_status["running"]:
            return False

        def run() -> None:
            try:
                self.retrain()
            except Exception:  # noqa: BLE001 -- logged and kept in retrain_status; the old model keeps serving
                return

        # mark it running before the thread starts, so a status poll right after sees it
        self.retrain_status["running"] = True
        threading.Thread(target=run, name="fusionrec-retrain", daemon=True).start()
        return True

    # ------------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        state = self.state
        return {
            "status": "ok", "model": type(state.model).__name__, "model_version": state.version,
            "model_dir": state.model_dir, "n_users": len(state.user_ids), "n_items": state.catalogue.n_items,
            "index": state.index.kind if state.index is not None else "model-scores",
            "online_users": self.online.users(), "events_ingested": self.online.n_ingested,
            "content_encoder": self.encoder.modalities if self.encoder else [],
            "content_map_r2": round(state.content_map.fit_r2, 4) if state.content_map else None,
            "new_items_placed_by": state.placement,
            "retrain": {k: v for k, v in self.retrain_status.items()},
            "uptime_seconds": round(time.time() - self.started, 1),
        }


_DESCRIPTION_COLUMNS = ("overview", "plot", "description", "tags", "text", "summary")


def _mean_direction(vectors: list[np.ndarray]) -> np.ndarray:
    """Average of unit vectors, rescaled to the mean norm: each signal gets an equal say."""
    norms = [max(float(np.linalg.norm(v)), 1e-12) for v in vectors]
    unit = sum(v / n for v, n in zip(vectors, norms)) / len(vectors)
    return (unit * float(np.mean(norms))).astype(np.float32)


def _check_image(data: bytes, field: str) -> None:
    """Reject undecodable or oversized images before they reach an encoder (422, not 500)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > 40_000_000:
                raise ServeError(422, field, f"image is {im.width}x{im.height}; the limit is 40 megapixels")
            im.verify()
    except ServeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ServeError(422, field, f"cannot decode the image: {err}", "send a JPEG/PNG/WebP file") from err


def _top_attributes(cat, rows: np.ndarray, weights: np.ndarray, top: int) -> dict[str, list[dict[str, Any]]]:
    """Per categorical column, the values most over-represented in the user's history vs the catalogue."""
    import re

    out: dict[str, list[dict[str, Any]]] = {}
    if not len(rows):
        return out
    for col in cat.attribute_columns():
        series = cat.frame[col]
        values = series.to_numpy(dtype=object)
        distinct = series.nunique(dropna=True)
        if distinct < 2 or distinct > max(50, cat.n_items // 2):
            continue  # ids or near-unique text: not a readable attribute
        counts: dict[str, float] = {}
        base: dict[str, float] = {}
        def tokens(v: Any) -> list[str]:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                return []
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            return [t.strip() for t in re.split(r"[|,]", str(v)) if t.strip()]
        for v in values:
            for t in tokens(v):
                base[t] = base.get(t, 0.0) + 1.0
        total_w = float(weights.sum()) or 1.0
        for r, w in zip(rows.tolist(), weights.tolist()):
            for t in tokens(values[r]):
                counts[t] = counts.get(t, 0.0) + w
        if not counts:
            continue
        n = float(cat.n_items)
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        out[col] = [{"value": t, "share": round(c / total_w, 4), "lift": round((c / total_w) / (base[t] / n), 3)}
                    for t, c in ranked]
    return out
