"""On-disk cache of what image fine-tuning never recomputes: frozen feature maps and frozen features.

Like the text cache (:mod:`fusionrec.encoders.finetune.cache`, whose locked append it
uses), rows are keyed by the item's *content key* (the hash of the image file's bytes,
as in the feature store) inside a folder named by the encoder id (architecture,
weights fingerprint, resize / crop / normalisation), so a replaced poster or another
checkpoint never reads a stale row and a new item costs one frozen pass of its own.
Files (``<cache_dir>/<encoder id>/``):

* ``vectors.pt`` -- [F] float32 frozen feature per image (the head output averaged over
  the final map: what the feature store holds; the tower's starting point and
  normalisation statistics);
* ``maps<k>.pt`` -- [C, H, W] float16 feature maps entering block ``k`` (the input of
  the trainable last blocks), so an epoch neither decodes images nor runs the frozen
  layers.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fusionrec.encoders.base import ItemProblem
from fusionrec.encoders.finetune.cache import _append, _load, default_cache_dir
from fusionrec.encoders.finetune.image_backbone import ImageBackbone
from fusionrec.errors import UserError


class ImageStateCache:
    """Frozen features and feature maps entering a block, per image content key, for one backbone."""

    def __init__(self, backbone: ImageBackbone, cache_dir: str | Path | None = None, batch_size: int = 64) -> None:
        self.backbone = backbone
        self.folder = Path(cache_dir or default_cache_dir()).expanduser() / backbone.id
        self.batch_size = int(batch_size)
        self.computed = 0  # images run through the frozen network by the last call (0 = all from disk)

    def states(self, keys: Sequence[str], paths: Sequence[str], cut: int) -> dict[str, torch.Tensor]:
        """``vectors`` [N, F] float32 and ``maps`` [N, C, H, W] float16 (entering block ``cut``) of the images;
        only keys missing from either file are decoded and run through the frozen network."""
        vec_path, map_path = self.folder / "vectors.pt", self.folder / f"maps{cut}.pt"
        vectors, maps = _load(vec_path), _load(map_path)
        have = set(vectors["keys"]) & set(maps["keys"])
        missing = list(dict.fromkeys(k for k in keys if k not in have))  # one pass per distinct image
        self.computed = len(missing)
        if missing:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            new_vec, new_maps = self._compute([paths[first[k]] for k in missing], cut)
            vectors = _append(vec_path, missing, {"vectors": new_vec})
            maps = _append(map_path, missing, {"maps": new_maps})
        return {"vectors": vectors["vectors"][_rows(vectors["keys"], keys)],
                "maps": maps["maps"][_rows(maps["keys"], keys)]}

    def _compute(self, paths: list[str], cut: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One frozen pass over new images: decode, preprocess, lower blocks (kept), rest of the network."""
        enc, bb = self.backbone.encoder, self.backbone
        vecs, maps = [], []
        for start in range(0, len(paths), self.batch_size):
            loaded = []
            for path in paths[start:start + self.batch_size]:
                try:
                    loaded.append(enc.load(path))
                except ItemProblem as err:
                    raise UserError(f"image fine-tuning could not read {err.file or path}: {err.reason}",
                                    "model.params.image_tuning",
                                    "fix or remove the file (`fusionrec data validate` lists unreadable images), "
                                    "or re-encode so the stored features mark it missing") from err
            batch = enc.collate(loaded)
            lower = bb.lower(batch, cut)
            vecs.append(bb.frozen_top(lower, cut).float())
            maps.append(lower.half().contiguous())  # NCHW float16: half the memory, exact enough for training
        return torch.cat(vecs), torch.cat(maps)


def _rows(stored: Sequence[str], keys: Sequence[str]) -> torch.Tensor:
    index = {k: i for i, k in enumerate(stored)}
    return torch.from_numpy(np.array([index[k] for k in keys], dtype=np.int64))
