"""What SASRec and GRU4Rec share: histories, item table, next-item losses, scoring, serving API.

A sequential model reads each user's training events in time order
(:func:`fusionrec.train.sequence_sampling.user_sequences`), encodes the latest
``max_len`` of them into one vector per position and scores the next item by an inner
product with the item table (:mod:`fusionrec.models.sequential.items`).

**Losses** (``loss``): ``softmax`` -- cross-entropy over every item that occurs in
training (full softmax; items never seen in training are left out of the denominator,
since nothing says they are wrong, which keeps their content-based scores usable);
``sampled`` -- cross-entropy over the target and ``num_negatives`` uniformly sampled
training items per position (cheaper for large catalogues).

**Scoring a user** (``full_sort_predict``) encodes the user's known history: the
training events, plus the events the evaluator says are known at scoring time
(:meth:`set_context_events`: the validation event when the test split is scored,
the same events the evaluator masks as seen). :meth:`predict_from_history` scores
any history given as item indices, which is what serving uses when an event is
appended to a user's history: the next recommendation changes through the model.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from fusionrec.data.dataset import TrainData
from fusionrec.encoders.finetune.params import TextTuneParams
from fusionrec.errors import UserError
from fusionrec.fuse.feature import FUSIONS
from fusionrec.models.base import RecModel
from fusionrec.models.modal_inputs import ModalInputs
from fusionrec.models.params import (
    FeatureNorm,
    Modalities,
    ModelParams,
    literal_choices,
)
from fusionrec.models.sequential.items import ITEM_REPRS, SequenceItemTable
from fusionrec.train.sequence_sampling import pad_left, user_sequences

ITEM_FUSIONS = tuple(f for f in FUSIONS if f != "user_attention")


class SequentialParams(ModelParams):
    """Parameters every sequential model has (the encoder adds its own)."""

    embedding_size: int = Field(64, gt=0, description="width of item vectors and of the sequence encoder")
    max_len: int = Field(50, ge=1, description="latest history items the encoder reads")
    item_repr: Literal["id"] = Field("id", description=(
        "item vectors: id embedding (for content or both, use the mm_ variant of the model)"))
    loss: Literal["softmax", "sampled"] = Field("softmax", description=(
        "softmax: cross-entropy over all training items; sampled: over the target and num_negatives "
        "uniform items"))
    num_negatives: int = Field(100, ge=1, description="sampled negatives per position (loss: sampled)")
    init_std: float = Field(0.02, gt=0, description="std of the normal initialisation of embeddings")

    @field_validator("item_repr", mode="before")
    @classmethod
    def _content_needs_mm_variant(cls, value: Any) -> Any:
        if value in ITEM_REPRS and value not in literal_choices(cls.model_fields["item_repr"].annotation):
            raise ValueError(f"item_repr {value!r} reads item content, which this ID-only model does not load: "
                             "use the mm_ variant of the model (mm_sasrec, mm_gru4rec)")
        return value


class ContentSequentialParams(SequentialParams):
    """Sequential parameters plus how item content becomes item vectors."""

    item_repr: Literal[ITEM_REPRS] = Field("both", description=(  # type: ignore[valid-type]
        "item vectors: id, content (fused modalities: items unseen in training are recommendable) or both"))
    modalities: Modalities = Field(None, description="item modalities for content (null = all of "
                                                     "data.modalities)")
    feature_norm: FeatureNorm = Field("standard", description="feature normalisation (content)")
    projection: Literal["linear", "mlp"] = Field("mlp", description="each modality -> the model's space")
    projection_dropout: float = Field(0.0, ge=0, lt=1, description="dropout inside the projections")
    fusion: Literal[ITEM_FUSIONS] = Field("attention", description=(  # type: ignore[valid-type]
        "how projected modalities become one item vector"))
    id_dropout: float = Field(0.1, ge=0, le=1, description="share of item IDs dropped in training "
                                                           "(item_repr: both)")
    modality_dropout: float = Field(0.1, ge=0, lt=1, description="share of modalities hidden in training")
    cold_neighbours: int = Field(0, ge=0, description=(
        "at inference, items without training events are placed by this many content kNN neighbours per "
        "modality: their warm neighbours' mean item vector (mean direction, mean length) is mixed in (cold_mix; 0 = "
        "their own content only)"))
    cold_mix: float = Field(1.0, ge=0, le=1, description=(
        "cold_neighbours: share of the warm neighbours' mean in a new item's vector (the rest: its own)"))
    cold_scale: float = Field(1.0, gt=0, description=(
        "at inference, every vector of an item without training events is multiplied by this: how readily "
        "new items enter the lists (1 = as placed)"))
    text_tuning: TextTuneParams = Field(default_factory=TextTuneParams, description=(
        "fine-tune the text encoder with this model's loss (full / lora / side_adapter; docs/guide/finetune.md)"))


class HistoryMixin:
    """Time-ordered training histories per user, plus the events known at scoring time."""

    n_users: int

    def _init_histories(self, data: TrainData) -> None:
        self._indptr, self._seq = user_sequences(data.train_frame, data.n_users)
        self._context: dict[int, np.ndarray] = {}

    def history(self, user: int) -> np.ndarray:
        """User ``user``'s known history (item indices, oldest first): training events, then context."""
        seq = self._seq[self._indptr[user]:self._indptr[user + 1]]
        extra = self._context.get(int(user))
        return seq if extra is None else np.concatenate([seq, extra])

    def set_context_events(self, frame: pd.DataFrame | None) -> None:
        """Events known at scoring time beyond training (``user``, ``item``, ``timestamp`` rows).

        The evaluator passes the validation events when it scores the test split (and none
        for validation), so the history a test target is predicted from ends with the
        event just before it, as in leave-one-out. ``None`` or an empty frame clears them.
        """
        self._context = {}
        if frame is None or len(frame) == 0:
            return
        indptr, items = user_sequences(frame, self.n_users)
        for u in np.flatnonzero(np.diff(indptr)):
            self._context[int(u)] = items[indptr[u]:indptr[u + 1]]


