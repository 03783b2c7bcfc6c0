"""The new-user prior: log p(item | attributes [, arrival time]) for users with no history.

A tower trained with the logQ-corrected in-batch softmax learns how much *more* an item suits
a user than its popularity says; for a user known only by age, gender, occupation and region
that residual is small, and what is left -- popularity *within* the user's segment -- is the
part the correction takes away. :class:`NewUserPrior` learns exactly that part:

* a multinomial over the whole catalogue (full softmax, no sampling, so no logQ) whose logits are
  ``A(attributes) . W_i + b_i`` (its own :class:`UserAttributeEncoder`, item table ``W`` and item
  bias ``b``: the bias is the popularity, the product its shift by segment);
* each training event weighted by ``1 / events(user)^power``: every training user counts about
  equally, as every new user does in a per-user metric, and the light users -- whose events are
  the first events anyone makes -- are not drowned by a few heavy ones;
* optionally (``recency_days > 0``) a learned weight times the log share of each item among the
  training events of the previous ``recency_days``-day window before the user's arrival (the
  calendar bin before the arrival bin, so only events strictly earlier count); a user whose
  arrival falls in the first bin, or whose time is unknown, gets no recency term.

A host model (two_tower) adds ``weight x log_softmax(prior)`` to its own log-probabilities for
users not in training.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.models.user_tower import UserAttributeEncoder

DAY = 86400.0


class NewUserPrior(nn.Module):
    """``[B, F]`` attribute codes (+ arrival times) -> ``[B, n_items]`` logits of p(item | attributes)."""

    def __init__(self, users: pd.DataFrame, train_frame: pd.DataFrame, n_items: int, dim: int,
                 n_bins: int = 8, min_count: int = 5, recency_days: float = 0.0) -> None:
        super().__init__()
        self.encoder = UserAttributeEncoder(users, dim, n_bins, min_count)
        self.items = nn.Parameter(torch.randn(n_items, dim) * 0.01)
        pop = np.bincount(train_frame["item"].to_numpy(np.int64), minlength=n_items).astype(np.float64)
        # start from log popularity: the first epochs refine by segment instead of learning popularity
        init = np.log(pop + 1.0)
        self.bias = nn.Parameter(torch.from_numpy((init - init.mean()).astype(np.float32)))
        self.recency = recency_days > 0
        if self.recency:
            self._init_recency(train_frame, n_items, recency_days * DAY)

    def _init_recency(self, frame: pd.DataFrame, n_items: int, width: float) -> None:
        ts = frame["timestamp"].to_numpy(np.float64)
        ok = np.isfinite(ts)
        self.origin = float(ts[ok].min()) if ok.any() else 0.0
        self.width = width
        bins = ((ts[ok] - self.origin) // width).astype(np.int64)
        n_bins = int(bins.max()) + 1 if ok.any() else 0
        # row k + 1 holds the counts of bin k; row 0 (no earlier bin, unknown time) stays empty
        counts = np.zeros((n_bins + 1, n_items), dtype=np.float64)
        np.add.at(counts, (bins + 1, frame["item"].to_numpy(np.int64)[ok]), 1.0)
        share = np.log((counts + 1.0) / (counts.sum(axis=1, keepdims=True) + n_items))
        share[0] = 0.0
        self.register_buffer("recent_log", torch.from_numpy(share.astype(np.float32)), persistent=False)
        self.recency_weight = nn.Parameter(torch.zeros(()))

    def recency_rows(self, times: torch.Tensor | np.ndarray | None, n: int) -> torch.Tensor:
        """Row of ``recent_log`` for each arrival time: the bin before the arrival's bin
        (None: after training, i.e. the last bin; NaN: unknown, no recency)."""
        last = self.recent_log.shape[0] - 1
        if times is None:
            return torch.full((n,), last, dtype=torch.long, device=self.recent_log.device)
        t = torch.as_tensor(np.asarray(times, dtype=np.float64), device=self.recent_log.device)
        k = torch.floor((t - self.origin) / self.width).clamp(0, last)
        return torch.where(torch.isfinite(t), k, torch.zeros_like(k)).long()

    def forward(self, codes: torch.Tensor, times: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        logits = self.encoder(codes) @ self.items.T + self.bias
        if self.recency:
            logits = logits + self.recency_weight * self.recent_log[self.recency_rows(times, codes.shape[0])]
        return logits

    def loss(self, codes: torch.Tensor, items: torch.Tensor, weights: torch.Tensor,
             times: torch.Tensor | np.ndarray | None) -> torch.Tensor:
        """Weighted full-softmax cross-entropy of each (user, item) training event."""
        ce = F.cross_entropy(self(codes, times), items, reduction="none")
        return (weights * ce).sum() / weights.sum().clamp_min(1e-12)


__all__ = ["NewUserPrior"]
