"""Decision-level fusion: one scorer per modality, combined afterwards.

* :class:`ScoreFusion` -- learned weights over per-modality score matrices,
  renormalised per item over the modalities that item has;
* :func:`reciprocal_rank_fusion` / :func:`borda_fusion` -- training-free rank
  and vote fusion of several rankings (per-modality scorers, or retrieval
  models in a cascade).

Score matrices are [B users, N items]; item masks are [N] bool.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from fusionrec.fuse.feature import masked_softmax


class ScoreFusion(nn.Module):
    """``score = sum_m w_m(i) * score_m`` with learned ``w = softmax(logits)`` over present modalities."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = list(names)
        self.logits = nn.Parameter(torch.zeros(len(self.names)))

    def item_weights(self, item_masks: Mapping[str, torch.Tensor] | None, n_items: int) -> torch.Tensor:
        """[N, M] per-item weights (zero for the modalities an item lacks)."""
        if item_masks is None:
            m = torch.ones(n_items, len(self.names), dtype=torch.bool, device=self.logits.device)
        else:
            m = torch.stack([item_masks[n].to(torch.bool) for n in self.names], dim=1)
        return masked_softmax(self.logits.expand(m.shape[0], -1), m)

    def forward(
        self, scores: Mapping[str, torch.Tensor], item_masks: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        missing = [n for n in self.names if n not in scores]
        if missing:
            raise KeyError(f"score fusion got no scores for {missing}; it was built for {self.names}")
        stacked = torch.stack([scores[n] for n in self.names], dim=-1)       # [B, N, M]
        w = self.item_weights(item_masks, stacked.shape[1])                  # [N, M]
        return (stacked * w[None]).sum(dim=-1)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """0-based rank of every item per row (0 = best); ties broken by item index."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(scores.shape[0])[:, None]
    ranks[rows, order] = np.arange(scores.shape[1])[None, :]
    return ranks


def reciprocal_rank_fusion(
    score_mats: Sequence[np.ndarray | torch.Tensor],
    k: float = 60.0,
    item_masks: Sequence[np.ndarray | None] | None = None,
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """Reciprocal rank fusion (Cormack et al., SIGIR 2009): ``sum_m w_m / (k + rank_m(i))``.

    ``item_masks[m]`` [N] bool: a modality never votes for items it has no content
    for (their contribution is 0, not a made-up rank). Ranks are 1-based.
    """
    mats = [_as_numpy(s).astype(np.float64) for s in score_mats]
    if not mats:
        raise ValueError("reciprocal_rank_fusion needs at least one score matrix")
    weights = list(weights) if weights is not None else [1.0] * len(mats)
    out = np.zeros_like(mats[0])
    for i, s in enumerate(mats):
        contrib = weights[i] / (k + 1.0 + _ranks(s))
        if item_masks is not None and item_masks[i] is not None:
            contrib = contrib * np.asarray(item_masks[i], dtype=bool)[None, :]
        out += contrib
    return out


def borda_fusion(
    score_mats: Sequence[np.ndarray | torch.Tensor],
    item_masks: Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """Borda count: each ranking gives ``(N-1-rank)/(N-1)`` points; averaged over the voters
    that have content for the item (so a missing modality neither helps nor hurts it)."""
    mats = [_as_numpy(s).astype(np.float64) for s in score_mats]
    if not mats:
        raise ValueError("borda_fusion needs at least one score matrix")
    n = mats[0].shape[1]
    total = np.zeros_like(mats[0])
    voters = np.zeros(n)
    for i, s in enumerate(mats):
        pts = (n - 1 - _ranks(s)) / max(n - 1, 1)
        present = np.ones(n, dtype=bool)
        if item_masks is not None and item_masks[i] is not None:
            present = np.asarray(item_masks[i], dtype=bool)
        total += pts * present[None, :]
        voters += present
    return total / np.maximum(voters, 1)[None, :]
