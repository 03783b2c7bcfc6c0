"""LightGCN (He et al., SIGIR 2020), matching MMRec's ``src/models/lightgcn.py``.

* graph: the symmetric normalised user-item adjacency ``D^-1/2 A D^-1/2`` of the
  training matrix (``A = [[0, R], [R^T, 0]]``, ``+1e-7`` on the degrees as in
  MMRec), held as a torch sparse CSR tensor (not a parameter: it is rebuilt
  from the training data, so it is not saved with the weights);
* propagation: ``n_layers`` sparse products, final embedding = mean of the
  layer-0..L embeddings;
* loss: BPR on the propagated embeddings + ``reg_weight`` x MMRec's ``EmbLoss``
  (plain norms / batch size) on the *ego* (layer-0) embeddings;
* init: Xavier-uniform, as MMRec.

Full propagation costs ``n_layers`` sparse matmuls, so in eval mode the
propagated embeddings are cached and reused across evaluation batches and
serving calls; the cache is keyed by the parameters' version counters, so any
optimizer step or ``load_state_dict`` invalidates it automatically.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.models.base import RecModel
from fusionrec.models.bpr import bpr_loss, embedding_norm_reg
from fusionrec.models.params import ModelParams


def normalized_adjacency(train: sp.spmatrix, eps: float = 1e-7) -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` of the bipartite graph of ``train`` as a torch sparse CSR tensor."""
    r = sp.csr_matrix(train, dtype=np.float32)
    r.data[:] = 1.0  # binary graph, duplicates already collapsed by the CSR
    n_users, n_items = r.shape
    adj = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(adj.sum(axis=1)).ravel() + eps
    d_inv_sqrt = sp.diags(np.power(deg, -0.5).astype(np.float32))
    norm = (d_inv_sqrt @ adj @ d_inv_sqrt).tocsr().astype(np.float32)
    norm.sort_indices()
    with warnings.catch_warnings():
        # "sparse CSR support is in beta": we only use sparse @ dense, which is stable.
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            # int32 indices: the CPU sparse kernel works on int32 and would otherwise
            # convert 2 x nnz indices on every product (~10% of a LightGCN step)
            torch.from_numpy(norm.indptr.astype(np.int32)),
            torch.from_numpy(norm.indices.astype(np.int32)),
            torch.from_numpy(norm.data),
            size=(n_users + n_items, n_users + n_items),
        )


class SymmetricSpMM(torch.autograd.Function):
    """``adj @ x`` for a *symmetric* sparse ``adj``, with the gradient ``adj @ grad``.

    torch's generic sparse-mm backward transposes the sparse matrix on every
    call; for a symmetric matrix the transpose is the matrix itself, and
    skipping it makes a LightGCN training step ~2.5x faster on CPU
    (measured on Amazon-Baby, 1 thread: 0.14 s -> 0.055 s per 3-layer step).
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, torch.sparse.mm(ctx.adj, grad)


class LightGCN(RecModel):
    """Linear graph propagation over the user-item graph, trained with BPR."""

    name = "lightgcn"
    trainable = True
    batch_kind = "pairwise"

    class Params(ModelParams):
        # MMRec's defaults (src/configs/model/LightGCN.yaml + overall.yaml). MMRec grid-searches
        # n_layers in [3, 4] and reg_weight in [1e-2, 1e-3, 1e-4]; 3 / 1e-4 reproduce MMRec's
        # Amazon-Baby numbers within 3.3% at lr 1e-3 (docs/benchmarks/baselines.md).
        embedding_size: int = Field(64, gt=0, description="width of the user and item embeddings")
        n_layers: int = Field(3, ge=0, description="propagation layers over the user-item graph")
        reg_weight: float = Field(1e-4, ge=0, description="weight of MMRec's EmbLoss on the layer-0 embeddings")

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        dim = self.hp.embedding_size
        self.n_layers = self.hp.n_layers
        self.reg_weight = self.hp.reg_weight
        self.user_embedding = nn.Embedding(self.n_users, dim)
        self.item_embedding = nn.Embedding(self.n_items, dim)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        self.norm_adj = normalized_adjacency(data.train)
        self._cache: tuple[tuple[int, int], torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ propagation
    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(users [n_users, d], items [n_items, d]): the mean over layers 0..n_layers."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight], dim=0)
        acc = ego
        layer = ego
        for _ in range(self.n_layers):
            layer = SymmetricSpMM.apply(self.norm_adj, layer)
            acc = acc + layer
        out = acc / (self.n_layers + 1)
        return out[: self.n_users], out[self.n_users:]

    def _propagated(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            return self.propagate()
        key = (self.user_embedding.weight._version, self.item_embedding.weight._version,
               id(self.user_embedding.weight), id(self.item_embedding.weight))
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                users, items = self.propagate()
            self._cache = (key, users, items)
        return self._cache[1], self._cache[2]

    def train(self, mode: bool = True) -> LightGCN:
        self._cache = None
        return super().train(mode)

    # ------------------------------------------------------------------ contract
    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        user, pos, neg = batch["user"], batch["pos_item"], batch["neg_item"]
        users_all, items_all = self.propagate()
        u, p, n = users_all[user], items_all[pos], items_all[neg]
        loss = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
        if self.reg_weight:
            reg = embedding_norm_reg(
                self.user_embedding.weight[user], self.item_embedding.weight[pos], self.item_embedding.weight[neg]
            )
            loss = loss + self.reg_weight * reg
        return loss

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        users_all, items_all = self._propagated()
        return users_all[users] @ items_all.T

    def user_embeddings(self) -> torch.Tensor:
        return self._propagated()[0].detach()

    def item_embeddings(self) -> torch.Tensor:
        return self._propagated()[1].detach()
