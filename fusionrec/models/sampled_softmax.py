"""Sampled softmax with logQ correction: a softmax loss whose cost does not grow with the catalogue.

A full softmax scores every user of a batch against every item: a ``[B, n_items]`` matrix per
step, fine for a few thousand items and impossible for millions. The sampled softmax scores each
user against a small candidate set instead -- the batch's own positives (in-batch negatives)
and/or ``K`` items drawn by a :class:`NegativeSampler` -- so a step costs ``B x (B + K)`` scores.

The sample is biased: popular items turn up as in-batch negatives far more often than rare ones,
and a popularity sampler does the same on purpose. Without a correction the model learns to push
popular items down. The **logQ correction** (Bengio & Senecal 2008; Jean et al. 2015; Yi et al.,
RecSys 2019) subtracts from each candidate's logit the log of its *expected count* in the
candidate set, ``log Q(i)``; the corrected sampled softmax is then a consistent estimate of the
full one. With in-batch positives and ``K`` sampled negatives mixed (Yang et al., WWW 2020) an item
is expected ``B p_batch(i) + K p_sampler(i)`` times, where ``p_batch`` is the item's share of the
training events (the pairs sampler draws events uniformly) and ``p_sampler`` the sampler's
probability: :func:`expected_log_count`.

Candidates equal to a row's positive ("accidental hits") are masked out, except the positive's
own column. Which models use it: two_tower and mmgraph switch to it above their
``full_softmax_max_items``; a sequential model would build the same ``user`` rows from its
sequence encoder's last state and call :func:`sampled_softmax_loss` (shared sampled negatives) or
:func:`candidate_softmax_loss` (in-batch plus sampled) with its next-item targets.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

NEGATIVE_SAMPLERS = ("uniform", "popularity")


class NegativeSampler(torch.nn.Module):
    """Draws item ids i.i.d. from a fixed distribution over the catalogue; O(K log n) a draw.

    ``uniform``: every item equally likely. ``popularity``: proportional to
    ``(count + 1) ** alpha`` (word2vec's 0.75 by default), closer to the in-batch distribution,
    so the negatives are harder. Drawing inverts a precomputed CDF with ``searchsorted``: no
    per-step pass over the catalogue (``torch.multinomial`` would rebuild it every call).
    A module with non-persistent buffers, so its tables follow the model to its device (and stay
    out of the saved weights: they are rebuilt from the training counts).
    """

    def __init__(self, item_counts: np.ndarray, kind: str = "uniform", alpha: float = 0.75) -> None:
        if kind not in NEGATIVE_SAMPLERS:
            raise ValueError(f"negative sampler {kind!r}: choose one of {NEGATIVE_SAMPLERS}")
        super().__init__()
        counts = np.asarray(item_counts, dtype=np.float64)
        self.n_items = len(counts)
        self.kind = kind
        if kind == "uniform":
            prob = np.full(self.n_items, 1.0 / max(self.n_items, 1))
        else:
            w = np.power(counts + 1.0, alpha)
            prob = w / w.sum()
        self.register_buffer("log_prob_all", torch.from_numpy(np.log(prob).astype(np.float32)), persistent=False)
        cdf = np.cumsum(prob)
        cdf[-1] = 1.0  # guard against rounding: every u in [0, 1) lands on an item
        self.register_buffer("_cdf", torch.from_numpy(cdf), persistent=False)

    def sample(self, k: int) -> torch.Tensor:
        """``k`` item ids (with replacement) from torch's global RNG, so the trainer's seed fixes them."""
        if self.kind == "uniform":
            return torch.randint(0, self.n_items, (k,), device=self._cdf.device)
        u = torch.rand(k, dtype=torch.float64, device=self._cdf.device)
        return torch.searchsorted(self._cdf, u, right=True).clamp_max(self.n_items - 1)

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """log p(item) under this sampler."""
        return self.log_prob_all[ids]


def expected_log_count(ids: torch.Tensor, log_p_batch: torch.Tensor | None, n_batch: int,
                       sampler: NegativeSampler | None, n_sampled: int) -> torch.Tensor:
    """log of how often each item of ``ids`` is expected in the candidate set: ``log(B p_batch + K p_s)``.

    ``log_p_batch``: [n_items] log share of the training events (None = no in-batch candidates);
    ``sampler`` / ``n_sampled``: the sampled negatives (None / 0 = none). At least one must be given.
    """
    terms = []
    if log_p_batch is not None and n_batch > 0:
        terms.append(log_p_batch[ids] + math.log(n_batch))
    if sampler is not None and n_sampled > 0:
        terms.append(sampler.log_prob(ids) + math.log(n_sampled))
    if not terms:
        raise ValueError("expected_log_count: no in-batch candidates and no sampled negatives")
    return terms[0] if len(terms) == 1 else torch.logaddexp(terms[0], terms[1])


def candidate_softmax_loss(logits: torch.Tensor, cand_ids: torch.Tensor, pos_ids: torch.Tensor,
                           target: torch.Tensor, log_q: torch.Tensor | None) -> torch.Tensor:
    """Softmax over a candidate set shared by the batch that holds every row's positive (in-batch).

    ``logits`` [B, C] scores of each row against the candidates ``cand_ids`` [C] (already scaled by
    1 / temperature, bias added); ``target`` [B] the column of each row's positive ``pos_ids`` [B];
    ``log_q`` [C] the candidates' expected log counts (:func:`expected_log_count`; None = no
    correction). Other columns holding the row's positive item (accidental hits) are masked.
    """
    if log_q is not None:
        logits = logits - log_q[None, :]
    hit = pos_ids[:, None] == cand_ids[None, :]
    hit[torch.arange(len(pos_ids), device=hit.device), target] = False
    return F.cross_entropy(logits.masked_fill(hit, float("-inf")), target)


def sampled_softmax_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor, pos_ids: torch.Tensor,
                         neg_ids: torch.Tensor, log_q_pos: torch.Tensor | None = None,
                         log_q_neg: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax of each row's positive against ``K`` negatives shared by the batch: a [B, 1 + K] matrix.

    ``pos_logits`` [B] and ``neg_logits`` [B, K] are scaled scores; ``log_q_pos`` [B] / ``log_q_neg`` [K]
    the expected log counts of the positives and negatives under the sampler (both corrected, as
    TensorFlow's ``sampled_softmax_loss`` does; None = no correction, right when the sampler is
    uniform, since a constant shift of every logit leaves the softmax unchanged). A negative equal to
    the row's positive is masked.
    """
    if log_q_pos is not None:
        pos_logits = pos_logits - log_q_pos
    if log_q_neg is not None:
        neg_logits = neg_logits - log_q_neg[None, :]
    neg_logits = neg_logits.masked_fill(neg_ids[None, :] == pos_ids[:, None], float("-inf"))
    logits = torch.cat([pos_logits[:, None], neg_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(pos_ids), dtype=torch.long, device=logits.device))


def uses_sampled_softmax(n_items: int, full_softmax_max_items: int) -> bool:
    """True above the configured catalogue size (the models' ``full_softmax_max_items``; 0 = always)."""
    return n_items > full_softmax_max_items


__all__ = ["NEGATIVE_SAMPLERS", "NegativeSampler", "candidate_softmax_loss", "expected_log_count",
           "sampled_softmax_loss", "uses_sampled_softmax"]
