"""One item modality as a dense feature matrix with an explicit presence mask."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODALITY_KINDS = ("text", "image", "audio", "attribute", "other")


@dataclass
class FeatureModality:
    """One modality as a dense item-feature matrix plus an explicit presence mask.

    ``mask[j]`` is False when item ``j`` has no content for this modality; its
    row in ``features`` is then all zeros and must not be used as if it were
    real (models apply modality dropout / masking instead of mean imputation).
    """

    name: str
    kind: str
    features: np.ndarray
    mask: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in MODALITY_KINDS:
            raise ValueError(
                f"modality {self.name!r}: kind {self.kind!r} is not one of {MODALITY_KINDS}"
            )
        feats = np.asarray(self.features)
        if feats.ndim != 2:
            raise ValueError(
                f"modality {self.name!r}: features must be 2-D (items x dim), got shape {feats.shape}"
            )
        self.features = np.ascontiguousarray(feats, dtype=np.float32)
        if self.mask is None:
            self.mask = np.isfinite(self.features).all(axis=1)
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.mask.shape != (self.features.shape[0],):
            raise ValueError(
                f"modality {self.name!r}: mask has shape {self.mask.shape}, "
                f"expected ({self.features.shape[0]},)"
            )
        # Rows that are absent are zeroed so no NaN leaks into a model.
        if not self.mask.all():
            self.features[~self.mask] = 0.0

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def n_items(self) -> int:
        return int(self.features.shape[0])

    @property
    def coverage(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def subset(self, rows: np.ndarray) -> FeatureModality:
        return FeatureModality(self.name, self.kind, self.features[rows], self.mask[rows], self.source)
