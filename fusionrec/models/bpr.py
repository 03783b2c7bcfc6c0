"""BPR-MF (Rendle et al., UAI 2009), matching MMRec's ``src/models/bpr.py``.

Scores are ``user_emb @ item_emb.T``. The loss is MMRec's: the BPR term
``-log(1e-10 + sigmoid(s_pos - s_neg))`` averaged over the batch plus
``reg_weight * (||U_b|| + ||P_b|| + ||N_b||) / B`` where the norms are plain
(not squared) Frobenius norms of the batch embeddings -- this is MMRec's
``EmbLoss``; using the squared norm instead changes the meaning of
``reg_weight`` by orders of magnitude, so we keep MMRec's definition to make
its reg grid (2.0 ... 1e-5) transfer. Embeddings start from Xavier-normal
(MMRec's ``xavier_normal_initialization``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.models.base import RecModel
from fusionrec.models.params import ModelParams


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor, gamma: float = 1e-10) -> torch.Tensor:
    """MMRec/RecBole ``BPRLoss``: mean of ``-log(gamma + sigmoid(pos - neg))``."""
    return -torch.log(gamma + torch.sigmoid(pos_scores - neg_scores)).mean()


def embedding_norm_reg(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec ``EmbLoss``: sum of Frobenius norms (not squared) divided by the batch size."""
    total = embeddings[-1].new_zeros(())
    for emb in embeddings:
        total = total + torch.linalg.vector_norm(emb)
    return total / embeddings[-1].shape[0]


class BPRMF(RecModel):
    """Matrix factorisation trained with the pairwise BPR loss."""

    name = "bpr"
    trainable = True
    batch_kind = "pairwise"

    class Params(ModelParams):
        # MMRec's defaults (src/configs/model/BPR.yaml + overall.yaml). MMRec grid-searches reg_weight
        # over [2.0, 1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5]; 0.1 was chosen on VALID for Amazon-Baby
        # (docs/benchmarks/baselines.md).
        embedding_size: int = Field(64, gt=0, description="width of the user and item embeddings")
        reg_weight: float = Field(0.1, ge=0, description="weight of MMRec's EmbLoss (plain norms of the batch "
                                                         "embeddings / batch size)")

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        dim = self.hp.embedding_size
        self.reg_weight = self.hp.reg_weight
        self.user_embedding = nn.Embedding(self.n_users, dim)
        self.item_embedding = nn.Embedding(self.n_items, dim)
        nn.init.xavier_normal_(self.user_embedding.weight)
        nn.init.xavier_normal_(self.item_embedding.weight)

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        u = self.user_embedding(batch["user"])
        p = self.item_embedding(batch["pos_item"])
        n = self.item_embedding(batch["neg_item"])
        loss = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
        if self.reg_weight:
            loss = loss + self.reg_weight * embedding_norm_reg(u, p, n)
        return loss

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_embedding(users) @ self.item_embedding.weight.T

    def user_embeddings(self) -> torch.Tensor:
        return self.user_embedding.weight.detach()

    def item_embeddings(self) -> torch.Tensor:
        return self.item_embedding.weight.detach()
