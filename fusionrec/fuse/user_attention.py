"""User-conditioned attention fusion that scores every user x item pair at once.

The same item can weigh its poster more for one user and its description more for
another: ``a_m(u, i) = softmax_m(prior_m(i) + <W_q u, W_k h_{i,m}> / sqrt(d))`` over the
item's present modalities, where ``prior_m(i)`` is the item-side additive attention of
:class:`~fusionrec.fuse.feature.AttentionFusion`. The item vector is then
``v(u, i) = base_i + sum_m a_m(u, i) h_{i,m}`` (``base_i`` e.g. the item's ID embedding).

Why a dot-product user term rather than the additive ``tanh(W h + U u)`` form: the
additive form needs a ``[users, items, modalities, hidden]`` tensor for every pair
(an in-batch softmax over 2048 x 2048 pairs would be gigabytes), while the bilinear
term is one einsum to ``[users, items, modalities]``. Cosine scores need
``|v(u, i)|``, which is a quadratic form of the weights with a per-item Gram matrix of
the blocks, so they never materialise ``v(u, i)`` either.

``v(u, i)`` depends on the user, so these scores are not one inner product: a model
using this fusion is served by full scoring, not by an ANN index.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from fusionrec.fuse.feature import (
    AttentionFusion,
    ModalityFusion,
    masked_softmax,
    stack_views,
)


class UserConditionedAttention(ModalityFusion):
    """``fusion(views, masks)`` = item-side attention; ``pair_scores(user, ...)`` = every user x item pair."""

    def __init__(self, names: list[str], dim: int, hidden: int | None = None) -> None:
        super().__init__(names, dim)
        self.prior = AttentionFusion(names, dim, hidden)
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        # the user term starts at zero: training begins from the item-side attention and
        # learns how much each user shifts it (the gradient of W_q is not zero: k(h) u^T)
        nn.init.zeros_(self.query.weight)

    def forward(self, views, masks=None, user=None) -> torch.Tensor:
        x, m = stack_views(self.names, views, masks)
        logits = self.prior.logits(x)
        if user is not None:  # row-aligned pairs: user b with item b
            logits = logits + (self.query(user)[:, None, :] * self.key(x)).sum(-1) / math.sqrt(self.dim)
        w = masked_softmax(logits, m)
        return (w[..., None] * x).sum(dim=1)

    def pair_weights(self, user: torch.Tensor, views: Mapping[str, torch.Tensor],
                     masks: Mapping[str, torch.Tensor] | None) -> torch.Tensor:
        """[B, N, M] weights of every user (rows of ``user`` [B, d]) for every item (rows of the views)."""
        x, m = stack_views(self.names, views, masks)
        logits = self.prior.logits(x)[None] + torch.einsum(
            "bd,nmd->bnm", self.query(user), self.key(x)) / math.sqrt(self.dim)
        return masked_softmax(logits, m[None].expand_as(logits), dim=2)

    def pair_scores(self, user: torch.Tensor, views: Mapping[str, torch.Tensor],
                    masks: Mapping[str, torch.Tensor] | None, base: torch.Tensor | None = None,
                    cosine: bool = True, chunk: int = 256) -> torch.Tensor:
        """[B, N] scores ``<u, v(u, i)>`` (divided by both norms when ``cosine``), in user chunks."""
        x, m = stack_views(self.names, views, masks)
        x = x * m[..., None]
        if cosine:
            gram = torch.einsum("nmd,nkd->nmk", x, x)                                   # [N, M, M]
            if base is not None:
                cross = torch.einsum("nmd,nd->nm", x, base)                             # [N, M]
                base_sq = (base * base).sum(-1)                                         # [N]
        out = []
        for start in range(0, user.shape[0], chunk):
            u = user[start: start + chunk]
            a = self.pair_weights(u, views, masks)                                      # [b, N, M]
            per_mod = torch.einsum("bd,nmd->bnm", u, x)
            score = (a * per_mod).sum(-1)
            if base is not None:
                score = score + u @ base.T
            if cosine:
                sq = torch.einsum("bnm,nmk,bnk->bn", a, gram, a)
                if base is not None:
                    sq = sq + 2 * (a * cross[None]).sum(-1) + base_sq[None]
                score = score / (sq.clamp_min(1e-12).sqrt() * u.norm(dim=-1, keepdim=True).clamp_min(1e-12))
            out.append(score)
        return torch.cat(out, dim=0)


__all__ = ["UserConditionedAttention"]
