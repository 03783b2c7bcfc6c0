"""Sparse graph helpers of the graph models: normalised user-item and modality kNN graphs, fast spmm.

Split out of :mod:`fusionrec.models.mmgraph` (which re-exports them) so the
model file holds the model; serving reuses :func:`knn_graph` to place new items.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from fusionrec.data.dataset import FeatureModality


def _to_torch_sparse(mat: sp.spmatrix) -> torch.Tensor:
    """scipy -> torch sparse CSR (float32); CSR spmm is the fastest CPU path."""
    csr = sp.csr_matrix(mat, dtype=np.float32)
    csr.sum_duplicates()
    csr.sort_indices()
    with warnings.catch_warnings():
        # torch flags sparse CSR as "beta"; the spmm used here is stable and tested
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)), torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data), size=csr.shape,
        )


class _SpMM(torch.autograd.Function):
    """``adj @ x`` with a precomputed transpose for the backward pass.

    torch's generic sparse backward re-sorts the sparse indices on every call
    (a transpose of a COO tensor); with the transpose given up front (and the
    user-item graph being symmetric it is the matrix itself) backward is one
    more CSR spmm.
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adj_t = adj_t
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, None, torch.sparse.mm(ctx.adj_t, grad)


def spmm(adj: torch.Tensor, x: torch.Tensor, adj_t: torch.Tensor | None = None) -> torch.Tensor:
    """Sparse ``adj @ x``; ``adj_t`` is the transpose (None: ``adj`` is symmetric)."""
    if not x.requires_grad:
        return torch.sparse.mm(adj, x)
    return _SpMM.apply(adj, adj if adj_t is None else adj_t, x)


def normalized_bipartite(train: sp.csr_matrix) -> sp.csr_matrix:
    """The (n_users+n_items)^2 matrix D^-1/2 [[0, R], [R^T, 0]] D^-1/2 used by LightGCN."""
    r = train.tocsr().astype(np.float32)
    r.data[:] = 1.0
    adj = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    # isolated nodes (cold items, users without training rows) keep a zero row
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0).astype(np.float32)
    d = sp.diags(inv)
    return (d @ adj @ d).tocsr()


def knn_graph(features: np.ndarray, mask: np.ndarray, k: int, chunk: int = 2048) -> sp.csr_matrix:
    """Directed cosine kNN graph over the items with ``mask`` True (self excluded).

    Rows/columns of items without the modality are empty, so no item is linked
    through a placeholder vector. Computed in row chunks to bound memory.
    """
    n = features.shape[0]
    present = np.flatnonzero(mask)
    if len(present) <= 1 or k <= 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    k_eff = min(k, len(present) - 1)
    x = torch.from_numpy(features[present].astype(np.float32))
    x = F.normalize(x, dim=1)
    rows, cols = [], []
    for start in range(0, len(present), chunk):
        block = x[start:start + chunk]
        sim = block @ x.T
        local = torch.arange(block.shape[0])
        sim[local, local + start] = -float("inf")  # no self loops
        nbr = torch.topk(sim, k_eff, dim=1).indices.numpy()
        rows.append(np.repeat(present[start:start + block.shape[0]], k_eff))
        cols.append(present[nbr.ravel()])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n, n))


def sym_normalize(adj: sp.csr_matrix) -> sp.csr_matrix:
    """D_r^-1/2 A D_c^-1/2 (row and column degrees), zero-safe."""
    rdeg = np.asarray(adj.sum(axis=1)).ravel()
    cdeg = np.asarray(adj.sum(axis=0)).ravel()
    rinv = np.where(rdeg > 0, 1.0 / np.sqrt(np.maximum(rdeg, 1e-12)), 0.0)
    cinv = np.where(cdeg > 0, 1.0 / np.sqrt(np.maximum(cdeg, 1e-12)), 0.0)
    return (sp.diags(rinv.astype(np.float32)) @ adj @ sp.diags(cinv.astype(np.float32))).tocsr()


def modality_item_graph(
    modalities: dict[str, FeatureModality], k: int, weights: dict[str, float] | None = None
) -> sp.csr_matrix | None:
    """Mix per-modality kNN graphs with per-item weights renormalised over present modalities."""
    if not modalities:
        return None
    n = next(iter(modalities.values())).n_items
    names = list(modalities)
    w = np.array([float((weights or {}).get(m, 1.0)) for m in names], dtype=np.float64)
    masks = np.stack([modalities[m].mask for m in names], axis=1).astype(np.float64)  # [n, M]
    per_item = masks * w[None, :]
    total = per_item.sum(axis=1, keepdims=True)
    per_item = np.divide(per_item, total, out=np.zeros_like(per_item), where=total > 0)
    mixed = sp.csr_matrix((n, n), dtype=np.float32)
    for j, m in enumerate(names):
        g = sym_normalize(knn_graph(modalities[m].features, modalities[m].mask, k))
        mixed = mixed + sp.diags(per_item[:, j].astype(np.float32)) @ g
    return mixed.tocsr()
