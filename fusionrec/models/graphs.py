"""Sparse graph helpers of the graph models: normalised user-item and modality kNN graphs, fast spmm.

Split out of :mod:`fusionrec.models.mmgraph` (which re-exports them) so the
model file holds the model; serving reuses :func:`knn_graph` to place new items.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

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


# Above this many items the exact search (quadratic in items) gives way to an IVF index.
EXACT_KNN_LIMIT = 50_000


def _faiss_index(x: np.ndarray, exact: bool, seed: int = 0):
    """An inner-product faiss index over unit rows: flat (exact) or IVF (approximate).

    The IVF index has about 2 * sqrt(n) lists and probes 32 of them, so a query
    scans about 16 / sqrt(n) of the catalogue: the whole graph costs
    n^1.5 rather than n^2, and the index holds the vectors once (linear memory).
    """
    import faiss

    n, d = x.shape
    if exact:
        index = faiss.IndexFlatIP(d)
        index.add(x)
        return index
    # faiss wants >= 39 training points a list
    nlist = max(1, min(int(2 * np.sqrt(n)), n // 39))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
    index.train(sample)
    index.add(x)
    index.nprobe = min(32, nlist)
    return index


def _drop_self(ids: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """``k`` neighbours per row from ``k + 1`` candidates, the row's own index removed.

    The item itself is usually the first hit, but a duplicate vector can come
    first, so self is removed by value; rows that did not find themselves drop
    their last (weakest) candidate. Missing hits (-1, possible with IVF) stay -1.
    """
    is_self = ids == rows[:, None]
    keep = ~is_self
    # rows without self: drop the weakest candidate instead
    no_self = ~is_self.any(axis=1)
    keep[no_self, -1] = False
    return ids[keep].reshape(len(ids), k)


def knn_graph(features: np.ndarray, mask: np.ndarray, k: int, chunk: int = 4096,
              exact_limit: int = EXACT_KNN_LIMIT) -> sp.csr_matrix:
    """Directed cosine kNN graph over the items with ``mask`` True (self excluded).

    Rows/columns of items without the modality are empty, so no item is linked
    through a placeholder vector. Built with faiss: an exact inner-product
    search up to ``exact_limit`` items, an inverted-file (IVF) index above it, so memory
    is linear in items (``k`` links each, never an n x n matrix) and time about
    n^1.5 for large catalogues. Queries run in row chunks to bound the result buffers.
    """
    n = features.shape[0]
    present = np.flatnonzero(mask)
    if len(present) <= 1 or k <= 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    k_eff = min(k, len(present) - 1)
    x = np.ascontiguousarray(features[present], dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.maximum(norms, 1e-12)
    index = _faiss_index(x, exact=len(present) <= exact_limit)
    rows, cols = [], []
    for start in range(0, len(present), chunk):
        block = x[start:start + chunk]
        _, ids = index.search(block, k_eff + 1)
        local_rows = np.arange(start, start + len(block))
        nbr = _drop_self(ids, local_rows, k_eff)
        found = nbr >= 0
        rows.append(np.repeat(present[local_rows], k_eff)[found.ravel()])
        cols.append(present[nbr[found]])
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
