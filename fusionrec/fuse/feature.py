"""Feature-level and model-level fusion of per-modality item vectors.

Every fusion module has the same call: ``fusion(views, masks, user=None)``
where ``views[name]`` is a [B, dim] tensor (already projected into the shared
space), ``masks[name]`` a [B] bool tensor (True = the item has this modality)
and ``user`` an optional [B, user_dim] query for user-conditioned attention.
It returns [B, out_dim].

Missing modalities are *excluded*, never imputed: weights and attention are
renormalised over the present modalities only, so an item without an image
gets exactly the vector obtained by fusing its other modalities. An item with
no modality at all gets the zero vector (no content signal).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn


def stack_views(
    names: list[str], views: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, M, d]`` views and ``[B, M]`` bool presence in the order of ``names``."""
    missing = [n for n in names if n not in views]
    if missing:
        raise KeyError(f"fusion got no view for modalities {missing}; it was built for {names}")
    x = torch.stack([views[n] for n in names], dim=1)
    if masks is None:
        m = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    else:
        m = torch.stack([masks[n].to(torch.bool) for n in names], dim=1)
    return x, m


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Softmax over present entries only; rows with nothing present get all-zero weights."""
    logits = logits.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(logits, dim=dim)
    return torch.nan_to_num(weights, nan=0.0)


def modality_dropout(
    masks: Mapping[str, torch.Tensor], p: float, training: bool = True, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Randomly hide present modalities with probability ``p`` (training only).

    At least one originally present modality per item is kept, so the model
    learns to work from any subset rather than from nothing. Returns new masks.
    """
    if not training or p <= 0 or not masks:
        return dict(masks)
    names = list(masks)
    m = torch.stack([masks[n] for n in names], dim=1)                      # [B, M]
    keep = torch.rand(m.shape, generator=generator, device=m.device) >= p
    dropped = m & keep
    lost_all = m.any(dim=1) & ~dropped.any(dim=1)
    if lost_all.any():
        # restore one random originally-present modality for those items
        scores = torch.rand(m.shape, generator=generator, device=m.device).masked_fill(~m, -1.0)
        pick = scores.argmax(dim=1)
        restore = torch.zeros_like(m)
        restore[torch.arange(m.shape[0], device=m.device), pick] = True
        dropped = dropped | (restore & lost_all[:, None])
    return {n: dropped[:, i] for i, n in enumerate(names)}


