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

In ``full`` / ``lora`` a step re-encodes with gradient only ``grad_items`` of the
batch's items (:meth:`focus`); every other item reads a *bank* holding its latest
encoding. Before scoring (any forward outside training) the bank is refreshed for
all items with the current weights, so evaluation and serving see one consistent
encoder. The bank is part of the state dict, so a saved model needs no refresh.

Outputs are normalised with statistics of the *frozen* features (fixed at
construction), the way :class:`~fusionrec.models.modal_inputs.ModalInputs` normalises
stored features, so a tower at its initial weights gives the model what the frozen
pipeline gives it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.encoders.finetune.backbone import Backbone, run_layers
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


class TextTower(nn.Module):
    """``tower(training) -> [n_items, H]`` normalised text features (zeros where an item has no text)."""

    def __init__(self, data: TrainData, hp: TextTuneParams, feature_norm: str = "standard") -> None:
        super().__init__()
        self.mode = hp.mode
        self.grad_items = hp.grad_items
        self.batch_size = hp.batch_size
        self.feature_norm = feature_norm
        texts, keys = item_texts(data.item_frame, data.n_items, hp.template)
        has = np.array([t is not None for t in texts])
        if hp.modality in data.modalities:  # items the stored features mark absent stay absent
            has &= data.modalities[hp.modality].mask
        if not has.any():
            raise UserError(f"text fine-tuning: no item has text under template {hp.template!r}",
                            "model.params.text_tuning.template", "name item-table columns that hold text")
        self.register_buffer("has_text", torch.from_numpy(has), persistent=False)
        rows = np.flatnonzero(has)
        self.register_buffer("text_rows", torch.from_numpy(rows), persistent=False)
        self.backbone = Backbone(hp.model_path, hp.max_seq_length)
        self.cut = max(self.backbone.n_layers - hp.layers, 0) if hp.mode in ("full", "lora") else None
        cache = FrozenStateCache(self.backbone, hp.cache_dir, hp.batch_size)
        states = cache.states([keys[i] for i in rows], [texts[i] for i in rows], self.cut)
        self.cache_computed = cache.computed
        frozen = states["pooled"][:, -1]                                   # [R, H] frozen sentence vectors
        self._init_norm(frozen)
        if hp.mode == "side_adapter":
            self.register_buffer("pooled", states["pooled"], persistent=False)
            self.adapter = SideAdapter(states["pooled"].shape[1], self.backbone.hidden, hp.adapter_dim)
        else:
            self.register_buffer("tokens", states["tokens"], persistent=False)
            self.register_buffer("token_mask", states["mask"], persistent=False)
            self.register_buffer("bank", frozen.clone())                    # latest encoding per text row
            self.top = nn.ModuleList(self.backbone.layers[self.cut:])
            self._make_trainable(hp)
            self._focus: torch.Tensor | None = None
            self.stale = False
        self._row_of = torch.full((data.n_items,), -1, dtype=torch.long)
        self._row_of[torch.from_numpy(rows)] = torch.arange(len(rows))
        for p in self.parameters():
            if p.requires_grad:
                p.lr_scale = hp.lr_mult  # read by the trainer's optimizer (one param group per scale)

    # ------------------------------------------------------------------ setup
    def _init_norm(self, frozen: torch.Tensor) -> None:
        mean = frozen.mean(0) if self.feature_norm in ("standard", "center_l2") else torch.zeros(frozen.shape[1])
        std = frozen.std(0, unbiased=False) if self.feature_norm == "standard" else torch.ones(frozen.shape[1])
        self.register_buffer("norm_mean", mean, persistent=False)
        self.register_buffer("norm_std", torch.where(std > 1e-8, std, torch.ones_like(std)), persistent=False)

    def _make_trainable(self, hp: TextTuneParams) -> None:
        if hp.mode == "full":
            self.top.requires_grad_(True)
            return
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError as err:
            raise UserError("text_tuning.mode lora needs the peft package", "model.params.text_tuning.mode",
                            "pip install 'fusionrec[finetune]' (or pip install peft)") from err
        config = LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                            target_modules=list(hp.lora_targets))
        try:
            inject_adapter_in_model(config, self.top)
        except ValueError as err:
            raise UserError(f"LoRA: {err}", "model.params.text_tuning.lora_targets",
                            "name linear layers of the model (BERT: query, key, value, dense)") from err
        for name, p in self.top.named_parameters():
            p.requires_grad_("lora_" in name)

    # ------------------------------------------------------------------ encoding
    def focus(self, items: torch.Tensor) -> None:
        """The items of the coming training step to re-encode with gradient (at most ``grad_items``)."""
        if self.mode == "side_adapter":
            return
        rows = self._row_of[items.cpu()].unique()
        rows = rows[rows >= 0]
        if len(rows) > self.grad_items:
            rows = rows[torch.randperm(len(rows))[: self.grad_items]]
        self._focus = rows

    def _encode_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Sentence vectors of text rows through the trainable top layers (cached input tokens)."""
        mask = self.token_mask[rows]
        t = int(mask.sum(1).max())
        states = self.tokens[rows, :t].float()
        mask = mask[:, :t].long()
        return self.backbone.sentence(run_layers(self.top, states, mask), mask)

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-encode every item with the current weights (before evaluation or serving)."""
        was = self.top.training
        self.top.eval()
        order = torch.argsort(self.token_mask.sum(1), descending=True)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            self.bank[rows] = self._encode_rows(rows)
        self.top.train(was)
        self.stale = False

    def _raw(self, training: bool) -> torch.Tensor:
        """[R, H] un-normalised vectors of the text rows."""
        if self.mode == "side_adapter":
            return self.pooled[:, -1] + self.adapter(self.pooled)
        if not training:
            if self.stale:
                self.refresh()
            return self.bank
        out = self.bank
        if self._focus is not None and len(self._focus):
            fresh = self._encode_rows(self._focus)
            with torch.no_grad():
                self.bank[self._focus] = fresh.detach()
            out = self.bank.detach().clone()
            out[self._focus] = fresh
            self.stale = True  # the weights change after this step: other rows are out of date
        self._focus = None
        return out

    def forward(self, training: bool) -> torch.Tensor:
        raw = self._raw(training)
        x = (raw - self.norm_mean) / self.norm_std
        if self.feature_norm in ("l2", "center_l2"):
            x = torch.nn.functional.normalize(x, dim=-1)
        out = x.new_zeros(len(self.has_text), x.shape[1])
        return out.index_copy(0, self.text_rows, x)

    def replace(self, feats: dict[str, torch.Tensor], items: torch.Tensor | None, modality: str,
                training: bool) -> dict[str, torch.Tensor]:
        """``feats`` with the text modality's rows (all items, or ``items``) from this tower."""
        vectors = self(training)
        out = dict(feats)
        out[modality] = vectors if items is None else vectors[items]
        return out

    def extra_repr(self) -> str:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return f"mode={self.mode}, cut={self.cut}, trainable={trainable}"


def build_text_tower(data: TrainData, hp: Any, feature_norm: str, model: str) -> TextTower | None:
    """The tower a model's ``text_tuning`` asks for, or None for ``frozen``."""
    if hp is None or hp.mode == "frozen":
        return None
    if hp.modality not in data.modalities:
        raise UserError(f"{model}: text_tuning names modality {hp.modality!r}, which the data does not have",
                        "model.params.text_tuning.modality", f"choose one of {list(data.modalities)}")
    return TextTower(data, hp, feature_norm)
