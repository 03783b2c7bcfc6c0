"""What every fine-tuned encoder tower shares: frozen-feature normalisation, the bank, focus and refresh.

A tower maps item indices to feature vectors that replace a stored modality. The
text tower (:mod:`fusionrec.encoders.finetune.tower`) and the image tower
(:mod:`fusionrec.encoders.finetune.image_tower`) subclass :class:`BankedTower` and
supply how a batch of their rows is encoded with the trainable part
(:meth:`BankedTower._encode_rows`).

* In ``full`` / ``lora`` a training step re-encodes with gradient at most
  ``grad_items`` of the step's items (:meth:`BankedTower.focus`); every other item
  reads a *bank* holding its latest encoding. Before any forward outside training the
  bank is refreshed for all items with the current weights, so evaluation and serving
  see one consistent encoder. The bank is in the state dict: a saved model needs no
  refresh.
* Outputs are normalised with statistics of the *frozen* vectors (fixed at
  construction), the way :class:`~fusionrec.models.modal_inputs.ModalInputs`
  normalises stored features, so a tower at its initial weights gives the model what
  the frozen pipeline gives it.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class BankedTower(nn.Module):
    """``tower(training) -> [n_items, H]`` normalised vectors (zeros for items without content)."""

    mode: str
    cut: int | None = None

    def _setup(self, n_items: int, has: np.ndarray, frozen: torch.Tensor, feature_norm: str,
               grad_items: int, batch_size: int) -> None:
        """Common state; ``has`` marks the items with content, ``frozen`` holds their frozen vectors [R, H]."""
        self.grad_items = int(grad_items)
        self.batch_size = int(batch_size)
        self.feature_norm = feature_norm
        rows = np.flatnonzero(has)
        self.register_buffer("has_content", torch.from_numpy(has), persistent=False)
        self.register_buffer("content_rows", torch.from_numpy(rows), persistent=False)
        self._init_norm(frozen)
        if self.mode in ("full", "lora"):
            self.register_buffer("bank", frozen.clone())  # latest encoding per content row
        self._focus: torch.Tensor | None = None
        self.stale = False
        row_of = torch.full((n_items,), -1, dtype=torch.long)   # item -> content row (-1: no content)
        row_of[torch.from_numpy(rows)] = torch.arange(len(rows))
        self.register_buffer("_row_of", row_of, persistent=False)   # moves with the model (train.device)

    def _init_norm(self, frozen: torch.Tensor) -> None:
        mean = frozen.mean(0) if self.feature_norm in ("standard", "center_l2") else torch.zeros(frozen.shape[1])
        std = frozen.std(0, unbiased=False) if self.feature_norm == "standard" else torch.ones(frozen.shape[1])
        self.register_buffer("norm_mean", mean, persistent=False)
        self.register_buffer("norm_std", torch.where(std > 1e-8, std, torch.ones_like(std)), persistent=False)

    def _train_top(self, hp, setting: str, targets_fix: str, check_targets=None) -> None:
        """``full``: every weight of ``self.top`` trains; ``lora``: only peft LoRA matrices on
        ``hp.lora_targets`` of ``self.top``. ``setting`` names the params block in messages
        (``text_tuning``), ``targets_fix`` says which layer names the model has; ``check_targets``
        (optional) runs once peft is known to be there, before the LoRA layers are injected."""
        if hp.mode == "full":
            self.top.requires_grad_(True)
            return
        from fusionrec.errors import UserError

        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError as err:
            raise UserError(f"{setting}.mode lora needs the peft package", f"model.params.{setting}.mode",
                            "pip install 'fusionrec[finetune]' (or pip install peft)") from err
        if check_targets is not None:
            check_targets()
        config = LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                            target_modules=list(hp.lora_targets))
        try:
            inject_adapter_in_model(config, self.top)
        except ValueError as err:
            raise UserError(f"LoRA: {err}", f"model.params.{setting}.lora_targets", targets_fix) from err
        for name, p in self.top.named_parameters():
            p.requires_grad_("lora_" in name)

    def _scale_lr(self, lr_mult: float) -> None:
        for p in self.parameters():
            if p.requires_grad:
                p.lr_scale = lr_mult  # read by the trainer's optimizer (one param group per scale)

    # ------------------------------------------------------------------ hooks
    def _encode_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """[len(rows), H] vectors of content rows through the trainable part (full / lora)."""
        raise NotImplementedError

    def _trainable(self) -> nn.Module:
        """The module whose train/eval state a refresh switches (full / lora)."""
        return self.top

    def _refresh_order(self) -> torch.Tensor:
        """Rows in the order a refresh encodes them (the text tower groups similar lengths)."""
        return torch.arange(len(self.bank))

    def _adapter_raw(self) -> torch.Tensor:
        """[R, H] vectors of a tower that recomputes every row each step (the text side adapter)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ encoding
    def focus(self, items: torch.Tensor) -> None:
        """The items of the coming training step to re-encode with gradient (at most ``grad_items``)."""
        if self.mode not in ("full", "lora"):
            return
        rows = self._row_of[items.to(self._row_of.device)].unique()
        rows = rows[rows >= 0]
        if len(rows) > self.grad_items:
            rows = rows[torch.randperm(len(rows), device=rows.device)[: self.grad_items]]
        self._focus = rows

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-encode every item with the current weights (before evaluation or serving)."""
        module = self._trainable()
        was = module.training
        module.eval()
        order = self._refresh_order()
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            self.bank[rows] = self._encode_rows(rows)
        module.train(was)
        self.stale = False

    def _raw(self, training: bool) -> torch.Tensor:
        """[R, H] un-normalised vectors of the content rows."""
        if self.mode not in ("full", "lora"):
            return self._adapter_raw()
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
        out = x.new_zeros(len(self.has_content), x.shape[1])
        return out.index_copy(0, self.content_rows, x)

    def replace(self, feats: dict[str, torch.Tensor], items: torch.Tensor | None, modality: str,
                training: bool) -> dict[str, torch.Tensor]:
        """``feats`` with the modality's rows (all items, or ``items``) from this tower.

        A training call with ``items`` and no :meth:`focus` before it (a model that scores only
        some items per step) re-encodes up to ``grad_items`` of those items with gradient."""
        if training and items is not None and self._focus is None:
            self.focus(items)
        vectors = self(training)
        out = dict(feats)
        out[modality] = vectors if items is None else vectors[items]
        return out

    def extra_repr(self) -> str:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return f"mode={self.mode}, cut={self.cut}, trainable={trainable}"
