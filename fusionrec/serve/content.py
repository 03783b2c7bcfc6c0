"""Content side of serving: encoding new items and mapping content into the model's item space.

Two pieces:

* :class:`ContentEncoder` -- a small adapter around modality encoders (engineer D's
  :class:`fusionrec.encoders.base.Encoder` objects, or any object with the same
  ``prepare/load/encode`` methods). The service only calls
  :meth:`ContentEncoder.encode_item` (a new item's text and/or image file) and
  :meth:`ContentEncoder.encode_text` (a free-text query).
* :class:`ContentMap` -- a ridge regression from content features of warm items
  (items the model was trained on) to their item embeddings, fitted at load time.
  A model trained on ids only has no embedding for a posted item; this map gives
  it one, so the item can be recommended and found via ``/similar`` at once.
  Because the map is linear, an item's mapped embedding splits exactly into one
  part per modality plus an intercept, which ``/explain`` uses for modality
  contributions.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fusionrec.data.roles import AUDIO_COLUMN, IMAGE_COLUMN

MEDIA_COLUMN = {"image": IMAGE_COLUMN, "audio": AUDIO_COLUMN}


class ModalityEncoder(Protocol):
    """The subset of :class:`fusionrec.encoders.base.Encoder` the service uses."""

    kind: str
    modality: str

    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[Any]: ...

    def load(self, payload: Any) -> Any: ...

    def encode(self, batch: Any) -> np.ndarray: ...


class ContentEncodingError(ValueError):
    """The content of a posted item cannot be encoded (e.g. undecodable image bytes)."""

    def __init__(self, modality: str, reason: str) -> None:
        super().__init__(f"{modality}: {reason}")
        self.modality = modality
        self.reason = reason


class ContentEncoder:
    """Encodes one item's raw content with one encoder per modality (names match the dataset's modalities)."""

    def __init__(self, encoders: Mapping[str, ModalityEncoder]) -> None:
        self.encoders = dict(encoders)

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def kinds(self) -> dict[str, str]:
        return {name: enc.kind for name, enc in self.encoders.items()}

    def encode_item(self, fields: dict[str, Any], root: Path | None,
                    only: list[str] | None = None) -> dict[str, np.ndarray]:
        """Vectors for every modality the item has content for.

        ``fields`` is one item-table row (``title``, ``text``..., ``image_path``
        relative to ``root``). A modality whose content is absent is left out; one
        whose content is present but unusable raises :class:`ContentEncodingError`.
        """
        frame = pd.DataFrame([fields])
        out: dict[str, np.ndarray] = {}
        for name, enc in self.encoders.items():
            if only is not None and name not in only:
                continue
            prepared = enc.prepare(frame, root)[0]
            key = getattr(prepared, "key", prepared)
            if key is None:
                problem = getattr(prepared, "problem", None) or "no content"
                if _has_input(enc.kind, fields):
                    raise ContentEncodingError(name, problem)
                continue
            try:
                loaded = enc.load(getattr(prepared, "payload", prepared))
            except Exception as err:  # encoders raise ItemProblem (or PIL errors) for bad content
                raise ContentEncodingError(name, getattr(err, "reason", None) or str(err)) from err
            out[name] = np.asarray(enc.encode([loaded]), dtype=np.float32)[0]
        return out

    def encode_text(self, text: str, fields: list[str] | None = None) -> dict[str, np.ndarray]:
        """Vectors of a free-text query for the text modalities only.

        The query fills every text column the item table uses (``fields``), so
        the text encoder sees it wherever it reads an item's text from.
        """
        names = [n for n, enc in self.encoders.items() if enc.kind == "text"]
        row = {f: text for f in (fields or ["title", "text"])}
        return self.encode_item(row, None, only=names) if names else {}


def _has_input(kind: str, fields: dict[str, Any]) -> bool:
    """Did the posted item send content for this kind? (Then failing to encode it is the client's error.)"""
    if kind in ("image", "audio"):
        return bool(fields.get(MEDIA_COLUMN[kind]))
    if kind == "text":
        # only an explicit text counts: an item posted with a photo and category attributes but no
        # text gets its text masked, like a catalogue item without copy
        return isinstance(fields.get("text"), str) and bool(fields["text"].strip())
    return False  # attributes: an item without any is ordinary, not an error


def _l2rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


@dataclass
class ContentMap:
    """Ridge map ``[normalised content features] -> item embedding`` with modality dropout.

    Each modality block is L2-normalised (encoders have very different scales).
    Training rows are the warm items with all modalities, plus copies with each
    modality zeroed, so a posted item (or a text query) with only some
    modalities is mapped by the same weights instead of being pushed off-distribution.
    ``target_norm`` is the median warm-item norm: ridge predictions shrink toward
    the mean, and inner-product scores would otherwise rank every cold item low.
    """

    modalities: list[str]
    dims: list[int]
    weights: np.ndarray      # [sum(dims), d]
    intercept: np.ndarray    # [d]
    target_norm: float
    fit_r2: float

    @classmethod
    def fit(cls, features: Mapping[str, tuple[np.ndarray, np.ndarray]], embeddings: np.ndarray,
            warm: np.ndarray, alpha: float = 1.0) -> ContentMap | None:
        """Fit on rows ``warm`` (bool). ``features``: modality -> (matrix, presence mask). None if nothing to fit."""
        names = [n for n, (f, m) in features.items() if (m & warm).sum() >= 2]
        if not names or warm.sum() < 2:
            return None
        blocks, masks = [], []
        for n in names:
            f, m = features[n]
            blocks.append(_l2rows(np.asarray(f, dtype=np.float64)) * m[:, None])
            masks.append(m)
        x_all = np.hstack(blocks)
        present = np.vstack(masks).T  # [n_items, n_mods]
        rows = np.flatnonzero(warm & present.any(axis=1))
        xs, ys = [x_all[rows]], [embeddings[rows]]
        dims = [b.shape[1] for b in blocks]
        offsets = np.cumsum([0] + dims)
        if len(names) > 1:
            for j in range(len(names)):
                keep = rows[present[rows].sum(axis=1) > 1]  # only rows that still have another modality
                x = x_all[keep].copy()
                x[:, offsets[j]:offsets[j + 1]] = 0.0
                xs.append(x)
                ys.append(embeddings[keep])
        x = np.vstack(xs)
        y = np.asarray(np.vstack(ys), dtype=np.float64)
        x_mean = x.mean(axis=0)
        y_mean = y.mean(axis=0)
        xc, yc = x - x_mean, y - y_mean
        # primal ridge: (X^T X + alpha I)^-1 X^T Y; dims are at most a few thousand
        gram = xc.T @ xc
        gram[np.diag_indices_from(gram)] += alpha
        w = np.linalg.solve(gram, xc.T @ yc)
        b = y_mean - x_mean @ w
        pred = x @ w + b
        ss_res = float(((y - pred) ** 2).sum())
        ss_tot = float(((y - y_mean) ** 2).sum()) or 1.0
        norms = np.linalg.norm(embeddings[rows], axis=1)
        return cls(names, dims, w.astype(np.float32), b.astype(np.float32), float(np.median(norms)),
                   1.0 - ss_res / ss_tot)

    def _block(self, name: str) -> slice:
        i = self.modalities.index(name)
        start = int(sum(self.dims[:i]))
        return slice(start, start + self.dims[i])

    def parts(self, vectors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-modality contribution to the (unscaled) mapped embedding, plus ``"intercept"``."""
        out: dict[str, np.ndarray] = {}
        for name in self.modalities:
            v = vectors.get(name)
            if v is None:
                continue
            v = np.asarray(v, dtype=np.float32).reshape(-1)
            v = v / max(float(np.linalg.norm(v)), 1e-12)
            out[name] = v @ self.weights[self._block(name)]
        out["intercept"] = self.intercept.copy()
        return out

    def usable(self, vectors: Mapping[str, np.ndarray]) -> bool:
        return any(vectors.get(n) is not None for n in self.modalities)

    def embed(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        """Item-space vector for content ``vectors`` (modality -> raw feature), rescaled to ``target_norm``."""
        e = sum(self.parts(vectors).values())
        norm = float(np.linalg.norm(e))
        return (e * (self.target_norm / norm if norm > 0 else 1.0)).astype(np.float32)
