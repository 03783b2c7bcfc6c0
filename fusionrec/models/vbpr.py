"""VBPR (He & McAuley, AAAI 2016), following MMRec's ``src/models/vbpr.py``.

Item vector = ``[ID embedding (d) ; Linear(content features) (d)]``, user vector
a free ``2d`` embedding, score the inner product, loss BPR plus MMRec's
``EmbLoss`` regulariser (plain Frobenius norms / batch size, see
:mod:`fusionrec.models.bpr`). As in MMRec the content is the concatenation of
all modalities (text first); the difference is that an item lacking a modality
has a zero block there (its mask is False) instead of MMRec's mean vector.
Initialisation follows MMRec: Xavier-uniform embeddings, Xavier-normal linear
weights, zero bias.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.models.base import RecModel, require
from fusionrec.models.bpr import bpr_loss, embedding_norm_reg
from fusionrec.models.modal_inputs import ModalInputs


class VBPR(RecModel):
    """Visual (here: any-modality) BPR, the classic multimodal MF reference."""

    name = "vbpr"
    trainable = True
    batch_kind = "pairwise"

    def __init__(self, data: TrainData, params: dict[str, Any] | None = None) -> None:
        super().__init__(data, params)
        dim = int(require(self.params, "embedding_size", self.name))
        self.reg_weight = float(self.param("reg_weight", 0.0))
        self.dropout = float(self.param("dropout", 0.0))
        # text first, like MMRec's torch.cat((t_feat, v_feat))
        wanted = self.param("modalities")
        if wanted in (None, "all"):
            order = {"text": 0, "image": 1}
            wanted = sorted(data.modalities, key=lambda n: (order.get(data.modalities[n].kind, 2), n))
        self.inputs = ModalInputs(data, wanted, self.param("feature_norm", "none"), self.name)
        in_dim = sum(self.inputs.dims.values())
        self.u_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, 2 * dim)))
        self.i_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, dim)))
        self.item_linear = nn.Linear(in_dim, dim)
        nn.init.xavier_normal_(self.item_linear.weight)
        nn.init.zeros_(self.item_linear.bias)

    def _item_vectors(self) -> torch.Tensor:
        content = self.item_linear(self.inputs.concatenated())
        return torch.cat([self.i_embedding, content], dim=1)

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        items = self._item_vectors()
        users = self.u_embedding
        if self.dropout:
            users, items = F.dropout(users, self.dropout), F.dropout(items, self.dropout)
        u = users[batch["user"]]
        p = items[batch["pos_item"]]
        n = items[batch["neg_item"]]
        loss = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
        if self.reg_weight:
            loss = loss + self.reg_weight * embedding_norm_reg(u, p, n)
        return loss

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        return self.u_embedding[users] @ self._item_vectors().T

    @torch.no_grad()
    def user_embeddings(self) -> torch.Tensor:
        return self.u_embedding.detach().clone()

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        return self._item_vectors().detach()
