"""The encoder interface every modality encoder implements.

An encoder turns one item's raw content into one float32 vector. The work is
split in three steps so that the feature store and the encode pipeline can skip
and parallelise the expensive parts:

1. :meth:`Encoder.prepare` (main process, cheap): read what the item table says
   about each item and return an :class:`ItemInput` per item -- the *content key*
   (a hash of exactly what the model will see: the final text, the file bytes)
   plus a payload for step 2, or the reason the item has no usable content.
   The store uses the content key to find cached vectors, so nothing after this
   step runs for an item whose vector is already cached.
2. :meth:`Encoder.load` (worker processes for images and audio): decode a
   payload into a model input (an image tensor, an audio statistics vector, a
   string). Raises :class:`ItemProblem` for a bad file; the item then gets
   ``mask=False`` and an entry in the report, and keeps its other modalities.
3. :meth:`Encoder.encode` (main process, the model): a list of loaded inputs ->
   ``float32 [len(batch), dim]``.

``Encoder.encoder_id`` names the model, its weights fingerprint and the
preprocessing; together with the content key it is the cache key.
"""
from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.dataset import MODALITY_KINDS
from fusionrec.errors import UserError

# Bump when a change in this package changes the vectors produced for the same
# model and input (e.g. a preprocessing fix); it is part of every encoder id so
# old caches are not silently reused.
ENCODER_FORMAT_VERSION = 1


class ItemProblem(Exception):
    """An item's content for one modality cannot be used (missing, corrupt, empty, too large).

    ``reason`` is a short human-readable cause; ``file`` the offending path when there is one.
    """

    def __init__(self, reason: str, file: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.file = file


@dataclass(frozen=True)
class ItemIssue:
    """One per-item problem, as reported to the user (item keeps its other modalities)."""

    item_id: Any
    modality: str
    file: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "modality": self.modality, "file": self.file, "reason": self.reason}


@dataclass
class ItemInput:
    """What :meth:`Encoder.prepare` says about one item.

    ``key`` is the content hash (``None`` when the item has no usable content);
    ``payload`` is handed to :meth:`Encoder.load`; ``problem`` explains a ``None`` key.
    """

    key: str | None
    payload: Any = None
    file: str | None = None
    problem: str | None = None


@dataclass
class EncoderInfo:
    """Facts about an encoder written into the store manifest."""

    name: str
    modality: str
    kind: str
    encoder_id: str
    params: dict[str, Any] = field(default_factory=dict)