class ModalityFusion(nn.Module):
    """Base class: holds the modality order and the output size."""

    kind = "feature"

    def __init__(self, names: list[str], dim: int) -> None:
        super().__init__()
        if not names:
            raise ValueError("fusion needs at least one modality")
        self.names = list(names)
        self.dim = dim
        self.out_dim = dim

    def weights(
        self, views: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None,
        user: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """[B, M] modality weights when the method has them (for inspection / reports)."""
        return None


class ConcatFusion(ModalityFusion):
    """Concatenate the modality vectors and map them back to ``out_dim`` with one linear layer.

    An absent modality contributes a zero block, which is the same as applying the
    layer to the present blocks only (no bias, so no content gives the zero vector).
    """

    def __init__(self, names: list[str], dim: int, out_dim: int | None = None) -> None:
        super().__init__(names, dim)
        self.out_dim = out_dim or dim
        self.linear = nn.Linear(len(self.names) * dim, self.out_dim, bias=False)

    def forward(self, views, masks=None, user=None) -> torch.Tensor:
        x, m = stack_views(self.names, views, masks)
        x = x * m[..., None]
        return self.linear(x.flatten(1))


class WeightedSumFusion(ModalityFusion):
    """Learned global weight per modality (softmax), renormalised over each item's present ones."""

    def __init__(self, names: list[str], dim: int) -> None:
        super().__init__(names, dim)
        self.logits = nn.Parameter(torch.zeros(len(self.names)))

    def weights(self, views, masks=None, user=None) -> torch.Tensor:
        x, m = stack_views(self.names, views, masks)
        return masked_softmax(self.logits.expand(x.shape[0], -1), m)

    def forward(self, views, masks=None, user=None) -> torch.Tensor:
        x, _ = stack_views(self.names, views, masks)
        return (self.weights(views, masks)[..., None] * x).sum(dim=1)


class AttentionFusion(ModalityFusion):
    """Additive attention over modalities, per item; optionally conditioned on the user.

    ``score_m = v . tanh(W h_m + k_m [+ U user])`` (``k_m`` a learned modality key); the softmax runs over the item's
    present modalities. With ``user_dim`` set, the same item can weigh its
    poster more for one user and its description more for another.
    """

    def __init__(self, names: list[str], dim: int, hidden: int | None = None, user_dim: int | None = None) -> None:
        super().__init__(names, dim)
        hidden = hidden or dim
        self.key = nn.Linear(dim, hidden)
        # a learned key per modality lets attention prefer a modality as such, not only by content
        self.modality_key = nn.Parameter(torch.zeros(len(self.names), hidden))
        self.query = nn.Linear(user_dim, hidden, bias=False) if user_dim else None
        self.v = nn.Linear(hidden, 1, bias=False)

    def logits(self, x: torch.Tensor, user: torch.Tensor | None = None) -> torch.Tensor:
        """[B, M] attention logits of stacked views ``x`` [B, M, dim] (before masking)."""
        h = self.key(x) + self.modality_key                                  # [B, M, hidden]
        if self.query is not None:
            if user is None:
                raise ValueError("user-conditioned attention fusion needs the user vector (user=...)")
            h = h + self.query(user)[:, None, :]
        return self.v(torch.tanh(h)).squeeze(-1)

    def weights(self, views, masks=None, user=None) -> torch.Tensor:
        x, m = stack_views(self.names, views, masks)
        return masked_softmax(self.logits(x, user), m)

    def forward(self, views, masks=None, user=None) -> torch.Tensor:
        x, _ = stack_views(self.names, views, masks)
        return (self.weights(views, masks, user)[..., None] * x).sum(dim=1)


class GatedFusion(ModalityFusion):
    """Element-wise gates: each dimension picks its own mix of modalities.

    ``g_m = softmax_m(W_g h_m + b_m)`` per dimension (over present modalities),
    ``fused = sum_m g_m * h_m``. Finer than one weight per modality.
    """

    def __init__(self, names: list[str], dim: int) -> None:
        super().__init__(names, dim)
        self.gate = nn.Linear(dim, dim)
        self.modality_bias = nn.Parameter(torch.zeros(len(self.names), dim))

    def forward(self, views, masks=None, user=None) -> torch.Tensor:
        x, m = stack_views(self.names, views, masks)
        logits = self.gate(x) + self.modality_bias                           # [B, M, d]
        g = masked_softmax(logits, m[..., None].expand_as(logits), dim=1)
        return (g * x).sum(dim=1)


class JointFusion(ModalityFusion):
    """Model-level fusion: one small Transformer over the item's modality tokens.

    Tokens are the projected modality vectors plus a learned modality-type
    embedding, and a learned [CLS] token every modality can attend to; the output
    is the mean of the present modality tokens after the encoder. Absent
    modalities are padding in the attention (``src_key_padding_mask``), so they
    never influence the output.
    """

    kind = "model"

    def __init__(self, names: list[str], dim: int, n_layers: int = 1, n_heads: int = 2, dropout: float = 0.0) -> None:
        super().__init__(names, dim)
        if dim % n_heads:
            raise ValueError(f"joint fusion: dim {dim} must be divisible by n_heads {n_heads}")
        self.type_emb = nn.Parameter(torch.randn(len(self.names), dim) / math.sqrt(dim))
        self.cls = nn.Parameter(torch.randn(1, 1, dim) / math.sqrt(dim))
        layer = nn.TransformerEncoderLayer(
            dim, n_heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True
        )
        # enable_nested_tensor=False: the fast path would drop padded tokens differently in eval
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

    def forward(self, views, masks=None, user=None) -> torch.Tensor:
        x, m = stack_views(self.names, views, masks)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), x + self.type_emb], dim=1)
        pad = torch.cat([torch.zeros_like(m[:, :1]), ~m], dim=1)            # True = ignore
        out = self.encoder(tokens, src_key_padding_mask=pad)
        # read out the present modality tokens (mean), each minus its type embedding, rather than
        # the [CLS] token: a [CLS] readout starts as the same vector for every item, and that
        # shared offset swamped the item differences in cosine scoring (demo: recall@20 0.25 vs 0.48)
        tok = (out[:, 1:] - self.type_emb) * m[..., None]
        return tok.sum(1) / m.sum(1, keepdim=True).clamp_min(1)


FUSIONS = ("concat", "weighted_sum", "attention", "user_attention", "gated", "joint")


def build_fusion(name: str, names: list[str], dim: int, user_dim: int | None = None, **kw) -> ModalityFusion:
    """Fusion by config name: ``concat | weighted_sum (sum) | attention | user_attention | gated | joint``."""
    if name == "sum":
        name = "weighted_sum"
    if name == "concat":
        return ConcatFusion(names, dim)
    if name == "weighted_sum":
        return WeightedSumFusion(names, dim)
    if name == "attention":
        return AttentionFusion(names, dim)
    if name == "user_attention":
        return AttentionFusion(names, dim, user_dim=user_dim or dim)
    if name == "gated":
        return GatedFusion(names, dim)
    if name == "joint":
        return JointFusion(names, dim, n_layers=int(kw.get("n_layers", 1)), n_heads=int(kw.get("n_heads", 2)))
    raise ValueError(f"fusion {name!r} is not one of {FUSIONS} (or 'late' for decision-level fusion)")
