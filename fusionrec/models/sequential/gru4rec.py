"""GRU4Rec (Hidasi et al., ICLR 2016; the variant RecBole ships): a recurrent next-item model.

The history's item vectors (with dropout) run through a GRU; a linear layer maps each
hidden state back into the item space, where it is scored against the item table.
Histories are right-aligned in the batch (left padding), so before the GRU each row
is moved to the front and packed (:func:`torch.nn.utils.rnn.pack_padded_sequence`):
padding never enters the recurrent state.

``gru4rec`` uses ID embeddings; ``mm_gru4rec`` fused content (and IDs).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from fusionrec.data.dataset import TrainData
from fusionrec.models.sequential.base import (
    ContentSequentialParams,
    SequentialParams,
    SequentialRecModel,
)


class GRU4RecParams(SequentialParams):
    hidden_size: int = Field(128, ge=1, description="GRU state width")
    num_layers: int = Field(1, ge=1, description="stacked GRU layers")
    dropout: float = Field(0.3, ge=0, lt=1, description="dropout on the input item vectors")


class MMGRU4RecParams(ContentSequentialParams, GRU4RecParams):
    pass


def _shift_rows(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Row ``b`` of ``x`` ([B, L, ...]) rotated left by ``shift[b]`` positions."""
    L = x.shape[1]
    idx = (torch.arange(L, device=x.device)[None, :] + shift[:, None]) % L
    if x.dim() == 3:
        idx = idx[..., None].expand(-1, -1, x.shape[2])
    return torch.gather(x, 1, idx)


class GRU4Rec(SequentialRecModel):
    """A GRU over the latest ``max_len`` items, ID item embeddings."""

    name = "gru4rec"
    Params = GRU4RecParams
    hp: GRU4RecParams

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        hp = self.hp
        self.emb_drop = nn.Dropout(hp.dropout)
        self.gru = nn.GRU(self.dim, hp.hidden_size, num_layers=hp.num_layers, bias=False, batch_first=True)
        self.dense = nn.Linear(hp.hidden_size, self.dim)
        # RecBole's initialisation: xavier-uniform GRU weights
        for name, weight in self.gru.named_parameters():
            if "weight" in name:
                nn.init.xavier_uniform_(weight)

    def encode(self, seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        L = seq.shape[1]
        lengths = (seq > 0).sum(1)
        pad = L - lengths
        x = self.emb_drop(table[seq])
        front = _shift_rows(x, pad)                               # items first, padding after
        packed = pack_padded_sequence(front, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=L)
        out = _shift_rows(out, (L - pad) % L)                     # back to right-aligned
        return self.dense(out)


class MMGRU4Rec(GRU4Rec):
    """GRU4Rec over multimodal item vectors: fused content, plus IDs for items seen in training."""

    name = "mm_gru4rec"
    uses_content = True
    Params = MMGRU4RecParams
    hp: MMGRU4RecParams