class SequentialRecModel(HistoryMixin, RecModel):
    """Base of the next-item models: subclasses implement :meth:`encode`."""

    batch_kind = "sequence"

    Params = SequentialParams
    hp: SequentialParams

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        self.dim = self.hp.embedding_size
        self.max_len = self.hp.max_len
        self.items = SequenceItemTable(data, self.hp, self.dim, self.name)
        # item 0 is padding, so training items shift by one
        train_items = np.r_[False, data.item_popularity > 0]
        self.register_buffer("train_items", torch.from_numpy(train_items), persistent=False)
        self._init_histories(data)

    # ------------------------------------------------------------------ contract pieces
    @property
    def num_negatives(self) -> int:
        return int(self.hp.num_negatives) if self.hp.loss == "sampled" else 0

    def sampler_options(self) -> dict[str, Any]:
        """Extra arguments of the ``sequence`` sampler (:mod:`fusionrec.train.sequence_sampling`)."""
        return {"max_len": self.max_len}

    def encode(self, seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` right-aligned item indices + 1 (0 = pad) -> ``[B, L, dim]`` next-item queries."""
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self.items.focus(batch["target"])  # a fine-tuned text tower re-encodes the batch's targets with gradient
        table = self.items.table(training=True)
        out = self.encode(batch["input"], table)                     # [B, L, d]
        target = batch["target"]
        sel = target > 0
        queries, tgt = out[sel], target[sel]                         # [N, d], [N]
        if self.hp.loss == "sampled":
            negs = batch["negatives"][sel]                           # [N, K]
            pos_logit = (queries * table[tgt]).sum(-1, keepdim=True)
            neg_logit = torch.einsum("nd,nkd->nk", queries, table[negs])
            neg_logit = neg_logit.masked_fill(negs == tgt[:, None], float("-inf"))
            logits = torch.cat([pos_logit, neg_logit], dim=1)
            return F.cross_entropy(logits, torch.zeros(len(tgt), dtype=torch.long, device=logits.device))
        logits = queries @ table.T                                   # [N, n_items + 1]
        logits = logits.masked_fill(~self.train_items[None, :], float("-inf"))
        return F.cross_entropy(logits, tgt)

    def _padded(self, histories: Sequence[Sequence[int] | np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(pad_left([np.asarray(h, dtype=np.int64) for h in histories], self.max_len))

    def _check_items(self, items: np.ndarray, where: str) -> None:
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            bad = int(items[(items < 0) | (items >= self.n_items)][0])
            raise UserError(f"item index {bad} is out of range", where,
                            f"pass internal item indices in 0..{self.n_items - 1}")

    # ------------------------------------------------------------------ scoring
    def _state(self, padded: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """The query vector after the latest event: ``[B, dim]``."""
        return self.encode(padded, table)[:, -1]

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        table = self.items.table(training=False)
        padded = self._padded([self.history(int(u)) for u in users.tolist()]).to(table.device)
        return self._state(padded, table) @ table[1:].T

    @torch.no_grad()
    def embed_histories(self, histories: Sequence[Sequence[int] | np.ndarray]) -> torch.Tensor:
        """``[len(histories), dim]`` user vectors of histories given as item indices (oldest first)."""
        for h in histories:
            self._check_items(np.asarray(h, dtype=np.int64), "embed_histories(histories=...)")
        was_training = self.training
        self.eval()
        try:
            table = self.items.table(training=False)
            return self._state(self._padded(histories).to(table.device), table)
        finally:
            self.train(was_training)

    def history_vector(self, user: int | None, new_items: Sequence[int | None] = ()) -> np.ndarray | None:
        """The query vector of ``user``'s training history with ``new_items`` appended in order
        (serving: a user's online events); ``None`` for an unknown user, ``None`` entries and
        items the model does not know are skipped. ``None`` when nothing is left to encode."""
        hist = [int(i) for i in self.history(user)] if user is not None else []
        hist += [int(i) for i in new_items if i is not None and 0 <= int(i) < self.n_items]
        if not hist:
            return None
        return self.embed_histories([hist])[0].cpu().numpy()

    @torch.no_grad()
    def predict_from_history(self, item_sequence: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``[n_items]`` next-item scores after the history ``item_sequence`` (item indices, oldest first).

        Order matters: the same items in another order give other scores. Nothing is masked:
        the caller decides whether items already in the history may be recommended again.
        """
        return (self.embed_histories([item_sequence]) @ self.item_embeddings().T)[0]

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        return self.items.table(training=False)[1:]

    @torch.no_grad()
    def user_embeddings(self) -> torch.Tensor:
        return self.embed_histories([self.history(u) for u in range(self.n_users)])


def content_inputs(model: SequentialRecModel) -> ModalInputs | None:
    """The modality inputs a sequential model reads (None for ID-only item vectors)."""
    return getattr(model.items, "inputs", None)
