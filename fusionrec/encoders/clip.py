"""CLIP image and text towers (Hugging Face ``transformers`` CLIPModel) from a local folder.

Both towers project into one shared space, so an item's poster and its text start
out comparable -- useful for alignment and for cold items with only one modality.
``model_path`` is a folder saved with ``CLIPModel.save_pretrained`` (config.json +
weights) plus, for the text tower, its tokenizer files, and, optionally,
``preprocessor_config.json`` (resize/crop/mean/std for images; CLIP's published
defaults otherwise). Nothing is downloaded.

Image preprocessing reuses :class:`~fusionrec.encoders.image.ImagePreprocessor`
(Pillow; EXIF, alpha, CMYK, size checks), so bad files are reported the same way.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.encoders.base import Encoder, ItemInput, dir_fingerprint
from fusionrec.encoders.image import (
    DEFAULT_MAX_PIXELS,
    ImagePreprocessor,
    prepare_image_items,
)
from fusionrec.encoders.text import DEFAULT_TEMPLATE, TextTemplate, prepare_text_items
from fusionrec.errors import UserError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _check_folder(model_path: str | Path | None) -> Path:
    if model_path is None:
        raise UserError(
            "CLIP encoders need a local model folder",
            fix="pass model_path=<folder saved with CLIPModel.save_pretrained> "
            "(CLI: --param image.model_path=/models/clip-vit-b32); models are never downloaded",
        )
    path = Path(model_path).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a saved CLIP model (no config.json)", where=str(path),
                        fix="point model_path at a folder written by CLIPModel.save_pretrained")
    return path


def _load_clip(path: Path):
    from transformers import CLIPModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = CLIPModel.from_pretrained(str(path), local_files_only=True)
    except Exception as err:
        raise UserError(f"could not load a CLIP model from {path}: {err}", where=str(path),
                        fix="the folder must hold a CLIPModel config.json and weights") from err
    model.eval()
    return model


def _projected(output) -> Any:
    """``get_*_features`` returns a tensor in transformers 4 and an output object in 5."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


def clip_preprocessor(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImagePreprocessor:
    """Resize/crop/normalisation from ``preprocessor_config.json``, else CLIP's defaults at the model's size."""
    cfg_file = path / "preprocessor_config.json"
    model_cfg = json.loads((path / "config.json").read_text())
    image_size = int(model_cfg.get("vision_config", {}).get("image_size", 224))
    resize, crop, mean, std = image_size, image_size, CLIP_MEAN, CLIP_STD
    if cfg_file.is_file():
        pre = json.loads(cfg_file.read_text())
        size = pre.get("size", resize)
        resize = int(size.get("shortest_edge", size.get("height", resize)) if isinstance(size, dict) else size)
        crop_size = pre.get("crop_size", crop)
        crop = int(crop_size.get("height", crop) if isinstance(crop_size, dict) else crop_size)
        mean = tuple(pre.get("image_mean", mean))
        std = tuple(pre.get("image_std", std))
    return ImagePreprocessor(resize=resize, crop=crop, mean=mean, std=std, max_pixels=max_pixels)


class _CLIPTower(Encoder):
    """What both CLIP towers share: the local model folder, its fingerprint, the lazily loaded model."""

    def __init__(self, model_path: str | Path | None, normalize: bool, modality: str | None,
                 device: str = "auto") -> None:
        super().__init__(modality)
        self.model_path = _check_folder(model_path)
        self.normalize = normalize
        self.device = device   # auto | cpu | cuda[:N] | mps; a run sets its train.device here
        self._model = None
        self._fingerprint: str | None = None

    def _id_parts(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = dir_fingerprint(self.model_path)
        return {"model": self._fingerprint, "normalize": self.normalize}

    @property
    def model(self):
        if self._model is None:
            from fusionrec.train.device import resolve_device

            self._model = _load_clip(self.model_path).to(resolve_device(self.device, "the CLIP encoder's device"))
        return self._model

    def _run(self, fn, **inputs):
        """``fn(**inputs)`` on the model's device, projected and L2-normalised as asked; a float32 array."""
        import torch

        dev = next(self.model.parameters()).device
        with torch.inference_mode():
            feats = _projected(fn(**{k: v.to(dev) for k, v in inputs.items()}))
            if self.normalize:
                feats = torch.nn.functional.normalize(feats, dim=-1)
        return feats.float().cpu().numpy()

    @property
    def dim(self) -> int:
        cfg = json.loads((self.model_path / "config.json").read_text())
        return int(cfg.get("projection_dim", 512))


class CLIPImageEncoder(_CLIPTower):
    """CLIP vision tower + projection: image file -> ``projection_dim`` vector (L2-normalised by default)."""

    name = "clip-image"
    kind = "image"
    parallel_load = True

    def __init__(
        self,
        model_path: str | Path | None = None,
        image_column: str | None = None,
        normalize: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        modality: str | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__(model_path, normalize, modality, device)
        self.image_column = image_column
        self.preprocess = clip_preprocessor(self.model_path, max_pixels)

    def _id_parts(self) -> dict[str, Any]:
        return {**super()._id_parts(), **self.preprocess.id_parts()}

    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        return prepare_image_items(items, root, self.image_column)

    def load(self, payload: str) -> np.ndarray:
        return self.preprocess(payload)

    def collate(self, loaded: Sequence[np.ndarray]):
        import torch

        return torch.from_numpy(np.stack(loaded))

    def encode(self, batch) -> np.ndarray:
        import torch

        if not isinstance(batch, torch.Tensor):
            batch = self.collate(batch)
        return self._run(self.model.get_image_features, pixel_values=batch).astype(np.float32, copy=False)


class CLIPTextEncoder(_CLIPTower):
    """CLIP text tower + projection over the same item-text template as the MiniLM encoder.

    Texts longer than the model's context (77 tokens for released CLIPs) are truncated
    by the tokenizer.
    """

    name = "clip-text"
    kind = "text"

    def __init__(
        self,
        model_path: str | Path | None = None,
        template: str = DEFAULT_TEMPLATE,
        split_fields: dict[str, str] | None = None,
        normalize: bool = True,
        modality: str | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__(model_path, normalize, modality, device)
        self.template = TextTemplate(template, split_fields)
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_path), local_files_only=True)
            except Exception as err:
                raise UserError(f"no usable CLIP tokenizer in {self.model_path}: {err}", where=str(self.model_path),
                                fix="save the tokenizer next to the model (tokenizer.save_pretrained(folder))") from err
        return self._tokenizer

    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        # Same rendering and reporting rules as the sentence-transformers encoder.
        return prepare_text_items(self.template, items, root)

    def sort_key(self, item: ItemInput) -> int:
        return -len(item.payload)

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        max_len = int(self.model.config.text_config.max_position_embeddings)
        tokens = self.tokenizer(list(batch), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        return self._run(self.model.get_text_features, input_ids=tokens["input_ids"],
                         attention_mask=tokens["attention_mask"]).astype(np.float32, copy=False)
