"""A trainable image tower: item index -> image feature vector, adapted with the recommender's loss.

A model that opts in (``model.params.image_tuning.mode`` other than ``frozen``)
builds an :class:`ImageTower` that replaces the stored features of its image
modality; projection, fusion and loss are unchanged, so the gradient of the
recommender's loss reaches the image encoder (EfficientNet-Lite0). Modes:

* ``full`` -- the last ``blocks`` MBConv blocks and the head conv train (all their
  weights, batch-norm affine included);
* ``lora`` -- those layers stay frozen and their 1x1 convolutions get LoRA updates
  through ``peft``.

The frozen stem and lower blocks run once per image: their output feature maps are
cached (:class:`~fusionrec.encoders.finetune.image_cache.ImageStateCache`), so a step
runs only the trainable blocks over ``grad_items`` cached maps; the bank, the refresh
before scoring and the normalisation with the frozen features' statistics (the tower
starts where the frozen features are) come from
:class:`~fusionrec.encoders.finetune.banked.BankedTower`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrec.data.dataset import TrainData
from fusionrec.encoders.finetune.banked import BankedTower
from fusionrec.encoders.finetune.image_backbone import (
    ImageBackbone,
    ImageTop,
    plain_pointwise_convs,
)
from fusionrec.encoders.finetune.image_cache import ImageStateCache
from fusionrec.encoders.finetune.params import ImageTuneParams
from fusionrec.errors import UserError


class ImageTower(BankedTower):
    """``tower(training) -> [n_items, F]`` normalised image features (zeros where an item has no image)."""

    def __init__(self, data: TrainData, hp: ImageTuneParams, feature_norm: str = "standard") -> None:
        super().__init__()
        self.mode = hp.mode
        frame = data.item_frame
        if frame is None or len(frame) != data.n_items:
            raise UserError("image fine-tuning needs the item table (one row per item) to find item images",
                            "model.params.image_tuning", "load the data with its item table (data.items_path)")
        self.backbone = ImageBackbone(hp.weights_path, hp.variant, hp.image_column, hp.resize, hp.crop, hp.modality)
        root = Path(hp.image_root).expanduser() if hp.image_root else getattr(data, "root", None)
        prepared = self.backbone.encoder.prepare(frame.reset_index(drop=True), root)
        has = np.array([p.key is not None for p in prepared])
        if hp.modality in data.modalities:  # items the stored features mark absent stay absent
            has &= data.modalities[hp.modality].mask
        if not has.any():
            raise UserError("image fine-tuning: no item image could be read", "model.params.image_tuning.image_root",
                            "point image_root at the folder relative image paths are under (e.g. the dataset "
                            "folder), or name the image column with image_column")
        rows = np.flatnonzero(has)
        self.cut = max(self.backbone.n_blocks - hp.blocks, 0)
        cache = ImageStateCache(self.backbone, hp.cache_dir, hp.batch_size)
        states = cache.states([prepared[i].key for i in rows], [prepared[i].payload for i in rows], self.cut)
        self.cache_computed = cache.computed
        stored = data.modalities.get(hp.modality)
        if stored is not None and stored.dim != states["vectors"].shape[1]:
            raise UserError(f"image fine-tuning: {hp.variant} gives {states['vectors'].shape[1]}-d features but "
                            f"the stored {hp.modality!r} features are {stored.dim}-d",
                            "model.params.image_tuning.modality",
                            "tune the modality encoded with efficientnet-lite0 (the default image encoder)")
        self._setup(data.n_items, has, states["vectors"], feature_norm, hp.grad_items, hp.batch_size)
        self.register_buffer("maps", states["maps"], persistent=False)  # [R, C, H, W] float16
        self.top = ImageTop(self.backbone.model, self.cut)
        self._make_trainable(hp)
        self._scale_lr(hp.lr_mult)

    def _make_trainable(self, hp: ImageTuneParams) -> None:
        def check_targets() -> None:
            field = "model.params.image_tuning.lora_targets"
            if not plain_pointwise_convs(self.top, list(hp.lora_targets), field):
                raise UserError(f"LoRA: no layer of the last {hp.blocks} block(s) and the head is named "
                                f"{list(hp.lora_targets)}", field, "use _expand_conv, _project_conv, _conv_head")

        self._train_top(hp, "image_tuning", "name 1x1 convolutions: _expand_conv, _project_conv, _conv_head",
                        check_targets)

    def _encode_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Features of image rows through the trainable blocks and head (cached input maps)."""
        maps = self.maps[rows].float().contiguous(memory_format=torch.channels_last)
        return self.top(maps)


def build_image_tower(data: TrainData, hp: Any, feature_norm: str, model: str) -> ImageTower | None:
    """The tower a model's ``image_tuning`` asks for, or None for ``frozen``."""
    if hp is None or hp.mode == "frozen":
        return None
    if hp.modality not in data.modalities:
        raise UserError(f"{model}: image_tuning names modality {hp.modality!r}, which the data does not have",
                        "model.params.image_tuning.modality",
                        f"choose one of {list(data.modalities)} (e.g. data.modalities: [image])")
    return ImageTower(data, hp, feature_norm)
