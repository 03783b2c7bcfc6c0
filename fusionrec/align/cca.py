"""Correlation maximisation: a deep-CCA style loss.

Deep CCA (Andrew et al., ICML 2013) trains two networks so that their outputs
have maximal total canonical correlation. For centred views ``H1``, ``H2`` with
covariances ``S11``, ``S22`` and cross-covariance ``S12``, the canonical
correlations are the singular values of ``T = S11^-1/2 S12 S22^-1/2`` (any whitening gives the
same values; Cholesky is used); the loss
is minus their sum (or of the top ``k``). A ridge ``eps`` keeps the inverse
square roots stable on small batches.
"""
from __future__ import annotations

import torch
from torch import nn


def _whiten(cov: torch.Tensor, cross: torch.Tensor, left: bool) -> torch.Tensor:
    # Cholesky whitening (L^-1 X): canonical correlations are invariant to the choice of
    # whitening, and unlike an eigendecomposition its gradient stays finite when
    # eigenvalues repeat (which happens on small batches).
    chol = torch.linalg.cholesky(cov)
    if left:
        return torch.linalg.solve_triangular(chol, cross, upper=False)
    return torch.linalg.solve_triangular(chol, cross.T, upper=False).T


def canonical_correlations(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Canonical correlations (descending) between views ``a`` [N, d1] and ``b`` [N, d2].

    Differentiable; regularised with ``eps * I`` on each covariance.
    """
    n = a.shape[0]
    if n < 2:
        raise ValueError(f"canonical correlations need at least 2 rows, got {n}")
    a = a - a.mean(dim=0, keepdim=True)
    b = b - b.mean(dim=0, keepdim=True)
    s11 = a.T @ a / (n - 1) + eps * torch.eye(a.shape[1], device=a.device, dtype=a.dtype)
    s22 = b.T @ b / (n - 1) + eps * torch.eye(b.shape[1], device=b.device, dtype=b.dtype)
    s12 = a.T @ b / (n - 1)
    t = _whiten(s22, _whiten(s11, s12, left=True), left=False)
    return torch.linalg.svdvals(t)


def cca_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    top_k: int | None = None,
    eps: float = 1e-3,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Minus the (mean of the top-``k``) canonical correlation(s) between ``a`` and ``b``.

    ``mask`` [B] bool keeps only rows where both views exist. Returns 0 with
    grad when too few rows remain to estimate covariances.
    """
    if mask is not None:
        a, b = a[mask], b[mask]
    if a.shape[0] < 3:
        return (a.sum() + b.sum()) * 0.0
    corr = canonical_correlations(a, b, eps)
    if top_k is not None:
        corr = corr[:top_k]
    return -corr.mean()


class CCALoss(nn.Module):
    """Module form of :func:`cca_loss`."""

    def __init__(self, top_k: int | None = None, eps: float = 1e-3) -> None:
        super().__init__()
        self.top_k = top_k
        self.eps = eps

    def forward(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return cca_loss(a, b, self.top_k, self.eps, mask)
