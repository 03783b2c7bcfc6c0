"""Projection of every modality (and of collaborative ID embeddings) into one shared space.

Pretrained encoders emit vectors of different sizes and scales (MiniLM 384-d,
EfficientNet 1280-d, VGGish 128-d with values in the hundreds). Before they can
be compared (alignment) or combined (fusion) each is mapped by its own small
network into the same ``dim``-dimensional space.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ProjectionKind = Literal["linear", "mlp"]


class Projection(nn.Module):
    """``in_dim -> out_dim`` as one linear map or a two-layer MLP (GELU, dropout).

    ``normalize=True`` L2-normalises the output, which is what contrastive
    losses with a temperature expect (cosine similarities).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        kind: ProjectionKind = "linear",
        hidden: int | None = None,
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if kind not in ("linear", "mlp"):
            raise ValueError(f"projection kind {kind!r} is not 'linear' or 'mlp'")
        self.kind = kind
        self.normalize = normalize
        if kind == "linear":
            self.net: nn.Module = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))
        else:
            hidden = hidden or max(out_dim, min(in_dim, 4 * out_dim))
            self.net = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(in_dim, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, out_dim),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return F.normalize(out, dim=-1) if self.normalize else out


class ModalityProjector(nn.Module):
    """One :class:`Projection` per named modality, all into the same ``out_dim`` space."""

    def __init__(
        self,
        in_dims: Mapping[str, int],
        out_dim: int,
        kind: ProjectionKind = "linear",
        hidden: int | None = None,
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if not in_dims:
            raise ValueError("ModalityProjector needs at least one modality")
        self.names = list(in_dims)
        self.out_dim = out_dim
        self.proj = nn.ModuleDict(
            {n: Projection(d, out_dim, kind, hidden, dropout, normalize) for n, d in in_dims.items()}
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = [n for n in self.names if n not in features]
        if missing:
            raise KeyError(f"ModalityProjector got no features for {missing}; it was built for {self.names}")
        return {n: self.proj[n](features[n]) for n in self.names}
