"""two_tower's training step for catalogues above ``full_softmax_max_items``: batch-local, linear in the batch.

Below the threshold a step computes the item tower for the whole catalogue, the users'
mean histories with one sparse product over all training events, and (``full_softmax``)
a ``[B, n_items]`` score matrix: exact, and cheap for a few thousand items. Above it a
step touches only the items it needs:

* the candidates: the batch's positives (in-batch negatives; under DDP every rank's) plus
  ``sampled_negatives`` drawn by a :class:`~fusionrec.models.sampled_softmax.NegativeSampler`;
  the softmax over them is logQ-corrected by each candidate's expected count
  (:func:`~fusionrec.models.sampled_softmax.expected_log_count`) -- ``[B, B + K]`` scores;
* the users' histories: a random subset of at most ``history_len`` training items per user,
  redrawn every epoch (for every history encoder, ``mean`` included), so the user tower
  reads ``B x history_len`` item vectors instead of a product over every event;
* the item tower runs once over the distinct ids among these (positives, negatives,
  history items), and the ID tables get sparse gradients stepped by SparseAdam
  (:mod:`fusionrec.train.sparse_optim`): no per-step pass over the catalogue anywhere.

Inference (evaluation, export) is unchanged: full item vectors, full histories.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fusionrec.models.bpr import bpr_loss, embedding_norm_reg
from fusionrec.models.sampled_softmax import (
    NegativeSampler,
    candidate_softmax_loss,
    expected_log_count,
)
from fusionrec.train.distributed import gather_ids


def sampled_history(train_indptr: np.ndarray, train_indices: np.ndarray, length: int,
                    rng: np.random.Generator) -> np.ndarray:
    """[n_users, length] a random subset of at most ``length`` training items per user (-1 padded).

    Vectorised (one sort of the events by a random key within each user), so redrawing it every
    epoch costs O(events log events), not a Python loop over millions of users.
    """
    n_users = len(train_indptr) - 1
    rows = np.repeat(np.arange(n_users), np.diff(train_indptr))
    order = np.lexsort((rng.random(len(rows)), rows))
    rank = np.arange(len(rows)) - train_indptr[rows[order]]
    keep = rank < length
    hist = np.full((n_users, length), -1, dtype=np.int64)
    hist[rows[order][keep], rank[keep]] = train_indices[order][keep]
    return hist


def to_local(uniq: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Positions of global item ``ids`` in the sorted ``uniq`` (-1 stays -1)."""
    pos = torch.searchsorted(uniq, ids.clamp_min(0))
    return torch.where(ids >= 0, pos, torch.full_like(ids, -1))


