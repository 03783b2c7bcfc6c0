"""A side network over the frozen backbone's cached per-layer states (IISAN / side-tuning style).

The backbone never runs while training: its pooled hidden state after every layer
is computed once per item (:class:`~fusionrec.encoders.finetune.cache.FrozenStateCache`).
A narrow side network walks up the layers: at layer ``l`` a learned gate mixes the
(down-projected, layer-normed) backbone state into the side state, then a small
residual MLP refines it. Its output, projected back to the backbone width by a
zero-initialised layer, is *added* to the frozen sentence vector, so training starts
exactly from the frozen features and the adapter learns a correction. Gradients
reach only the side network; nothing is back-propagated through the backbone.
"""
from __future__ import annotations

import torch
from torch import nn


class SideAdapter(nn.Module):
    """``[N, L+1, H]`` pooled layer states -> ``[N, H]`` correction of the last (sentence) state."""

    def __init__(self, n_states: int, hidden: int, width: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(n_states))
        self.down = nn.ModuleList(nn.Linear(hidden, width) for _ in range(n_states))
        # gate logits start at 0: each layer contributes half of the side state's update
        self.gates = nn.Parameter(torch.zeros(n_states))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
            for _ in range(n_states))
        self.out_norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, hidden)
        nn.init.zeros_(self.up.weight)  # a zero correction at the start: the frozen features
        nn.init.zeros_(self.up.bias)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        side = states.new_zeros(states.shape[0], self.up.in_features)
        for j in range(states.shape[1]):
            g = torch.sigmoid(self.gates[j])
            side = side + g * (self.down[j](self.norms[j](states[:, j])) - side)
            side = side + self.blocks[j](side)
        return self.up(self.out_norm(side))
