"""A trainable text tower: item index -> text feature vector, adapted with the recommender's loss.

A model that opts in (``model.params.text_tuning.mode`` other than ``frozen``)
builds a :class:`TextTower` and lets it replace the stored features of its text
modality; the model's projection, fusion and loss are unchanged, so the gradient of
the recommender's loss flows into the tower. Modes:

* ``side_adapter`` -- :class:`~fusionrec.encoders.finetune.side_adapter.SideAdapter`
  over cached frozen per-layer states; every item is recomputed each step (cheap);
* ``full`` -- the top ``layers`` transformer layers are trained; the layers below
  are frozen and their output tokens are cached once per item, so a step runs only
  the top layers;
* ``lora`` -- the same top layers stay frozen and get LoRA updates through ``peft``.

The bank of latest encodings (``full`` / ``lora``), the refresh before scoring and the
normalisation with the frozen vectors' statistics are shared with the image tower:
:class:`~fusionrec.encoders.finetune.banked.BankedTower`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.encoders.finetune.backbone import Backbone, run_layers
from fusionrec.encoders.finetune.banked import BankedTower
from fusionrec.encoders.finetune.cache import FrozenStateCache
from fusionrec.encoders.finetune.params import TextTuneParams
from fusionrec.encoders.finetune.side_adapter import SideAdapter
from fusionrec.encoders.text import TextTemplate, prepare_text_items
from fusionrec.errors import UserError


def item_texts(frame: pd.DataFrame | None, n_items: int, template: str) -> tuple[list[str | None], list[str | None]]:
    """Per item index: its text (None = no text) and content key, rendered from the item table."""
    if frame is None or len(frame) != n_items:
        raise UserError("text fine-tuning needs the item table (one row per item) to read item texts",
                        "model.params.text_tuning", "load the data with its item table (data.items_path)")
    prepared = prepare_text_items(TextTemplate(template), frame.reset_index(drop=True), None)
    return [p.payload for p in prepared], [p.key for p in prepared]


class TextTower(BankedTower):
    """``tower(training) -> [n_items, H]`` normalised text features (zeros where an item has no text)."""

    def __init__(self, data: TrainData, hp: TextTuneParams, feature_norm: str = "standard") -> None:
        super().__init__()
        self.mode = hp.mode
        texts, keys = item_texts(data.item_frame, data.n_items, hp.template)
        has = np.array([t is not None for t in texts])
        if hp.modality in data.modalities:  # items the stored features mark absent stay absent
            has &= data.modalities[hp.modality].mask
        if not has.any():
            raise UserError(f"text fine-tuning: no item has text under template {hp.template!r}",
                            "model.params.text_tuning.template", "name item-table columns that hold text")
        rows = np.flatnonzero(has)
        self.backbone = Backbone(hp.model_path, hp.max_seq_length)
        self.cut = max(self.backbone.n_layers - hp.layers, 0) if hp.mode in ("full", "lora") else None
        cache = FrozenStateCache(self.backbone, hp.cache_dir, hp.batch_size)
        states = cache.states([keys[i] for i in rows], [texts[i] for i in rows], self.cut)
        self.cache_computed = cache.computed
        frozen = states["pooled"][:, -1]                                   # [R, H] frozen sentence vectors
        self._setup(data.n_items, has, frozen, feature_norm, hp.grad_items, hp.batch_size)
        if hp.mode == "side_adapter":
            self.register_buffer("pooled", states["pooled"], persistent=False)
            self.adapter = SideAdapter(states["pooled"].shape[1], self.backbone.hidden, hp.adapter_dim)
        else:
            self.register_buffer("tokens", states["tokens"], persistent=False)
            self.register_buffer("token_mask", states["mask"], persistent=False)
            self.top = nn.ModuleList(self.backbone.layers[self.cut:])
            self._make_trainable(hp)
        self._scale_lr(hp.lr_mult)

    # ------------------------------------------------------------------ setup
    def _make_trainable(self, hp: TextTuneParams) -> None:
        self._train_top(hp, "text_tuning", "name linear layers of the model (BERT: query, key, value, dense)")

    # ------------------------------------------------------------------ encoding
    def _encode_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Sentence vectors of text rows through the trainable top layers (cached input tokens)."""
        mask = self.token_mask[rows]
        t = int(mask.sum(1).max())
        states = self.tokens[rows, :t].float()
        mask = mask[:, :t].long()
        return self.backbone.sentence(run_layers(self.top, states, mask), mask)

    def _refresh_order(self) -> torch.Tensor:
        return torch.argsort(self.token_mask.sum(1), descending=True)  # similar lengths together: less padding

    def _adapter_raw(self) -> torch.Tensor:
        return self.pooled[:, -1] + self.adapter(self.pooled)


def build_text_tower(data: TrainData, hp: Any, feature_norm: str, model: str) -> TextTower | None:
    """The tower a model's ``text_tuning`` asks for, or None for ``frozen``."""
    if hp is None or hp.mode == "frozen":
        return None
    if hp.modality not in data.modalities:
        raise UserError(f"{model}: text_tuning names modality {hp.modality!r}, which the data does not have",
                        "model.params.text_tuning.modality", f"choose one of {list(data.modalities)}")
    return TextTower(data, hp, feature_norm)