class Encoder(ABC):
    """Base class: see the module docstring for the prepare -> load -> encode contract.

    Subclasses set ``name`` (registry name), ``kind`` (a FeatureModality kind) and
    implement :meth:`prepare`, :meth:`encode`, :attr:`dim` and :meth:`_id_parts`.
    ``modality`` is the name of the produced :class:`FeatureModality` (defaults to
    ``kind``; set it to keep two encoders of one kind apart, e.g. ``"clip_image"``).
    """

    name: str = "encoder"
    kind: str = "other"
    #: True when :meth:`load` does real work (file decoding) worth a worker pool.
    parallel_load: bool = False
    #: ``{"name", "params"}`` when built through the registry (the run records it; serve rebuilds from it).
    spec: dict[str, Any] | None = None

    def __init__(self, modality: str | None = None) -> None:
        if self.kind not in MODALITY_KINDS:
            raise ValueError(f"encoder {self.name!r}: kind {self.kind!r} is not one of {MODALITY_KINDS}")
        self.modality = modality or self.kind
        self._id: str | None = None

    # ------------------------------------------------------------------ identity
    @abstractmethod
    def _id_parts(self) -> dict[str, Any]:
        """Everything that changes the output for the same input: model fingerprint, preprocessing."""

    @property
    def encoder_id(self) -> str:
        """Stable id ``name:v<format>:<sha256 of the id parts>`` used as the cache key."""
        if self._id is None:
            parts = {"name": self.name, "format": ENCODER_FORMAT_VERSION, **self._id_parts()}
            blob = repr(sorted(parts.items())).encode("utf-8")
            self._id = f"{self.name}:v{ENCODER_FORMAT_VERSION}:{hashlib.sha256(blob).hexdigest()[:24]}"
        return self._id

    def info(self) -> EncoderInfo:
        return EncoderInfo(self.name, self.modality, self.kind, self.encoder_id, _jsonable(self._id_parts()))

    # ------------------------------------------------------------------ work
    @property
    @abstractmethod
    def dim(self) -> int:
        """Output dimension (may load the model's config, never needed when the cache is warm)."""

    def fit(self, items: pd.DataFrame, root: Path | None) -> None:
        """Learn catalogue-level state before :meth:`prepare` (attribute vocabularies); default: nothing."""

    @abstractmethod
    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        """One :class:`ItemInput` per row of ``items`` (cheap: no decoding, no model)."""

    def load(self, payload: Any) -> Any:
        """Decode one payload into a model input; raise :class:`ItemProblem` for bad content."""
        return payload

    @abstractmethod
    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Loaded inputs -> ``float32 [len(batch), dim]``."""

    def collate(self, loaded: Sequence[Any]) -> Any:
        """Combine loaded inputs into what :meth:`encode` takes (default: the list itself)."""
        return list(loaded)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, modality={self.modality!r})"


# ---------------------------------------------------------------------- helpers
def content_hash(*chunks: bytes | str) -> str:
    """Hex digest identifying an item's content (blake2b, 160 bits: collisions are not a concern)."""
    h = hashlib.blake2b(digest_size=20)
    for chunk in chunks:
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8", "surrogatepass")
        h.update(len(chunk).to_bytes(8, "little"))
        h.update(chunk)
    return h.hexdigest()


def file_fingerprint(paths: Iterable[Path]) -> str:
    """sha256 over the bytes of model files, so a changed checkpoint changes the encoder id."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        h.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:24]


def dir_fingerprint(directory: Path) -> str:
    """Fingerprint every regular file under a model directory (weights, configs, tokenizer)."""
    directory = Path(directory)
    files = [p for p in directory.rglob("*") if p.is_file() and ".cache" not in p.parts]
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(str(path.relative_to(directory)).encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:24]


def resolve_path(value: Any, root: Path | None) -> Path | None:
    """An item-table path cell -> absolute Path (relative paths are under the dataset root)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if not text.strip():
        return None
    path = Path(text).expanduser()
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    return path


def media_column(items: pd.DataFrame, role: str, explicit: str | None, param: str, modality: str) -> str:
    """The item-table column holding ``role`` paths (``image_path`` / ``audio_path``).

    ``explicit`` (the encoder's ``image_column`` / ``audio_column``) wins; otherwise the
    standard column of a validated item frame, then the role table's aliases
    (:func:`fusionrec.data.roles.find_column`), so every command recognises the same names.
    """
    from fusionrec.data.roles import find_column

    if explicit is not None:
        if explicit not in items.columns:
            raise UserError(
                f"{role.split('_')[0]} column {explicit!r} is not in the item table",
                where=f"item columns: {list(items.columns)}",
                fix=f"set the encoder parameter {param} to one of those columns (fusionrec encode: "
                f"--param {modality}.{param}=<column>), or leave it unset to use the {role!r} column",
            )
        return explicit
    found = role if role in items.columns else find_column(items.columns, role)
    if found is None:
        example = "images/{item_id}.jpg" if role.startswith("image") else "audio/{item_id}.mp3"
        raise UserError(
            f"the item table has no {role} column",
            where=f"item columns: {list(items.columns)}",
            fix=f"name it in the data description: item_columns: {{{role}: <column, or a pattern such as "
            f"{example}>}} in fusionrec.yaml (or --item-columns {role}=...; paths are relative to the data "
            f"folder), or, if the items have no such files, remove the {modality} encoder from encoders:",
        )
    return found


def is_blank(value: Any) -> bool:
    """True for NaN/None/NA/empty-or-whitespace strings (pandas may hand any of these)."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    if isinstance(value, (str, bytes)):
        return not value.strip()
    return False


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)
