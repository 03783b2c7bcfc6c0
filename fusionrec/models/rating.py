"""Explicit rating prediction: the shared rating contract and biased matrix factorisation.

A *rating model* predicts the rating a user would give an item (not a ranking score):

* ``predict_ratings(users, items) -> [P]`` predicted ratings of aligned pairs, clipped to
  the training rating range (what MAE / RMSE are computed on, see
  :mod:`fusionrec.evaluate.rating`);
* ``full_sort_predict(users) -> [B, n_items]`` the predicted ratings of every item, so the
  evaluator's ranking metrics, ``Recommender.score`` and serving read predicted ratings
  (higher is better, and the value *is* the rating).

Training uses the trainer's ``pointwise`` sampler with no sampled negatives: every
training row (positives and explicit negatives alike) is visited once per epoch, and the
model looks the row's rating up in a table built from ``train_frame`` (a pair rated twice
counts with its mean rating). The loss is the mean squared error plus an L2 penalty on the
embeddings the batch touches, as in Funk/Koren SVD.

:class:`BiasedMF` (``biased_mf``): ``r = mu + b_u + b_i + p_u . q_i`` (Koren, Bell and
Volinsky, *Matrix factorization techniques for recommender systems*, 2009). An item
without training ratings keeps ``b_i = 0`` and ``q_i`` near zero, so it falls back to
``mu + b_u``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.models.base import RecModel
from fusionrec.models.params import ModelParams


class RatingTable(nn.Module):
    """Mean training rating of every rated (user, item) pair, looked up by sorted keys.

    A module with non-persistent buffers: the table follows the model to its device and is rebuilt
    from the data, not saved."""

    def __init__(self, data: TrainData, model: str) -> None:
        super().__init__()
        frame = data.train_frame
        ratings = frame["rating"].to_numpy(np.float64) if "rating" in frame.columns else np.empty(0)
        rated = np.isfinite(ratings)
        if not rated.any():
            raise UserError(f"{model} predicts explicit ratings but the training split has none",
                            "data.columns.rating",
                            "map the rating column of the interaction file (columns: {rating: <col>}), "
                            "or use a ranking model (bpr, two_tower, dcn) for implicit feedback")
        n_items = data.n_items
        keys = frame["user"].to_numpy(np.int64)[rated] * n_items + frame["item"].to_numpy(np.int64)[rated]
        uniq, inverse = np.unique(keys, return_inverse=True)
        sums = np.bincount(inverse, weights=ratings[rated])
        counts = np.bincount(inverse)
        self.n_items = n_items
        self.register_buffer("keys", torch.from_numpy(uniq), persistent=False)
        self.register_buffer("values", torch.from_numpy((sums / counts).astype(np.float32)), persistent=False)
        self.mean = float(ratings[rated].mean())
        self.low = float(ratings[rated].min())
        self.high = float(ratings[rated].max())
        self.n_rated = int(rated.sum())

    def lookup(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ratings, found)`` of the pairs; ``found`` is False for a pair without a training rating."""
        q = users.long() * self.n_items + items.long()
        pos = torch.searchsorted(self.keys, q).clamp_(max=self.keys.numel() - 1)
        found = self.keys[pos] == q
        return torch.where(found, self.values[pos], torch.zeros_like(self.values[pos])), found


class RatingModel(RecModel):
    """Base of the rating models: MSE over the training rows' ratings, clipped predictions."""

    batch_kind = "pointwise"
    # a rating model is chosen on validation RMSE unless the run says otherwise (fusionrec.config)
    default_valid_metric: ClassVar[str] = "rmse"

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        self.table = RatingTable(data, self.name)
        self.register_buffer("mu", torch.tensor(self.table.mean), persistent=False)
        self.low, self.high = self.table.low, self.table.high

    @property
    def num_negatives(self) -> int:
        return 0   # every training row once; no made-up unrated pairs

    def predict_raw(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unclipped predictions of aligned pairs and the weighted L2 penalty of what they used."""
        raise NotImplementedError

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, items = batch["user"], batch["item"]
        target, found = self.table.lookup(users, items)
        if not bool(found.any()):
            return torch.zeros((), requires_grad=True, device=users.device)
        users, items, target = users[found], items[found], target[found]
        pred, penalty = self.predict_raw(users, items)
        return ((pred - target) ** 2).mean() + penalty

    @torch.no_grad()
    def predict_ratings(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of aligned (user, item) pairs, clipped to the training rating range."""
        users = torch.as_tensor(users, dtype=torch.long, device=self.mu.device)
        items = torch.as_tensor(items, dtype=torch.long, device=self.mu.device)
        out = torch.empty(len(users), device=self.mu.device)
        for p0 in range(0, len(users), 65536):
            pred, _ = self.predict_raw(users[p0:p0 + 65536], items[p0:p0 + 65536])
            out[p0:p0 + 65536] = pred
        return out.clamp(self.low, self.high)

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        users = torch.as_tensor(users, dtype=torch.long, device=self.mu.device)
        items = torch.arange(self.n_items, device=self.mu.device)
        pred, _ = self.predict_raw(users.repeat_interleave(self.n_items), items.repeat(len(users)))
        return pred.view(len(users), self.n_items).clamp(self.low, self.high)


class BiasedMF(RatingModel):
    """``mu + b_u + b_i + p_u . q_i`` trained on squared error (see the module docstring)."""

    name = "biased_mf"
    trainable = True

    class Params(ModelParams):
        embedding_size: int = Field(64, gt=0, description="latent factors per user and item")
        reg_weight: float = Field(0.1, ge=0, description="L2 on the batch's user and item factors (per row)")
        bias_reg_weight: float = Field(0.01, ge=0, description="L2 on the batch's user and item biases (per row)")
        init_std: float = Field(0.01, gt=0, description="standard deviation of the initial factors")

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        e = self.hp.embedding_size
        self.user_factors = nn.Embedding(self.n_users, e)
        self.item_factors = nn.Embedding(self.n_items, e)
        self.user_bias = nn.Embedding(self.n_users, 1)
        self.item_bias = nn.Embedding(self.n_items, 1)
        for table in (self.user_factors, self.item_factors):
            nn.init.normal_(table.weight, std=self.hp.init_std)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)

    def predict_raw(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p, q = self.user_factors(users), self.item_factors(items)
        bu, bi = self.user_bias(users).squeeze(-1), self.item_bias(items).squeeze(-1)
        pred = self.mu + bu + bi + (p * q).sum(-1)
        penalty = (self.hp.reg_weight * (p.pow(2).sum(-1) + q.pow(2).sum(-1))
                   + self.hp.bias_reg_weight * (bu.pow(2) + bi.pow(2))).mean()
        return pred, penalty

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        users = torch.as_tensor(users, dtype=torch.long, device=self.mu.device)
        scores = (self.user_factors(users) @ self.item_factors.weight.T + self.user_bias(users)
                  + self.item_bias.weight.T + self.mu)
        return scores.clamp(self.low, self.high)
