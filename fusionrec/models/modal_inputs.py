"""Item modality inputs for multimodal models: selection, normalisation, masks as tensors.

Models are built from :class:`~fusionrec.data.dataset.TrainData`; this helper
turns ``data.modalities`` into fixed (non-trainable, non-persistent) tensors so
every multimodal model selects and normalises content the same way:

* ``modalities`` param: which modalities to use (``None``/``"all"`` = every one
  the data carries; the run's ``data.modalities`` already restricts that set);
* ``feature_norm``: ``standard`` (z-score per dimension, statistics over the
  *present* rows only), ``l2`` (unit rows), ``center_l2`` (centre then unit
  rows) or ``none`` (raw, as MMRec feeds them). Absent rows stay exactly zero
  and are flagged by the mask -- nothing is imputed.

The buffers are non-persistent: a saved model is rebuilt from its saved
dataset, so the features are not duplicated into the weights file.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from fusionrec.data.dataset import FeatureModality, TrainData
from fusionrec.errors import UserError

FEATURE_NORMS = ("standard", "l2", "center_l2", "none")


def select_modalities(data: TrainData, wanted: Any, model: str) -> list[FeatureModality]:
    """The modalities a model uses, in a stable order; clear error when one is missing."""
    available = list(data.modalities)
    if wanted in (None, "all", "", []):
        names = available
    else:
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        if len(names) == 1 and "," in names[0]:
            names = [n.strip() for n in names[0].split(",") if n.strip()]
        missing = [n for n in names if n not in data.modalities]
        if missing:
            raise UserError(
                f"model {model!r} asks for modalities {missing} that the data does not have",
                f"model.params.modalities={names}",
                f"choose from {available} (or encode them first with `fusionrec encode`)",
            )
    if not names:
        raise UserError(
            f"model {model!r} needs at least one item modality but the data has none",
            "data.modalities / data.features",
            "add precomputed features (data.features) or run `fusionrec encode`",
        )
    return [data.modalities[n] for n in names]


def normalise_features(features: np.ndarray, mask: np.ndarray, how: str) -> np.ndarray:
    """Normalise a feature matrix using statistics of the present rows only."""
    if how not in FEATURE_NORMS:
        raise UserError(f"unknown feature_norm {how!r}", "model.params.feature_norm", f"use one of {FEATURE_NORMS}")
    x = features.astype(np.float32, copy=True)
    present = x[mask]
    if how == "none" or present.shape[0] == 0:
        return x
    if how in ("standard", "center_l2"):
        mean = present.mean(axis=0)
        x = x - mean
        if how == "standard":
            std = present.std(axis=0)
            x = x / np.where(std > 1e-8, std, 1.0)
    if how in ("l2", "center_l2"):
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norms, 1e-8)
    x[~mask] = 0.0
    return x


class ModalInputs(nn.Module):
    """Normalised item features and presence masks as (non-persistent) tensors."""

    def __init__(self, data: TrainData, wanted: Any = None, feature_norm: str = "standard",
                 model: str = "model") -> None:
        super().__init__()
        mods = select_modalities(data, wanted, model)
        self.names: list[str] = [m.name for m in mods]
        self.kinds: dict[str, str] = {m.name: m.kind for m in mods}
        self.dims: dict[str, int] = {m.name: m.dim for m in mods}
        for m in mods:
            feats = normalise_features(m.features, m.mask, feature_norm)
            self.register_buffer(f"feat_{m.name}", torch.from_numpy(feats), persistent=False)
            self.register_buffer(f"mask_{m.name}", torch.from_numpy(m.mask.copy()), persistent=False)

    def features(self, name: str) -> torch.Tensor:
        return getattr(self, f"feat_{name}")

    def mask(self, name: str) -> torch.Tensor:
        return getattr(self, f"mask_{name}")

    def all_features(self) -> dict[str, torch.Tensor]:
        return {n: self.features(n) for n in self.names}

    def all_masks(self) -> dict[str, torch.Tensor]:
        return {n: self.mask(n) for n in self.names}

    def gather(self, items: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Features and masks of the given items."""
        return ({n: self.features(n)[items] for n in self.names}, {n: self.mask(n)[items] for n in self.names})

    def concatenated(self, names: Sequence[str] | None = None) -> torch.Tensor:
        """[n_items, sum of dims]: the modalities side by side (absent blocks are zeros)."""
        return torch.cat([self.features(n) for n in (names or self.names)], dim=1)
