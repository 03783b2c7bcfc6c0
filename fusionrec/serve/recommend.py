"""Recommendations and similar items: the read path of :class:`~fusionrec.serve.service.RecService`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fusionrec.errors import UserError
from fusionrec.serve.errors import ServeError
from fusionrec.serve.online import OnlineEvent

if TYPE_CHECKING:
    from fusionrec.serve.state import ServiceState

DESCRIPTION_COLUMNS = ("overview", "plot", "description", "tags", "text", "summary")


class RecommendMixin:
    """Per-user and anonymous recommendations, similar items (mixed into ``RecService``)."""

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
                            exclude_seen: bool = True, filters: str | None = None,
                            attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        """For anonymous/new users: the items they touched, their attributes and/or a free-text query."""
        k = self._check_k(k)
        state = self.state
        self._require_ip(state, "anonymous recommendations")
        items = list(items or [])
        if not items and not (text and text.strip()) and not attributes:
            raise ServeError(422, "items", "send at least one item id in 'items', user 'attributes' or a "
                             "non-empty 'text' query")
        rows = [self._item_row(state, i, f"items[{n}]") for n, i in enumerate(items)]
        parts = []
        if attributes:
            # the model's own new-user tower: attributes plus the touched items as first events
            parts.append(self._attribute_query_vector(state, attributes, rows))
        elif rows:
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

    def _attribute_query_vector(self, state: ServiceState, attributes: dict[str, Any], rows: list[int]) -> np.ndarray:
        model = state.model
        if getattr(model, "user_attr", None) is None or not hasattr(model, "user_vector_from_attributes"):
            raise ServeError(422, "attributes", f"the served {type(model).__name__} model has no user attribute "
                             "tower", "train two_tower with model.params.user_attributes: true on data with a user "
                             "table (docs/guide/new-users.md), or leave 'attributes' out")
        trained = [r for r in rows if r < model.n_items]  # items posted after training have no trained row
        try:
            vec = model.user_vector_from_attributes(dict(attributes), trained)
        except UserError as err:
            raise ServeError(422, "attributes", err.what, err.fix) from None
        return vec.detach().cpu().numpy().astype(np.float32)

    def _text_query_vector(self, state: ServiceState, text: str) -> np.ndarray:
        if len(text) > 10_000:
            raise ServeError(422, "text", f"text query has {len(text)} characters; the limit is 10000")
        if self.encoder is None or state.placement is None:
            raise ServeError(422, "text", "free-text queries need a text encoder and a model served with "
                             "text features", "encode the catalogue (fusionrec encode) and serve with a text encoder")
        cols = [c for c in state.catalogue.frame.columns if str(c) in DESCRIPTION_COLUMNS] or ["title"]
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


def _mean_direction(vectors: list[np.ndarray]) -> np.ndarray:
    """Average of unit vectors, rescaled to the mean norm: each signal gets an equal say."""
    norms = [max(float(np.linalg.norm(v)), 1e-12) for v in vectors]
    unit = sum(v / n for v, n in zip(vectors, norms)) / len(vectors)
    return (unit * float(np.mean(norms))).astype(np.float32)
