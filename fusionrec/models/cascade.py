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

With a multi-task ranker (:mod:`fusionrec.models.multitask`), ``task_weights`` re-ranks by a
blend of its tasks, ``sum_t w_t log p_t`` (``{click: 1, cvr: 1}`` is the expected conversion
``log pCTR pCVR``). ``fusion`` chooses how the stages combine: ``score`` (the formula above),
or decision-level rank fusion (:mod:`fusionrec.fuse.decision`): ``rrf`` (reciprocal rank
fusion, ``sum_v w_v / (rrf_k + rank_v)``) or ``borda`` (weighted Borda points), where the
voters are the retriever (weight ``blend``) and the ranker's tasks (weight ``(1 - blend) w_t``),
or the ranker's own score when ``task_weights`` is unset.

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

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.models.base import RecModel
from fusionrec.models.params import ModelParams


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """Per-row z-score over finite entries (a row of equal scores becomes zeros)."""
    finite = torch.isfinite(x)
    x0 = torch.where(finite, x, torch.zeros_like(x))
    n = finite.sum(1, keepdim=True).clamp_min(1)
    mean = x0.sum(1, keepdim=True) / n
    var = (torch.where(finite, x - mean, torch.zeros_like(x)) ** 2).sum(1, keepdim=True) / n
    return torch.where(finite, (x - mean) / var.sqrt().clamp_min(1e-8), x)


class SubModelSpec(ModelParams):
    """A cascade stage: which model, its parameters, and how :meth:`Cascade.fit` trains it."""

    name: str = Field(description="registered model name (fusionrec models lists them)")
    params: dict[str, Any] = Field(default_factory=dict, description="that model's parameters "
                                                                     "(its typed defaults fill the rest)")
    epochs: int = Field(20, ge=1, description="fixed training epochs when the cascade trains it (no early stop)")
    lr: float = Field(1e-3, gt=0, description="learning rate when the cascade trains it")
    batch_size: int = Field(2048, ge=1, description="batch size when the cascade trains it")
    seed: int = Field(0, description="training seed when the cascade trains it")


