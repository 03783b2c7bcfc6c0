"""Multimodal rating regression: rates items from their content, so items never rated in training too.

``content_rating`` predicts::

    r(u, i) = mu + b_u + [w . c_i + keep_i b_i] + (p_u + W_h h_u) . (c_i + keep_i q_i)

* ``c_i`` -- the item's content vector: each modality projected to ``embedding_size``
  and averaged over the modalities the item has (absent ones are masked, not imputed);
* ``b_i``, ``q_i`` -- the item's ID bias and factors, learned on top of content; they
  exist only for items with training ratings (``keep_i = 0`` otherwise) and are dropped
  at random in training (``id_dropout``), so content alone must carry an unseen item;
* ``h_u`` -- the mean (normalised) content features of the user's training items, mapped
  linearly by ``W_h`` (SVD++'s implicit feedback, in content space), so the user side also
  reads the catalogue's content.

Trained on squared error like :class:`~fusionrec.models.rating.BiasedMF`; an item held out
of training is rated from ``mu + b_u + w . c_i + (p_u + W_h h_u) . c_i``, where a
collaborative model could only say ``mu + b_u``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from fusionrec.align import ModalityProjector
from fusionrec.data.dataset import TrainData
from fusionrec.models.modal_inputs import ModalInputs
from fusionrec.models.params import FeatureNorm, Modalities, ModelParams
from fusionrec.models.rating import RatingModel


class ContentRating(RatingModel):
    """Rating regression over user/item IDs and item content (see the module docstring)."""

    name = "content_rating"
    trainable = True
    uses_content = True

    class Params(ModelParams):
        embedding_size: int = Field(64, gt=0, description="width of the factors and the content vectors")
        modalities: Modalities = Field(None, description="item modalities to read (null = all of the data's)")
        feature_norm: FeatureNorm = Field("standard", description="feature normalisation (present rows only)")
        projection: Literal["linear", "mlp"] = Field("linear", description="each modality -> one content vector")
        projection_dropout: float = Field(0.1, ge=0, lt=1, description="dropout inside the projections")
        use_id: bool = Field(True, description="item ID bias and factors on top of content (warm items only)")
        use_history: bool = Field(True, description="add the mean content of the user's training items "
                                                    "to the user vector")
        id_dropout: float = Field(0.2, ge=0, le=1, description="share of item IDs dropped per batch in training "
                                                               "so content alone learns to rate")
        reg_weight: float = Field(0.1, ge=0, description="L2 on the batch's user and item ID factors (per row)")
        bias_reg_weight: float = Field(0.01, ge=0, description="L2 on the batch's user and item ID biases (per row)")
        init_std: float = Field(0.01, gt=0, description="standard deviation of the initial factors")

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        hp = self.hp
        e = hp.embedding_size
        self.inputs = ModalInputs(data, hp.modalities, hp.feature_norm, self.name)
        self.projector = ModalityProjector(self.inputs.dims, e, kind=hp.projection, dropout=hp.projection_dropout)
        self.content_bias = nn.Linear(e, 1)
        self.user_factors = nn.Embedding(self.n_users, e)
        self.user_bias = nn.Embedding(self.n_users, 1)
        nn.init.normal_(self.user_factors.weight, std=hp.init_std)
        nn.init.zeros_(self.user_bias.weight)
        if hp.use_id:
            self.item_factors = nn.Embedding(self.n_items, e)
            self.item_bias = nn.Embedding(self.n_items, 1)
            nn.init.normal_(self.item_factors.weight, std=hp.init_std)
            nn.init.zeros_(self.item_bias.weight)
        rated_items = (self.table.keys % self.n_items).unique()
        warm = torch.zeros(self.n_items, dtype=torch.bool)
        warm[rated_items] = True
        self.register_buffer("warm", warm, persistent=False)
        if hp.use_history:
            # the mean normalised content of each user's training items, computed once (the
            # features are fixed), then mapped linearly: the batch pays for its own users only
            train = data.train.tocsr().astype(np.float32)
            deg = np.maximum(np.asarray(train.sum(1)).ravel(), 1.0)
            raw = self.inputs.concatenated().numpy()
            self.register_buffer("history", torch.from_numpy(np.asarray(train @ raw) / deg[:, None]).float(),
                                 persistent=False)
            self.history_map = nn.Linear(raw.shape[1], e, bias=False)
            nn.init.zeros_(self.history_map.weight)   # starts as plain MF; history earns its weight

    def item_content(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """[len(items) or n_items, e] content vectors: masked mean of the projected modalities
        (zero for an item without any)."""
        feats, masks = (self.inputs.gather(items) if items is not None
                        else (self.inputs.all_features(), self.inputs.all_masks()))
        views = self.projector(feats)
        total = sum(views[n] * masks[n][:, None] for n in self.inputs.names)
        count = sum(masks[n].float() for n in self.inputs.names)
        return total / count.clamp_min(1.0)[:, None]

    def _user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        p = self.user_factors(users)
        return p + self.history_map(self.history[users]) if self.hp.use_history else p

    def predict_raw(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.item_content(items)
        p = self.user_factors(users)
        bu = self.user_bias(users).squeeze(-1)
        user_vec = self._user_vectors(users)
        bias = self.mu + bu + self.content_bias(c).squeeze(-1)
        item_vec = c
        hp = self.hp
        # the content vector is penalised like an ID factor: with features about as wide as the
        # catalogue is long, an unpenalised projection could memorise every warm item
        cb = bias - self.mu - bu
        penalty = (hp.reg_weight * (p.pow(2).sum(-1) + c.pow(2).sum(-1))
                   + hp.bias_reg_weight * (bu.pow(2) + cb.pow(2)))
        if self.hp.use_id:
            keep = self.warm[items].float()
            if self.training and self.hp.id_dropout > 0:
                keep = keep * (torch.rand(len(items), device=keep.device) >= self.hp.id_dropout).float()
            q, bi = self.item_factors(items), self.item_bias(items).squeeze(-1)
            item_vec = c + keep[:, None] * q
            bias = bias + keep * bi
            penalty = penalty + keep * (hp.reg_weight * q.pow(2).sum(-1) + hp.bias_reg_weight * bi.pow(2))
        return bias + (user_vec * item_vec).sum(-1), penalty.mean()

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        users = torch.as_tensor(users, dtype=torch.long, device=self.mu.device)
        content = self.item_content()
        user_vec = self._user_vectors(users)
        item_vec, item_bias = content, self.content_bias(content).squeeze(-1)
        if self.hp.use_id:
            keep = self.warm.float()
            item_vec = content + keep[:, None] * self.item_factors.weight
            item_bias = item_bias + keep * self.item_bias.weight.squeeze(-1)
        scores = self.mu + self.user_bias(users) + item_bias[None, :] + user_vec @ item_vec.T
        return scores.clamp(self.low, self.high)
