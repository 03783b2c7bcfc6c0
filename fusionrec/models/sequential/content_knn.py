"""Content-kNN over the latest items: the content baseline for next-item recommendation.

A user's score for an item is its mean content cosine to the user's ``last_n`` most
recent known items (time order, :class:`~fusionrec.models.sequential.base.HistoryMixin`),
per modality, averaged over the modalities the item has (the weighting
:class:`~fusionrec.models.content.ContentKNN` uses). Nothing is learned; any item with
content gets a score, which makes it the reference for items never seen in training.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import Field

from fusionrec.data.dataset import TrainData
from fusionrec.models.base import RecModel
from fusionrec.models.modal_inputs import ModalInputs
from fusionrec.models.params import FeatureNorm, Modalities, ModelParams
from fusionrec.models.sequential.base import HistoryMixin


class SeqContentKNN(HistoryMixin, RecModel):
    """Mean content similarity to the user's ``last_n`` latest items."""

    name = "seq_content_knn"
    trainable = False
    batch_kind = "user"
    uses_content = True

    class Params(ModelParams):
        modalities: Modalities = Field(None, description="item modalities to compare (null = all of "
                                                         "data.modalities)")
        feature_norm: FeatureNorm = Field("center_l2", description="feature normalisation before the cosine")
        last_n: int = Field(5, ge=1, description="latest history items compared with each candidate")

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        self.inputs = ModalInputs(data, self.hp.modalities, self.hp.feature_norm, self.name)
        self._init_histories(data)

    def fit(self, data: TrainData) -> None:
        """Nothing to learn: the features are the model."""

    def _scores(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        n = self.hp.last_n
        rows = torch.zeros(len(histories), self.n_items)
        for r, h in enumerate(histories):
            tail = np.ascontiguousarray(np.asarray(h, dtype=np.int64)[-n:])
            if len(tail):
                rows[r, torch.from_numpy(tail)] += 1.0 / len(tail)
        total = torch.zeros(len(histories), self.n_items)
        weight = torch.zeros(len(histories), self.n_items)
        for name in self.inputs.names:
            feats, mask = self.inputs.features(name), self.inputs.mask(name).float()
            # mean over the latest items that have this modality, for candidates that have it
            have = (rows * mask[None, :]).sum(1, keepdim=True)
            sims = (rows * mask[None, :]) @ feats @ feats.T / have.clamp_min(1e-12)
            present = (have > 0).float() * mask[None, :]
            total += sims * present
            weight += present
        return total / weight.clamp_min(1e-12)

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        return self._scores([self.history(int(u)) for u in users.tolist()])

    @torch.no_grad()
    def predict_from_history(self, item_sequence: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``[n_items]`` scores after the history ``item_sequence`` (item indices, oldest first)."""
        return self._scores([np.asarray(item_sequence, dtype=np.int64)])[0]
