"""Item vectors of the sequential models: ID embedding, fused multimodal content, or both.

``item_repr``:

* ``id`` -- a learned embedding per item (SASRec / GRU4Rec as published). An item
  without training interactions keeps its random initial vector, so it cannot be
  ranked meaningfully;
* ``content`` -- the item's modalities, each projected into the model's space by
  :class:`~fusionrec.align.ModalityProjector` and fused by
  :func:`~fusionrec.fuse.build_fusion` (the blocks two_tower uses), read through
  :class:`~fusionrec.models.modal_inputs.ModalInputs`; any item with content has a
  vector, including one never seen in training;
* ``both`` -- ID + content, the ID part zeroed for items without training
  interactions (their embedding was never trained) and dropped at random in training
  (``id_dropout``) so the content path learns to carry an item alone.

**New items at inference** (``cold_neighbours`` > 0, ``content`` / ``both``): an item without
training events gets ``(1 - cold_mix) x`` its own vector ``+ cold_mix x`` the mean direction of
its warm neighbours' vectors in the content kNN graph, at their mean length (the graph mmgraph builds,
:func:`~fusionrec.models.graphs.modality_item_graph`). Why: the content projection is
trained only on warm items and, with features of a thousand-plus dimensions, can fit each of
them almost freely, so a new item's own projected vector drifts away from the warm ones as
training goes on; its warm look-alikes' vectors (ID part included) sit where the sequence
model's signal put items like it. ``cold_scale`` then multiplies every new item's vector (its
scores for every user): how readily new items enter the lists, chosen on valid like the rest.
Training never reads any of this (new items have no training events).

The same table is the input embedding of the sequence encoder and the output
embedding the next item is scored against (weight tying, as in SASRec), so a cold
item can be both recommended and read from a history. Row 0 is the padding item.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fusionrec.align import ModalityProjector
from fusionrec.data.dataset import TrainData
from fusionrec.fuse import build_fusion, modality_dropout
from fusionrec.models.adaptive_head import warm_neighbour_mean
from fusionrec.models.graphs import modality_item_graph
from fusionrec.models.modal_inputs import ModalInputs, select_modalities

ITEM_REPRS = ("id", "content", "both")


class SequenceItemTable(nn.Module):
    """``table(training) -> [n_items + 1, dim]``: the item vectors, row 0 = padding (zeros)."""

    def __init__(self, data: TrainData, hp: Any, dim: int, model: str) -> None:
        super().__init__()
        self.repr = hp.item_repr
        self.n_items = data.n_items
        self.dim = dim
        self.id_dropout = float(getattr(hp, "id_dropout", 0.0))
        self.modality_dropout = float(getattr(hp, "modality_dropout", 0.0))
        warm = torch.from_numpy(data.item_popularity > 0)
        self.register_buffer("warm", warm, persistent=False)
        if self.repr in ("id", "both"):
            self.item_id = nn.Embedding(self.n_items + 1, dim, padding_idx=0)
            nn.init.normal_(self.item_id.weight, std=float(hp.init_std))
            with torch.no_grad():
                self.item_id.weight[0].zero_()
        if self.repr in ("content", "both"):
            self.inputs = ModalInputs(data, hp.modalities, hp.feature_norm, model)
            self.projector = ModalityProjector(self.inputs.dims, dim, kind=hp.projection,
                                               dropout=hp.projection_dropout)
            self.fusion = build_fusion(hp.fusion, self.inputs.names, dim)
            # a fine-tuned text encoder (text_tuning.mode != frozen) replaces the stored text features
            from fusionrec.encoders.finetune.tower import build_text_tower

            self.tuning = getattr(hp, "text_tuning", None)
            self.text_tower = build_text_tower(data, self.tuning, hp.feature_norm, model)
            self._modalities = {m.name: m for m in select_modalities(data, hp.modalities, model)}
        self._cold_nbr: torch.Tensor | None = None
        self.cold_neighbours, self.cold_mix, self.cold_scale = 0, 1.0, 1.0
        if self.repr != "id":
            self.set_cold_neighbours(int(getattr(hp, "cold_neighbours", 0)), float(getattr(hp, "cold_mix", 1.0)),
                                     float(getattr(hp, "cold_scale", 1.0)))

    def set_cold_neighbours(self, k: int, mix: float = 1.0, scale: float = 1.0) -> None:
        """Place items without training events by their ``k`` content neighbours at inference (0 = off),
        their vectors then scaled by ``scale``."""
        self.cold_neighbours, self.cold_mix, self.cold_scale = int(k), float(mix), float(scale)
        self._cold_nbr = None
        if k > 0 and self.repr != "id":
            graph = modality_item_graph(self._modalities, int(k))
            self._cold_nbr = warm_neighbour_mean(graph, (~self.warm).cpu().numpy())

    def focus(self, targets: torch.Tensor) -> None:
        """Next-item targets of a training batch (item index + 1, 0 = pad): the text tower's items this step."""
        if getattr(self, "text_tower", None) is not None:
            self.text_tower.focus(targets[targets > 0] - 1)

    def content(self, training: bool) -> torch.Tensor:
        """[n_items, dim] fused content of every item (modality dropout while training)."""
        feats = self.inputs.all_features()
        if getattr(self, "text_tower", None) is not None:
            feats = self.text_tower.replace(feats, None, self.tuning.modality, training)
        views = self.projector(feats)
        masks = modality_dropout(self.inputs.all_masks(), self.modality_dropout, training)
        return self.fusion(views, masks)

    def table(self, training: bool) -> torch.Tensor:
        if self.repr == "id":
            return self.item_id.weight
        content = self.content(training)
        if self.repr == "both":
            keep = self.warm.float()
            if training and self.id_dropout > 0:
                keep = keep * (torch.rand(self.n_items, device=keep.device) >= self.id_dropout).float()
            content = content + self.item_id.weight[1:] * keep[:, None]
        if not training and self._cold_nbr is not None:
            nbr = self._cold_nbr.to(content.device)
            placed = torch.zeros(self.n_items, dtype=torch.bool, device=content.device)
            placed[nbr.indices()[0].unique()] = True      # new items with at least one warm neighbour
            # the neighbours' mean direction at their mean length: a plain weighted mean of vectors that
            # point different ways is shorter than each of them, and so scores below every neighbour
            mean = torch.sparse.mm(nbr, content)
            length = torch.sparse.mm(nbr, content.norm(dim=1, keepdim=True))
            mean = mean * length / mean.norm(dim=1, keepdim=True).clamp_min(1e-12)
            mixed = (1 - self.cold_mix) * content + self.cold_mix * mean
            content = torch.where(placed[:, None], mixed, content)
        if not training and self.cold_scale != 1.0:
            # how readily new items enter the lists: every score of a new item times cold_scale
            content = torch.where(self.warm[:, None], content, content * self.cold_scale)
        return torch.cat([content.new_zeros(1, self.dim), content], dim=0)
