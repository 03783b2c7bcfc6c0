"""Most-popular baseline: every user gets the items ranked by training frequency."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fusionrec.data.dataset import TrainData
from fusionrec.models.base import RecModel


class Popularity(RecModel):
    """Score of item ``j`` = number of training users who interacted with ``j``.

    The counts live in a persistent buffer so a saved model (safetensors)
    restores them without refitting.
    """

    name = "pop"
    trainable = False
    batch_kind = "user"

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        self.register_buffer("item_scores", torch.zeros(self.n_items, dtype=torch.float32))

    def fit(self, data: TrainData) -> None:
        counts = np.asarray((data.train > 0).sum(axis=0)).ravel().astype(np.float32)
        self.item_scores.copy_(torch.from_numpy(counts))

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        return self.item_scores.unsqueeze(0).expand(len(users), -1).clone()
