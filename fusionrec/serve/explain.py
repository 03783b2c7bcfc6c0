"""Explanations and readable profiles of users and items (mixed into ``RecService``)."""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.serve.errors import ServeError

if TYPE_CHECKING:
    from fusionrec.serve.state import ServiceState

log = logging.getLogger("fusionrec.serve")


class ExplainMixin:
    """``/explain``, ``/users/{id}/profile`` and ``/items/{id}``."""

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


def _top_attributes(cat, rows: np.ndarray, weights: np.ndarray, top: int) -> dict[str, list[dict[str, Any]]]:
    """Per categorical column, the values most over-represented in the user's history vs the catalogue."""
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
