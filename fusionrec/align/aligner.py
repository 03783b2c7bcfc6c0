"""One config-selectable alignment loss for models: ``none | infonce | cca | matching``.

Models project every modality into a shared space (:mod:`.projection`) and
hand the projected views of a batch of items to :class:`Aligner`, which returns
an auxiliary loss that

* aligns the modalities of the same item with each other, and
* (``with_id=True``) aligns the item's fused content vector with its
  collaborative ID embedding, on warm items only, so that content alone can
  stand in for the ID embedding of a cold item.
"""
from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import torch
from torch import nn

from fusionrec.align.cca import cca_loss
from fusionrec.align.contrastive import InfoNCE
from fusionrec.align.matching import CrossAttentionMatcher, FeatureTokenizer

ALIGN_METHODS = ("none", "infonce", "cca", "matching")


class Aligner(nn.Module):
    """Auxiliary alignment loss between modality views (and content vs ID embedding)."""

    def __init__(
        self,
        method: str,
        names: list[str],
        dim: int,
        temperature: float = 0.2,
        learnable_temperature: bool = False,
        with_id: bool = True,
        n_tokens: int = 4,
        cca_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        if method not in ALIGN_METHODS:
            raise ValueError(f"alignment {method!r} is not one of {ALIGN_METHODS}")
        self.method = method
        self.names = list(names)
        self.with_id = with_id
        self.cca_eps = cca_eps
        if method == "infonce":
            self.nce = InfoNCE(temperature, learnable=learnable_temperature)
        if method == "matching":
            # every modality view and the ID embedding become small token sets
            self.tokenizers = nn.ModuleDict({n: FeatureTokenizer(dim, n_tokens, dim) for n in self.names})
            self.id_tokenizer = FeatureTokenizer(dim, n_tokens, dim)
            self.matcher = CrossAttentionMatcher(dim, temperature=temperature)

    @property
    def active(self) -> bool:
        return self.method != "none"

    def _pair(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None, tok_x=None, tok_y=None):
        if self.method == "infonce":
            return self.nce(x, y, mask)
        if self.method == "cca":
            return cca_loss(x, y, eps=self.cca_eps, mask=mask)
        return self.matcher.loss(tok_x(x), tok_y(y), row_mask=mask)

    def forward(
        self,
        views: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor],
        content: torch.Tensor | None = None,
        id_emb: torch.Tensor | None = None,
        id_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean alignment loss over modality pairs (+ content<->ID when given).

        ``views[name]`` [B, dim] projected modality vectors, ``masks[name]`` [B]
        presence; ``content`` [B, dim] fused content; ``id_emb`` [B, dim];
        ``id_mask`` [B] True where the ID embedding is trained (warm items).
        """
        ref = next(iter(views.values()))
        if not self.active:
            return ref.sum() * 0.0
        terms = []
        for x, y in combinations(self.names, 2):
            tx = ty = None
            if self.method == "matching":
                tx, ty = self.tokenizers[x], self.tokenizers[y]
            terms.append(self._pair(views[x], views[y], masks[x] & masks[y], tx, ty))
        if self.with_id and id_emb is not None and content is not None:
            any_present = torch.stack([masks[n] for n in self.names]).any(dim=0)
            m = any_present if id_mask is None else any_present & id_mask
            if self.method == "matching":
                # content side is the *set* of present modality views: cross-attention matches
                # the ID tokens against whichever modalities the item has.
                stack = torch.stack([views[n] for n in self.names], dim=1)          # [B, M, d]
                set_mask = torch.stack([masks[n] for n in self.names], dim=1)       # [B, M]
                id_tok = self.id_tokenizer(id_emb)
                terms.append(self.matcher.loss(stack, id_tok, a_mask=set_mask, row_mask=m))
            else:
                terms.append(self._pair(content, id_emb, m))
        if not terms:
            return ref.sum() * 0.0
        return torch.stack(terms).mean()
