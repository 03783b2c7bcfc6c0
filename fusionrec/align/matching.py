"""Matching alignment: cross-attention between token sets of two modalities.

In the style of stacked cross attention for image-text matching (SCAN, Lee et
al. ECCV 2018): each token of one set attends over the tokens of the other;
the match score of the pair is the mean cosine between each token and what it
attended to, taken in both directions. Unlike InfoNCE on pooled vectors, this
can match *parts* (a poster's colour region with a word in the overview).

A pooled pretrained feature vector is turned into a small token set by
:class:`FeatureTokenizer` (a learned linear map to ``n_tokens`` tokens); a set
of per-modality vectors of one item is itself a token set.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FeatureTokenizer(nn.Module):
    """``[B, in_dim] -> [B, n_tokens, dim]`` with one learned linear map."""

    def __init__(self, in_dim: int, n_tokens: int, dim: int) -> None:
        super().__init__()
        self.n_tokens = n_tokens
        self.dim = dim
        self.linear = nn.Linear(in_dim, n_tokens * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], self.n_tokens, self.dim)


class CrossAttentionMatcher(nn.Module):
    """Scores how well token set ``a`` matches token set ``b`` via cross-attention.

    ``score(a, b)`` -> [B] for aligned pairs; ``score_matrix(a, b)`` -> [B, B]
    for every pair in the batch (used for the contrastive matching loss).
    Masks are bool [B, T] with True = the token exists (absent modalities are
    never attended to).
    """

    def __init__(self, dim: int, temperature: float = 0.1, attn_temperature: float | None = None) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.temperature = temperature
        self.attn_scale = attn_temperature or math.sqrt(dim)

    def _directional(
        self, a: torch.Tensor, b: torch.Tensor, a_mask: torch.Tensor | None, b_mask: torch.Tensor | None
    ) -> torch.Tensor:
        # a: [Ba, Ta, d], b: [Bb, Tb, d] -> scores [Ba, Bb]: each a-token attends over b's tokens and
        # is compared (cosine) with what it attended to, ``att = sum_t w_t b_t``. ``att`` is never
        # materialised ([Bb, Ba*Ta, d] was the whole cost of this loss): ``a . att = sum_t w_t (a . b_t)``
        # and ``|att|^2 = w^T (B B^T) w`` with the [Tb, Tb] Gram matrix of each b-set, so every
        # tensor is [Ba*Ta, Bb, Tb] -- d times smaller -- and the result is the same.
        ba, ta, d = a.shape
        bb, tb, _ = b.shape
        q = self.q(a).reshape(ba * ta, d)
        k = self.k(b).reshape(bb * tb, d)
        logits = (q @ k.T).view(ba * ta, bb, tb) / self.attn_scale
        if b_mask is not None:
            logits = logits.masked_fill(~b_mask[None, :, :], float("-inf"))
        attn = torch.nan_to_num(torch.softmax(logits, dim=-1), nan=0.0)  # a b-set with no tokens at all
        a_unit = F.normalize(a.reshape(ba * ta, d), dim=-1)
        dots = (a_unit @ b.reshape(bb * tb, d).T).view(ba * ta, bb, tb)   # a_token . b_token
        num = (attn * dots).sum(-1)                                       # [Ba*Ta, Bb]
        gram = torch.bmm(b, b.transpose(1, 2))                            # [Bb, Tb, Tb]
        sq = torch.einsum("xjt,jts,xjs->xj", attn, gram, attn)
        # F.normalize's rule: divide by max(|att|, 1e-12)
        cos = (num / sq.clamp_min(1e-24).sqrt()).view(ba, ta, bb).transpose(1, 2)   # [Ba, Bb, Ta]
        if a_mask is None:
            return cos.mean(dim=-1)
        w = a_mask[:, None, :].float()
        return (cos * w).sum(-1) / w.sum(-1).clamp_min(1.0)

    def score_matrix(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        a_mask: torch.Tensor | None = None,
        b_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Symmetric match scores in [-1, 1] for every (row of a, row of b) pair: [Ba, Bb]."""
        return 0.5 * (self._directional(a, b, a_mask, b_mask) + self._directional(b, a, b_mask, a_mask).T)

    def score(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        a_mask: torch.Tensor | None = None,
        b_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Match score of each aligned pair (row i of a with row i of b): [B]."""
        # diagonal computed pair by pair would be cheaper, but batches here are small
        # and one code path keeps the two methods consistent.
        scores = []
        for i in range(a.shape[0]):
            am = None if a_mask is None else a_mask[i : i + 1]
            bm = None if b_mask is None else b_mask[i : i + 1]
            scores.append(self.score_matrix(a[i : i + 1], b[i : i + 1], am, bm)[0, 0])
        return torch.stack(scores)

    def loss(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        a_mask: torch.Tensor | None = None,
        b_mask: torch.Tensor | None = None,
        row_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Contrastive matching loss: each set must match its own partner best in the batch.

        ``row_mask`` [B] keeps only pairs where both sides exist.
        """
        if row_mask is not None:
            a, b = a[row_mask], b[row_mask]
            a_mask = None if a_mask is None else a_mask[row_mask]
            b_mask = None if b_mask is None else b_mask[row_mask]
        if a.shape[0] < 2:
            return (a.sum() + b.sum()) * 0.0
        logits = self.score_matrix(a, b, a_mask, b_mask) / self.temperature
        target = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
