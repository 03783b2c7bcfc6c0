"""EASE: Embarrassingly Shallow Autoencoder (Steck, WWW 2019), closed form.

The item-item weight matrix solves ``min_B ||X - XB||^2 + lambda ||B||^2`` with
``diag(B) = 0``; the solution is ``B = I - P diag(1/diag(P))`` with
``P = (X^T X + lambda I)^-1``. It is a strong collaborative reference on
catalogues of a few thousand items (one dense ``n_items^2`` inverse), and has
no trainable parameters, so the trainer calls :meth:`fit` instead of an epoch
loop. Items without training interactions get all-zero columns (EASE cannot
recommend cold items -- that is what the content models are for).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import torch
from pydantic import Field

from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.models.base import RecModel
from fusionrec.models.params import ModelParams

# A dense n_items^2 float64 inverse: 20k items is ~3.2 GB, the practical limit here.
MAX_ITEMS = 20_000


class EASE(RecModel):
    """Closed-form item-item linear autoencoder; ``l2`` is the ridge strength lambda."""

    name: ClassVar[str] = "ease"
    trainable: ClassVar[bool] = False
    batch_kind: ClassVar[str] = "user"

    class Params(ModelParams):
        # chosen on VALID per dataset (docs/benchmarks/mmrec_compare.md): lastfm2k 100, ml100k 200..500;
        # 200 is a sound default for catalogues of a few thousand items
        l2: float = Field(200.0, gt=0, description="ridge strength lambda of the closed-form solution")

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        self.l2 = self.hp.l2
        if data.n_items > MAX_ITEMS:
            raise UserError(
                f"ease: {data.n_items} items need a dense {data.n_items}^2 inverse",
                "model: ease",
                f"EASE is meant for catalogues up to {MAX_ITEMS} items; use itemknn or a trained model",
            )
        self.register_buffer("weights", torch.zeros(data.n_items, data.n_items))
        self._train = data.train.tocsr().astype(np.float32)
        self._train.data[:] = 1.0

    def fit(self, data: TrainData) -> None:
        """Solve for B on the training matrix of ``data``."""
        x = data.train.tocsr().astype(np.float64)
        x.data[:] = 1.0
        self._train = x.astype(np.float32)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        # Cholesky-based inverse: the Gram matrix + lambda I is symmetric positive definite.
        p = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram, lower=False), np.eye(gram.shape[0]))
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        self.weights = torch.from_numpy(b.astype(np.float32))

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        rows = self._train[users.cpu().numpy()]
        return torch.from_numpy(np.asarray(rows @ self.weights.numpy(), dtype=np.float32))
