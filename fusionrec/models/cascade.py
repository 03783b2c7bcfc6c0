"""Hybrid cascade: retrieve the top-N with one model, re-rank them with a ranker.

``score(u, ·)``: the retriever (any :class:`RecModel`: two-tower, graph, MF, ...)
scores the catalogue; the user's training positives are excluded (they are never
recommended, so they must not take candidate slots); its top ``top_n`` items are
re-scored by the ranker (any model with ``score_candidates(users, items[B, C])``,
e.g. :class:`~fusionrec.models.ranker.DCNRanker`, otherwise its
``full_sort_predict`` restricted to the candidates). The candidates' final score is

    ``(1 - blend) * z(ranker) + blend * z(retriever)``

with ``z`` the per-user standardisation over the candidates, so ``blend = 0`` is
pure re-ranking and ``blend = 1`` reproduces the retriever's ranking exactly.
Items outside the top-N keep the retriever's order *below* every candidate, so
metrics at cutoffs beyond ``top_n`` stay meaningful.

Building:

* :meth:`Cascade.from_models` wraps two trained models (the benchmark trains each
  with early stopping on validation and chooses ``top_n``/``blend`` on validation);
* through the registry (``fusionrec train --model cascade``): ``params.retriever``
  and ``params.ranker`` are ``{name, params, epochs, lr, batch_size}`` specs, or
  ``retriever_dir``/``ranker_dir`` name saved model folders (``runs/<run>/model``).
  :meth:`fit` trains sub-models that were not loaded for their fixed ``epochs``
  (``fit`` sees no validation split), retriever first; with
  ``ranker.params.hard_negatives > 0`` the ranker is then trained on negatives
  drawn from the retriever's top-N -- the items it will have to separate.

A saved cascade holds both sub-models' weights (``retriever.*``, ``ranker.*``)
and their specs, so :func:`fusionrec.models.io.load_model` rebuilds it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.models.base import RecModel


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """Per-row z-score over finite entries (a row of equal scores becomes zeros)."""
    finite = torch.isfinite(x)
    x0 = torch.where(finite, x, torch.zeros_like(x))
    n = finite.sum(1, keepdim=True).clamp_min(1)
    mean = x0.sum(1, keepdim=True) / n
    var = (torch.where(finite, x - mean, torch.zeros_like(x)) ** 2).sum(1, keepdim=True) / n
    return torch.where(finite, (x - mean) / var.sqrt().clamp_min(1e-8), x)


class Cascade(RecModel):
    """Retriever top-N -> ranker re-ranking (see the module docstring)."""

    name = "cascade"
    trainable = False
    batch_kind = "user"

    def __init__(self, data: TrainData, params: dict[str, Any] | None = None,
                 retriever: RecModel | None = None, ranker: RecModel | None = None) -> None:
        super().__init__(data, params)
        self.top_n = int(self.param("top_n", 100))
        self.blend = float(self.param("blend", 0.0))
        if self.top_n < 1:
            raise UserError(f"cascade top_n={self.top_n} must be at least 1", "model.params.top_n",
                            "retrieve e.g. 100-500 candidates")
        if not 0.0 <= self.blend <= 1.0:
            raise UserError(f"cascade blend={self.blend} is outside [0, 1]", "model.params.blend",
                            "0 = ranker only, 1 = retriever only")
        self._loaded: set[str] = set()
        self.retriever = retriever if retriever is not None else self._build("retriever", data)
        self.ranker = ranker if ranker is not None else self._build("ranker", data)
        if retriever is not None:
            self._loaded.add("retriever")
        if ranker is not None:
            self._loaded.add("ranker")
        for role, model in (("retriever", self.retriever), ("ranker", self.ranker)):
            if (model.n_users, model.n_items) != (self.n_users, self.n_items):
                raise UserError(
                    f"cascade {role} was built for {model.n_users} users x {model.n_items} items, "
                    f"the data has {self.n_users} x {self.n_items}",
                    f"model.params.{role}_dir", "train both sub-models on the same dataset and split")
        train = data.train.tocsr()
        self._train_indptr = torch.from_numpy(train.indptr.astype(np.int64))
        self._train_indices = torch.from_numpy(train.indices.astype(np.int64))
        self._data = data

    # ------------------------------------------------------------------ construction
    def _build(self, role: str, data: TrainData) -> RecModel:
        from fusionrec.models.registry import build_model  # local: the registry imports models lazily

        directory = self.param(f"{role}_dir")
        if directory:
            from fusionrec.models.io import load_model

            loaded = load_model(Path(directory))
            self._loaded.add(role)
            spec = {"name": loaded.model.name, "params": dict(loaded.model.params)}
            self.params[role] = spec            # saved cascades rebuild from the spec alone
            self.params.pop(f"{role}_dir", None)
            return loaded.model
        spec = self.param(role)
        if not isinstance(spec, dict) or "name" not in spec:
            raise UserError(f"cascade needs a {role}", f"model.params.{role}",
                            f"set model.params.{role}={{name: ..., params: {{...}}}} or "
                            f"model.params.{role}_dir=runs/<run>/model")
        return build_model(str(spec["name"]), data, dict(spec.get("params") or {}))

    @classmethod
    def from_models(cls, data: TrainData, retriever: RecModel, ranker: RecModel, top_n: int = 100,
                    blend: float = 0.0) -> "Cascade":
        """Wrap two trained models; their specs go into ``params`` so a saved cascade can be rebuilt."""
        params = {
            "top_n": int(top_n), "blend": float(blend),
            "retriever": {"name": retriever.name, "params": dict(retriever.params)},
            "ranker": {"name": ranker.name, "params": dict(ranker.params)},
        }
        return cls(data, params, retriever=retriever, ranker=ranker)

    # ------------------------------------------------------------------ training
    def fit(self, data: TrainData) -> None:
        """Train sub-models that were not given trained (fixed epochs; retriever first)."""
        from fusionrec.config import TrainConfig
        from fusionrec.train.trainer import Trainer

        for role in ("retriever", "ranker"):
            model = self.retriever if role == "retriever" else self.ranker
            if role in self._loaded or not type(model).trainable:
                if not type(model).trainable and role not in self._loaded:
                    model.fit(data)
                continue
            spec = dict(self.param(role) or {})
            if role == "ranker" and int(model.param("hard_negatives", 0)) > 0 and hasattr(model, "set_candidates"):
                model.set_candidates(self.candidates(torch.arange(self.n_users)))
            cfg = TrainConfig(epochs=int(spec.get("epochs", 20)), lr=float(spec.get("lr", 1e-3)),
                              batch_size=int(spec.get("batch_size", 2048)), checkpoint=False, progress=False)
            Trainer(model, data, cfg, evaluator=None, seed=int(spec.get("seed", 0))).fit()
            model.eval()

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def retriever_scores(self, users: torch.Tensor) -> torch.Tensor:
        """Retriever scores [B, n_items] with the users' training positives at -inf."""
        self.retriever.eval()
        scores = torch.as_tensor(self.retriever.full_sort_predict(users)).float().clone()
        starts, ends = self._train_indptr[users], self._train_indptr[users + 1]
        counts = ends - starts
        if int(counts.sum()):
            rows = torch.repeat_interleave(torch.arange(len(users)), counts)
            offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
            cols = self._train_indices[torch.repeat_interleave(starts, counts) + offsets]
            scores[rows, cols] = float("-inf")
        return scores

    @torch.no_grad()
    def candidates(self, users: torch.Tensor, scores: torch.Tensor | None = None) -> torch.Tensor:
        """The retriever's top ``top_n`` item ids [B, top_n] (training positives excluded)."""
        scores = self.retriever_scores(users) if scores is None else scores
        return torch.topk(scores, min(self.top_n, self.n_items), dim=1).indices

    @torch.no_grad()
    def rerank_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Ranker scores [B, C] of the candidate ``items`` [B, C]."""
        self.ranker.eval()
        if hasattr(self.ranker, "score_candidates"):
            return torch.as_tensor(self.ranker.score_candidates(users, items)).float()
        full = torch.as_tensor(self.ranker.full_sort_predict(users)).float()
        return torch.gather(full, 1, items)

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        ret = self.retriever_scores(users)
        cand = self.candidates(users, ret)
        cand_ret = torch.gather(ret, 1, cand)
        final = _standardise(cand_ret) if self.blend >= 1.0 else None
        if final is None:
            rank = _standardise(self.rerank_scores(users, cand))
            final = (1.0 - self.blend) * rank + (self.blend * _standardise(cand_ret) if self.blend else 0.0)
            # a candidate the retriever ranked -inf (fewer rankable items than top_n) stays last
            final = torch.where(torch.isfinite(cand_ret), final, cand_ret)
        # everything else keeps the retriever's order, strictly below the lowest candidate
        finite = torch.where(torch.isfinite(final), final, torch.full_like(final, float("inf")))
        floor = finite.min(dim=1, keepdim=True).values
        floor = torch.where(torch.isfinite(floor), floor, torch.zeros_like(floor))
        rest = _standardise(ret)
        rest_finite = torch.where(torch.isfinite(rest), rest, torch.full_like(rest, float("-inf")))
        top_rest = rest_finite.max(dim=1, keepdim=True).values
        top_rest = torch.where(torch.isfinite(top_rest), top_rest, torch.zeros_like(top_rest))
        out = rest - top_rest + floor - 1.0
        out.scatter_(1, cand, final)
        return out
