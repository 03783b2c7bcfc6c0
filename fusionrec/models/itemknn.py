"""Item-based k-nearest-neighbours (cosine) on the training matrix.

``sim(i, j) = <r_i, r_j> / (||r_i|| ||r_j|| + shrink)`` over item columns of the
binary user x item training matrix (scipy.sparse). For every target item only
its ``k`` most similar items are kept (``W[j, i] = sim(i, j)`` for ``j`` in the
top-k of ``i``), and a user's score for ``i`` is ``sum_{j in I_u} W[j, i]`` --
the RecBole/MMRec-style ItemKNN. The neighbour lists are persistent buffers
(``[n_items, k]`` ids and similarities), so the model saves to safetensors and
reloads without refitting; the sparse ``W`` is rebuilt from them lazily.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from fusionrec.data.dataset import TrainData
from fusionrec.models.base import RecModel
from fusionrec.models.params import ModelParams

_ROW_CHUNK = 2048  # target items per block when selecting top-k (bounds memory to chunk x n_items)


def cosine_topk(train: sp.spmatrix, k: int, shrink: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` cosine neighbours of every item: (ids [n_items, k] int64, sims [n_items, k] float32).

    Items with fewer than ``k`` non-zero similarities are padded with similarity 0
    (their padded ids are arbitrary and contribute nothing to scores).
    """
    x = sp.csc_matrix(train, dtype=np.float32)
    x.data[:] = 1.0
    n_items = x.shape[1]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    gram = (x.T @ x).tocsr()  # item x item co-occurrence counts, sparse
    gram.setdiag(0.0)
    gram.eliminate_zeros()
    ids = np.zeros((n_items, k), dtype=np.int64)
    sims = np.zeros((n_items, k), dtype=np.float32)
    for start in range(0, n_items, _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, n_items)
        block = gram[start:stop].toarray()
        denom = norms[start:stop, None] * norms[None, :] + shrink
        with np.errstate(divide="ignore", invalid="ignore"):
            block = np.where(denom > 0, block / np.maximum(denom, 1e-12), 0.0).astype(np.float32)
        top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < n_items else np.argsort(-block, axis=1)[:, :k]
        vals = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        ids[start:stop] = np.take_along_axis(top, order, axis=1)
        sims[start:stop] = np.take_along_axis(vals, order, axis=1)
    return ids, sims


class ItemKNN(RecModel):
    """Cosine item-item neighbourhood model (closed form, no gradient training)."""

    name = "itemknn"
    trainable = False
    batch_kind = "user"

    class Params(ModelParams):
        # RecBole's defaults
        k: int = Field(100, gt=0, description="neighbours kept per item (capped at n_items - 1)")
        shrink: float = Field(0.0, ge=0, description="added to the cosine denominator (damps rare co-occurrences)")

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        k = self.hp.k
        self.k = max(1, min(k, self.n_items - 1)) if self.n_items > 1 else 1
        self.shrink = self.hp.shrink
        self.register_buffer("neighbor_ids", torch.zeros(self.n_items, self.k, dtype=torch.int64))
        self.register_buffer("neighbor_sims", torch.zeros(self.n_items, self.k, dtype=torch.float32))
        # user histories are needed at scoring time; they come from the training data
        self._history = sp.csr_matrix(data.train, dtype=np.float32)
        self._history.data[:] = 1.0
        self._weights: sp.csr_matrix | None = None
        self._weights_key: tuple | None = None

    def fit(self, data: TrainData) -> None:
        ids, sims = cosine_topk(data.train, self.k, self.shrink)
        self.neighbor_ids.copy_(torch.from_numpy(ids))
        self.neighbor_sims.copy_(torch.from_numpy(sims))
        self._history = sp.csr_matrix(data.train, dtype=np.float32)
        self._history.data[:] = 1.0

    def weights(self) -> sp.csr_matrix:
        """Sparse ``W`` (source item x target item) rebuilt from the neighbour buffers."""
        key = (self.neighbor_ids._version, self.neighbor_sims._version)
        if self._weights is None or self._weights_key != key:
            ids = self.neighbor_ids.numpy()
            sims = self.neighbor_sims.numpy()
            targets = np.repeat(np.arange(self.n_items), self.k)
            w = sp.csr_matrix((sims.ravel(), (ids.ravel(), targets)), shape=(self.n_items, self.n_items))
            w.eliminate_zeros()
            self._weights, self._weights_key = w, key
        return self._weights

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        rows = self._history[users.cpu().numpy()]
        scores = (rows @ self.weights()).toarray().astype(np.float32)
        return torch.from_numpy(scores)
