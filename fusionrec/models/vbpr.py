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

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.models.base import RecModel
from fusionrec.models.bpr import bpr_loss, embedding_norm_reg
from fusionrec.models.modal_inputs import ModalInputs
from fusionrec.models.params import FeatureNorm, Modalities, ModelParams


class VBPR(RecModel):
    """Visual (here: any-modality) BPR, the classic multimodal MF reference."""

    name = "vbpr"
    trainable = True
    batch_kind = "pairwise"
    uses_content = True

    class Params(ModelParams):
        # MMRec's defaults (src/configs/model/VBPR.yaml + overall.yaml). With raw (unnormalised)
        # features the content half of the item vector can be huge (lastfm2k VGGish rows have norm
        # ~1500), and a strong regulariser keeps BPR from saturating: on lastfm2k (text + VGGish) valid
        # recall@20 after ~70 epochs was 0.21 with reg_weight 1e-3 but 0.34 with 1.0. Re-tune on VALID.
        embedding_size: int = Field(64, gt=0, description="width of the ID and the content halves of an item "
                                                          "vector (users get twice this)")
        reg_weight: float = Field(1.0, ge=0, description="weight of MMRec's EmbLoss on the batch vectors")
        dropout: float = Field(0.0, ge=0, lt=1, description="dropout on user and item vectors in training")
        modalities: Modalities = Field(None, description="item modalities to concatenate (null = all of "
                                                         "data.modalities, text first)")
        feature_norm: FeatureNorm = Field("none", description="feature normalisation; none feeds raw features "
                                                              "like MMRec")

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        dim = self.hp.embedding_size
        self.reg_weight = self.hp.reg_weight
        self.dropout = self.hp.dropout
        # text first, like MMRec's torch.cat((t_feat, v_feat))
        wanted = self.hp.modalities
        if wanted is None:
            order = {"text": 0, "image": 1}
            wanted = sorted(data.modalities, key=lambda n: (order.get(data.modalities[n].kind, 2), n))
        self.inputs = ModalInputs(data, wanted, self.hp.feature_norm, self.name)
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
