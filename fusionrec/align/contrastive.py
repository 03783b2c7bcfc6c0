"""Contrastive alignment: InfoNCE with a temperature.

Row ``i`` of ``a`` and row ``i`` of ``b`` are two views of the same item (its
text and its image, or its content and its collaborative ID embedding); every
other row in the batch is a negative. Minimising the loss pulls the views of
one item together and pushes different items apart, which is what lets a cold
item's content land next to where its ID embedding would be.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn


def info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    temperature: float | torch.Tensor = 0.2,
    mask: torch.Tensor | None = None,
    symmetric: bool = True,
) -> torch.Tensor:
    """InfoNCE between paired rows of ``a`` [B, d] and ``b`` [B, d] (cosine / temperature).

    ``mask`` [B] bool keeps only the rows where both views exist (an item with
    no image is neither an anchor nor a negative for the image view). Returns
    0 (with grad) when fewer than two rows remain, since a single pair has no
    negatives to contrast with.
    """
    if a.shape != b.shape:
        raise ValueError(f"info_nce needs paired views of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if mask is not None:
        a, b = a[mask], b[mask]
    if a.shape[0] < 2:
        return (a.sum() + b.sum()) * 0.0
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, target))
    return loss


class InfoNCE(nn.Module):
    """InfoNCE as a module, optionally with a learnable temperature (as in CLIP).

    The temperature is stored as a log so it stays positive; it is clamped to
    ``[0.01, 1]`` because a collapsing temperature makes the loss explode.
    """

    def __init__(self, temperature: float = 0.2, learnable: bool = False, symmetric: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        log_t = torch.tensor(math.log(temperature))
        if learnable:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)
        self.symmetric = symmetric

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp().clamp(0.01, 1.0)

    def forward(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return info_nce(a, b, self.temperature, mask, self.symmetric)


def multiview_info_nce(
    views: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor] | None = None,
    temperature: float | torch.Tensor = 0.2,
) -> torch.Tensor:
    """Mean InfoNCE over every pair of modalities, each pair on the items that have both."""
    names = list(views)
    pairs = list(combinations(names, 2))
    if not pairs:
        first = next(iter(views.values()))
        return first.sum() * 0.0
    total = 0.0
    for x, y in pairs:
        m = None
        if masks is not None:
            m = masks[x] & masks[y]
        total = total + info_nce(views[x], views[y], temperature, m)
    return total / len(pairs)


def retrieval_accuracy(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of rows of ``a`` whose nearest row of ``b`` (cosine) is its own pair: top-1 accuracy."""
    with torch.no_grad():
        sims = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
        return float((sims.argmax(dim=1) == torch.arange(a.shape[0])).float().mean())