class BatchLocalTraining:
    """Mixed into :class:`~fusionrec.models.two_tower.TwoTower`: the above-threshold step."""

    def _init_batch_local(self, item_counts: np.ndarray) -> None:
        hp = self.hp
        self.neg_sampler = (NegativeSampler(item_counts, hp.negative_sampler)
                            if hp.sampled_negatives > 0 else None)

    def _resample_local_history(self) -> None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        hist = sampled_history(self._train.indptr, self._train.indices, self.hist.shape[1],
                               np.random.default_rng(seed))
        self.hist.copy_(torch.from_numpy(hist))

    def _item_vectors_for(self, items: torch.Tensor, training: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        """[len(items), D] item-tower outputs of the given global ids, plus the pieces the losses need."""
        extras: dict[str, Any] = {}
        keep = self.warm[items].float()
        if training and self.id_dropout > 0:
            keep = keep * (torch.rand(len(items)) >= self.id_dropout).float()
        if self.use_id:
            raw = self.item_id(items)  # an embedding lookup: a sparse gradient
            id_vec = raw * keep[:, None]
            extras.update(id=raw, id_vec=id_vec)
        if self.use_content:
            views, masks, fused = self._content(items, training)
            extras.update(views=views, masks=masks, content=fused)
        if self.blocks:
            id_part = id_vec if self.use_id else torch.zeros(len(items), self.dim)
            return torch.cat([id_part, fused], dim=1), extras
        if self.use_id and self.use_content:
            return id_vec + fused, extras
        return (id_vec if self.use_id else fused), extras

    def _batch_local_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, pos = batch["user"], batch["pos_item"]
        if getattr(self, "text_tower", None) is not None:
            self.text_tower.focus(pos)
        bpr = self.loss_name == "bpr"
        if bpr:
            cand, offset, negs = pos, 0, batch["neg_item"]
        else:
            cand, offset = gather_ids(pos)  # in-batch candidates, every rank's under DDP
            negs = self.neg_sampler.sample(self.hp.sampled_negatives) if self.neg_sampler is not None else None
        hist = self.hist[users] if self.history != "none" else None
        parts = [cand] + ([negs] if negs is not None else []) + ([hist[hist >= 0]] if hist is not None else [])
        uniq = torch.unique(torch.cat(parts))
        vecs, extras = self._item_vectors_for(uniq, training=True)
        pos_l = to_local(uniq, pos)
        u = self._local_user_vectors(users, vecs, uniq, hist, pos)
        if bpr:
            both = torch.cat([pos_l, to_local(uniq, negs)])
            loss = self._local_bpr(u, both, torch.cat([pos, negs]), vecs, extras)
        else:
            cand_ids = cand if negs is None else torch.cat([cand, negs])
            target = torch.arange(len(users)) + offset
            log_q = (expected_log_count(cand_ids, self.log_q, len(cand), self.neg_sampler,
                                        len(negs) if negs is not None else 0) if self.logq else None)
            losses = []
            for scores in self._local_scores(u, to_local(uniq, cand_ids), cand_ids, vecs, extras):
                losses.append(candidate_softmax_loss(scores / self.temperature, cand_ids, pos, target, log_q))
            loss = torch.stack(losses).mean()
        if self.align_weight and self.use_content:
            loss = loss + self.align_weight * self._alignment_loss(pos_l, extras, warm=self.warm[uniq])
        return loss

    def _local_scores(self, u: torch.Tensor, local: torch.Tensor, ids: torch.Tensor, vecs: torch.Tensor,
                      extras: dict[str, Any]) -> list[torch.Tensor]:
        mats = self._raw_score_matrices(u, local, vecs, extras)
        bias = self._item_bias(ids)
        return mats if bias is None else [m + bias[None, :] for m in mats]

    def _local_bpr(self, u: torch.Tensor, both_l: torch.Tensor, both: torch.Tensor, vecs: torch.Tensor,
                   extras: dict[str, Any]) -> torch.Tensor:
        n = len(u)
        rows = torch.arange(n)
        losses = [bpr_loss(s[rows, rows], s[rows, rows + n])
                  for s in self._local_scores(u, both_l, both, vecs, extras)]
        loss = torch.stack(losses).mean()
        if self.reg_weight:
            loss = loss + self.reg_weight * embedding_norm_reg(u, vecs[both_l[:n]], vecs[both_l[n:]])
        return loss

    def _local_user_vectors(self, users: torch.Tensor, vecs: torch.Tensor, uniq: torch.Tensor,
                            hist: torch.Tensor | None, pos: torch.Tensor) -> torch.Tensor:
        """The user tower over the batch's sampled histories (local item indices), target removed."""
        new, u = self._user_id_part(users)
        if hist is not None:
            pos_l = to_local(uniq, pos)
            h = self._encode_history(users, vecs, exclude=pos_l, hist=to_local(uniq, hist))
            if new is not None and new.any():
                h = h.clone()
                first = to_local(uniq, self._first_events(users[new], pos, new))
                h[new] = self._encode_history(None, vecs, hist=first)
            h = self.history_proj(h)
            u = h if u is None else u + h
        codes = self.user_codes[users] if self.user_attr is not None else None
        return self._finish_user(u, codes)


__all__ = ["BatchLocalTraining", "sampled_history", "to_local"]