class Cascade(RecModel):
    """Retriever top-N -> ranker re-ranking (see the module docstring)."""

    name = "cascade"
    trainable = False
    batch_kind = "user"
    uses_content = True   # the default ranker (dcn) reads item content

    class Params(ModelParams):
        # the default stages are those of docs/benchmarks/cascade.md: EASE retrieval, DCN-v2 re-ranking
        top_n: int = Field(100, ge=1, description="candidates the retriever passes to the ranker")
        blend: float = Field(0.0, ge=0, le=1, description="weight of the retriever's standardised score "
                                                          "(0 = ranker only, 1 = retriever only)")
        retriever: SubModelSpec | None = Field(SubModelSpec(name="ease"), description=(
            "retrieval stage {name, params, epochs, lr, batch_size, seed}"))
        ranker: SubModelSpec | None = Field(SubModelSpec(name="dcn"), description=(
            "re-ranking stage {name, params, epochs, lr, batch_size, seed}"))
        retriever_dir: str | None = Field(None, description="a saved model folder (runs/<run>/model) used as the "
                                                            "retriever instead of training one")
        ranker_dir: str | None = Field(None, description="a saved model folder used as the ranker")
        task_weights: dict[str, float] | None = Field(None, description=(
            "re-rank a multi-task ranker's candidates by sum of weight * log p(task) over click / conversion "
            "/ cvr, e.g. {click: 1, cvr: 1} = log pCTCVR (null: the ranker's own score)"))
        fusion: Literal["score", "rrf", "borda"] = Field("score", description=(
            "how the retriever's and the ranker's candidate orders combine: score = blend of standardised "
            "scores; rrf / borda = rank fusion, each task of task_weights voting with its weight and the "
            "retriever with weight blend"))
        rrf_k: float = Field(60.0, gt=0, description="the k of reciprocal rank fusion: 1 / (k + rank)")

        @field_validator("retriever", "ranker")
        @classmethod
        def _stage_params(cls, spec: SubModelSpec | None, info: Any) -> SubModelSpec | None:
            # the stage's own typed defaults are filled in now, so a cascade built in Python and one
            # resolved from the CLI carry the same parameters (and a typo fails before training)
            from fusionrec.models.registry import (
                validate_params,  # local: the registry imports models lazily
            )

            if spec is None:
                return None
            full = validate_params(spec.name, spec.params, where=f"model.params.{info.field_name}.params")
            return spec.model_copy(update={"params": full})

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None,
                 retriever: RecModel | None = None, ranker: RecModel | None = None) -> None:
        super().__init__(data, params)
        self.top_n = self.hp.top_n
        self.blend = self.hp.blend
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
        if self.hp.task_weights and not callable(getattr(self.ranker, "score_tasks", None)):
            raise UserError(f"cascade task_weights need a multi-task ranker; {self.ranker.name!r} predicts one score",
                            "model.params.task_weights",
                            "set ranker: {name: multitask} or drop task_weights")
        train = data.train.tocsr()
        self._train_indptr = torch.from_numpy(train.indptr.astype(np.int64))
        self._train_indices = torch.from_numpy(train.indices.astype(np.int64))
        self._data = data
        # closed form, so on the host (retrieval goes through numpy / scipy); stages trained on a GPU
        # (train.device, e.g. --model auto's blend of two candidates) come along
        self.cpu()

    # ------------------------------------------------------------------ construction
    def _build(self, role: str, data: TrainData) -> RecModel:
        from fusionrec.models.registry import (
            build_model,  # local: the registry imports models lazily
        )

        directory = getattr(self.hp, f"{role}_dir")
        if directory:
            from fusionrec.models.io import load_model

            loaded = load_model(Path(directory))
            self._loaded.add(role)
            spec = SubModelSpec(name=loaded.model.name, params=dict(loaded.model.params))
            # saved cascades rebuild from the spec alone
            self.hp = self.hp.model_copy(update={role: spec, f"{role}_dir": None})
            self.params = self.hp.model_dump(mode="json")
            return loaded.model
        spec = getattr(self.hp, role)
        if spec is None:
            raise UserError(f"cascade needs a {role}", f"model.params.{role}",
                            f"set model.params.{role}={{name: ..., params: {{...}}}} or "
                            f"model.params.{role}_dir=runs/<run>/model")
        return build_model(spec.name, data, spec.params)

    @classmethod
    def from_models(cls, data: TrainData, retriever: RecModel, ranker: RecModel, top_n: int = 100,
                    blend: float = 0.0, **options: Any) -> Cascade:
        """Wrap two trained models; their specs go into ``params`` so a saved cascade can be rebuilt.

        ``options``: the other parameters (``fusion``, ``task_weights``, ``rrf_k``)."""
        # top_n and blend are validated; the stages are the given models, whose params their own
        # classes validated already (they need not be registered, e.g. a custom retriever)
        checked = cls.validate_params({"top_n": top_n, "blend": blend, "retriever": None, "ranker": None,
                                       **options})
        params = checked.model_copy(update={
            "retriever": SubModelSpec(name=retriever.name, params=dict(retriever.params)),
            "ranker": SubModelSpec(name=ranker.name, params=dict(ranker.params)),
        })
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
            spec = getattr(self.hp, role) or SubModelSpec(name=model.name)   # None: given trained
            if role == "ranker" and getattr(model.hp, "hard_negatives", 0) > 0 and hasattr(model, "set_candidates"):
                model.set_candidates(self.candidates(torch.arange(self.n_users)))
            # on the cascade's device: a closed-form model, so the host (retrieval there is numpy / scipy)
            cfg = TrainConfig(epochs=spec.epochs, lr=spec.lr, batch_size=spec.batch_size, checkpoint=False,
                              progress=False, device=str(self._train_indptr.device))
            Trainer(model, data, cfg, evaluator=None, seed=spec.seed).fit()
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
    def ranker_voters(self, users: torch.Tensor, items: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        """The ranker's scores [B, C] of ``items`` with their weights: one per task of ``task_weights``
        (log-probabilities of a multi-task ranker), or the ranker's own score with weight 1."""
        weights = {t: float(w) for t, w in (self.hp.task_weights or {}).items() if w}
        if not weights:
            return [(self.rerank_scores(users, items), 1.0)]
        self.ranker.eval()
        tasks = self.ranker.score_tasks(users, items)
        missing = [t for t in weights if t not in tasks]
        if missing:
            raise UserError(f"cascade task_weights name {missing}; the ranker predicts {sorted(tasks)}",
                            "model.params.task_weights", f"weight only {sorted(tasks)}")
        return [(tasks[t], w) for t, w in weights.items()]

    @torch.no_grad()
    def fused_candidate_scores(self, users: torch.Tensor, cand: torch.Tensor, cand_ret: torch.Tensor
                               ) -> torch.Tensor:
        """Final scores [B, C] of the candidates by ``fusion`` (see the parameters)."""
        voters = self.ranker_voters(users, cand)
        if self.hp.fusion == "score":
            rank = _standardise(sum(w * s for s, w in voters))
            return (1.0 - self.blend) * rank + (self.blend * _standardise(cand_ret) if self.blend else 0.0)
        from fusionrec.fuse.decision import borda_fusion, reciprocal_rank_fusion

        mats = [cand_ret] + [s for s, _ in voters]
        weights = [self.blend] + [(1.0 - self.blend) * w for _, w in voters]
        if self.hp.fusion == "rrf":
            fused = reciprocal_rank_fusion(mats, k=self.hp.rrf_k, weights=weights)
        else:   # weighted Borda count: each voter's points, weighted
            fused = sum(w * borda_fusion([m]) for m, w in zip(mats, weights) if w) / max(sum(weights), 1e-12)
        return torch.as_tensor(np.asarray(fused), dtype=torch.float32)

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        ret = self.retriever_scores(users)
        cand = self.candidates(users, ret)
        cand_ret = torch.gather(ret, 1, cand)
        final = _standardise(cand_ret) if self.blend >= 1.0 else None
        if final is None:
            final = self.fused_candidate_scores(users, cand, cand_ret)
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
