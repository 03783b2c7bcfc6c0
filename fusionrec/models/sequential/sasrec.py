"""SASRec (Kang & McAuley, ICDM 2018): a causal self-attentive next-item model.

Each history position gets its item vector plus a learned position vector, then
``n_layers`` Transformer blocks (multi-head self-attention that only looks at earlier
positions, a GELU feed-forward, residual connections, layer norm after each, as in
RecBole's implementation) turn it into a query for the item that comes next. The
query is scored against the same item table that embeds the history (weight tying).
Positions count back from the latest event (the latest is always the last position),
so the model sees how recent each item is.

``sasrec`` uses ID embeddings; ``mm_sasrec`` builds item vectors from fused content
(and IDs), so items never seen in training can be recommended and read from histories.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.models.sequential.base import (
    ContentSequentialParams,
    SequentialParams,
    SequentialRecModel,
)


class SASRecParams(SequentialParams):
    n_layers: int = Field(2, ge=1, description="self-attention blocks")
    n_heads: int = Field(2, ge=1, description="attention heads (embedding_size must divide by it)")
    inner_size: int = Field(256, ge=1, description="width of the feed-forward layer")
    hidden_dropout: float = Field(0.5, ge=0, lt=1, description="dropout on embeddings and block outputs")
    attn_dropout: float = Field(0.5, ge=0, lt=1, description="dropout on attention weights")


class MMSASRecParams(ContentSequentialParams, SASRecParams):
    pass


class _Block(nn.Module):
    """Post-norm Transformer block with separate attention and hidden dropout."""

    def __init__(self, dim: int, heads: int, inner: int, hidden_dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=attn_dropout, batch_first=True)
        self.drop1 = nn.Dropout(hidden_dropout)
        self.norm1 = nn.LayerNorm(dim, eps=1e-12)
        self.ff = nn.Sequential(nn.Linear(dim, inner), nn.GELU(), nn.Linear(inner, dim), nn.Dropout(hidden_dropout))
        self.norm2 = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        a, _ = self.attn(x, x, x, attn_mask=blocked, need_weights=False)
        x = self.norm1(x + self.drop1(a))
        return self.norm2(x + self.ff(x))


class SASRec(SequentialRecModel):
    """Causal self-attention over the latest ``max_len`` items, ID item embeddings."""

    name = "sasrec"
    Params = SASRecParams
    hp: SASRecParams

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        hp = self.hp
        if self.dim % hp.n_heads:
            raise UserError(f"{self.name}: embedding_size={self.dim} is not divisible by n_heads={hp.n_heads}",
                            "model.params.n_heads", "choose n_heads that divides embedding_size (e.g. 2)")
        self.position = nn.Embedding(self.max_len, self.dim)
        self.emb_norm = nn.LayerNorm(self.dim, eps=1e-12)
        self.emb_drop = nn.Dropout(hp.hidden_dropout)
        self.blocks = nn.ModuleList(_Block(self.dim, hp.n_heads, hp.inner_size, hp.hidden_dropout, hp.attn_dropout)
                                    for _ in range(hp.n_layers))
        self._init_weights()

    def _init_weights(self) -> None:
        # RecBole's initialisation: normal(0, 0.02) weights, zero biases, unit layer norms
        for module in [self.position, *self.blocks.modules()]:
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=self.hp.init_std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            nn.init.normal_(block.attn.in_proj_weight, std=self.hp.init_std)
            nn.init.zeros_(block.attn.in_proj_bias)

    def encode(self, seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        L = seq.shape[1]
        # position 0 = the latest event (the last column), counting back
        pos = torch.arange(L - 1, -1, -1, device=seq.device).clamp_max(self.max_len - 1)
        x = self.emb_drop(self.emb_norm(table[seq] + self.position(pos)[None]))
        pad = seq == 0
        causal = torch.ones(L, L, dtype=torch.bool, device=seq.device).triu(1)   # True = may not look
        blocked = causal[None] | pad[:, None, :]
        # a position may always see itself, so a padded row never has nothing to attend to (no NaN)
        blocked = blocked & ~torch.eye(L, dtype=torch.bool, device=seq.device)[None]
        blocked = blocked.repeat_interleave(self.hp.n_heads, dim=0)             # [B * heads, L, L]
        for block in self.blocks:
            x = block(x, blocked)
        return x


class MMSASRec(SASRec):
    """SASRec over multimodal item vectors: fused content, plus IDs for items seen in training."""

    name = "mm_sasrec"
    uses_content = True
    Params = MMSASRecParams
    hp: MMSASRecParams
