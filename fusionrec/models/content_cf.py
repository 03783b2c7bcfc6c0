"""Content-to-CF model for item cold start: user embeddings scored against a content-only item tower.

``score(u, i) = <p_u + h_u, f(c_i)> + g(c_i)`` where ``c_i`` are item ``i``'s modality
features, ``f`` projects every modality into the shared space (linear / MLP) and
fuses them mask-aware (concat, weighted sum, attention, gated, joint -- see
:mod:`fusionrec.fuse`), and ``g`` is a linear "how widely liked does this content
look" bias. ``h_u`` (``user_history: mean``) is the mean of ``f(c_j)`` over
the user's training items -- a learned content-kNN term, and the only part of
the user that transfers to users unseen in training; ``user_history: none``
drops it (``h_u = 0``). The item side never uses an item ID, so a brand-new item is scored
by exactly the function that was trained on the warm ones: there is no
warm/cold mismatch to bridge (the DropoutNet / CLCRec problem), at the price of
not memorising warm items -- use it for cold start, not as a warm retriever.

Training is Mult-VAE style (Liang et al., WWW 2018): one batch is a set of users
(``batch_kind = "user"``) and the loss is the multinomial log-likelihood of each
user's training items under a softmax over *all items seen in training*
(``-sum_{i in I_u} log softmax(s_u)_i / |I_u|``). A full softmax is affordable
because the item tower runs once per batch over the warm catalogue, and it is
exact -- no sampled negatives, no logQ correction. Items without training
interactions are left out of the softmax: their label is unknown, not negative.

Regularisation: ``history_dropout`` hides a random share of the history in
training (Mult-DAE style), so ``h_u`` cannot just point at the targets it
contains; ``modality_dropout`` hides modalities so any subset works
(posters can be missing), ``feature_dropout`` on the inputs, ``reg_weight`` L2
on the batch's user vectors. Alignment losses from :mod:`fusionrec.align`
(InfoNCE between an item's modalities) are optional via ``align``.

``knn_weight`` blends content-kNN (:class:`~fusionrec.models.content.ContentKNN`, same modalities) in
at decision level: both scores are divided by their per-user std over the catalogue and summed with
that weight, which ranks like summed per-user z-scores and is still one inner product (extra user and
item dimensions), so serving is unchanged. On ML-1M item cold start (text + attributes) it lifts
test Recall@20 from 0.1516 to 0.1619 (docs/benchmarks/ml1m_coldstart.md).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from fusionrec.align import Aligner, ModalityProjector
from fusionrec.align.aligner import ALIGN_METHODS
from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.fuse import build_fusion, modality_dropout
from fusionrec.fuse.feature import FUSIONS
from fusionrec.models.base import RecModel
from fusionrec.models.content import ContentKNN
from fusionrec.models.modal_inputs import ModalInputs
from fusionrec.models.params import FeatureNorm, Modalities, ModelParams

CONTENT_CF_FUSIONS = tuple(f for f in FUSIONS if f != "user_attention")


class ContentCF(RecModel):
    """User ID embedding x fused content tower, full-softmax multinomial likelihood."""

    name = "content_cf"
    trainable = True
    batch_kind = "user"
    uses_content = True

    class Params(ModelParams):
        embedding_size: int = Field(64, gt=0, description="width of the user and content vectors")
        modalities: Modalities = Field(None, description="item modalities to use (null = all of data.modalities)")
        feature_norm: FeatureNorm = Field("standard", description="feature normalisation (statistics over "
                                                                  "present rows only)")
        projection: Literal["linear", "mlp"] = Field("mlp", description="each modality -> shared space")
        hidden: int | None = Field(256, ge=1, description="hidden width of the mlp projection "
                                                          "(null = automatic)")
        fusion: Literal[CONTENT_CF_FUSIONS] = Field("concat", description=(  # type: ignore[valid-type]
            "how projected modalities become one item vector (mask-aware)"))
        joint_layers: int = Field(1, ge=1, description="encoder layers of the joint fusion")
        joint_heads: int = Field(2, ge=1, description="attention heads of the joint fusion")
        content_bias: bool = Field(True, description="linear popularity-from-content bias g(c_i)")
        user_history: Literal["none", "mean"] = Field("mean", description=(
            "mean: add the mean projected content of the user's training items to the user vector"))
        history_dropout: float = Field(0.5, ge=0, lt=1, description="share of that history hidden per "
                                                                    "training step (Mult-DAE style)")
        feature_dropout: float = Field(0.2, ge=0, lt=1, description="dropout inside the projections")
        modality_dropout: float = Field(0.1, ge=0, lt=1, description="share of modalities hidden in training "
                                                                     "(never all of an item's)")
        reg_weight: float = Field(0.0, ge=0, description="L2 on the batch's user vectors")
        align: Literal[ALIGN_METHODS] = Field("none", description=(  # type: ignore[valid-type]
            "alignment loss between an item's modalities"))
        align_weight: float = Field(0.0, ge=0, description="weight of the alignment loss")
        align_temperature: float = Field(0.2, gt=0, description="temperature of the alignment loss")
        align_batch: int = Field(512, ge=1, description="warm items per step in the alignment loss")
        knn_weight: float = Field(0.0, ge=0, description=(
            "decision-level blend with content-kNN over the same modalities: score = the model's score / its "
            "per-user std + knn_weight x content-kNN's / its per-user std (0 = off; still one inner product)"))

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        hp = self.hp
        d = hp.embedding_size
        self.dim = d
        self.modality_dropout = hp.modality_dropout
        self.feature_dropout = hp.feature_dropout
        self.reg_weight = hp.reg_weight
        self.align_weight = hp.align_weight if hp.align != "none" else 0.0
        self.use_bias = hp.content_bias
        self.user_history = hp.user_history
        self.history_dropout = hp.history_dropout

        self.inputs = ModalInputs(data, hp.modalities, hp.feature_norm, self.name)
        self.names = self.inputs.names
        self.projector = ModalityProjector(self.inputs.dims, d, kind=hp.projection, hidden=hp.hidden,
                                           dropout=self.feature_dropout)
        self.fusion = build_fusion(hp.fusion, self.names, d, n_layers=hp.joint_layers, n_heads=hp.joint_heads)
        self.bias = nn.Linear(d, 1) if self.use_bias else None
        self.aligner = Aligner(hp.align, self.names, d, temperature=hp.align_temperature, with_id=False)
        self.user = nn.Embedding(self.n_users, d)
        nn.init.normal_(self.user.weight, std=0.05)

        train = data.train.tocsr().astype(np.float32)
        pop = np.asarray(train.sum(axis=0)).ravel()
        warm = np.flatnonzero(pop > 0)
        if warm.size < 2:
            raise UserError("content_cf needs at least two items with training interactions",
                            "the training split", "check the split: every item seems cold")
        self.register_buffer("warm_items", torch.from_numpy(warm.astype(np.int64)), persistent=False)
        # user x warm-item training matrix (row-normalised targets are built per batch)
        self._train_warm = train[:, warm].tocsr()
        self.knn_weight = hp.knn_weight
        # the content-kNN blended in at scoring (not trained; its own normalisation, center_l2)
        self.knn = ContentKNN(data, {"modalities": hp.modalities}) if self.knn_weight else None

    # ------------------------------------------------------------------ towers
    def item_vectors(self, items: torch.Tensor | None = None, training: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Content vectors [N, d] and content biases [N] of ``items`` (None = every item)."""
        if items is None:
            feats, masks = self.inputs.all_features(), self.inputs.all_masks()
        else:
            feats, masks = self.inputs.gather(items)
        views = self.projector(feats)
        masks = modality_dropout(masks, self.modality_dropout, training)
        fused = self.fusion(views, masks)
        bias = self.bias(fused).squeeze(-1) if self.bias is not None else fused.new_zeros(fused.shape[0])
        return fused, bias, {"views": views, "masks": masks, "content": fused}

    def user_vectors(self, users: torch.Tensor, warm_vecs: torch.Tensor,
                     history: torch.Tensor | None = None) -> torch.Tensor:
        """[B, d]: ID embedding plus (``user_history: mean``) the mean content vector of the history.

        ``history`` is the users' dense [B, n_warm] 0/1 history over the warm items (training passes it,
        already dropped out); None reads the full training history as a sparse matrix, so scoring or
        exporting all users never builds a dense users x items array.
        """
        u = self.user(users)
        if self.user_history != "mean":
            return u
        if history is not None:
            return u + (history / history.sum(1, keepdim=True).clamp_min(1.0)) @ warm_vecs
        rows = self._train_warm[users.cpu().numpy()].tocoo()   # scipy rows on the host, the product on the device
        counts = np.maximum(np.asarray(rows.sum(axis=1)).ravel(), 1.0)
        mean_op = torch.sparse_coo_tensor(
            torch.from_numpy(np.vstack([rows.row, rows.col]).astype(np.int64)),
            torch.from_numpy((rows.data / counts[rows.row]).astype(np.float32)), rows.shape,
            check_invariants=False).to(warm_vecs.device)
        return u + torch.sparse.mm(mean_op, warm_vecs)

    # ------------------------------------------------------------------ contract
    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users = batch["user"]
        vecs, bias, extras = self.item_vectors(self.warm_items, training=self.training)
        rows = self._train_warm[users.cpu().numpy()]
        target = torch.from_numpy(rows.toarray()).to(users.device)
        history = target
        if self.user_history == "mean" and self.training and self.history_dropout:
            history = target * (torch.rand_like(target) >= self.history_dropout)
        u = self.user_vectors(users, vecs, history)
        logits = u @ vecs.T + bias[None, :]                                     # [B, n_warm]
        target = target / target.sum(1, keepdim=True).clamp_min(1.0)
        loss = -(F.log_softmax(logits, dim=1) * target).sum(1).mean()
        if self.reg_weight:
            loss = loss + self.reg_weight * u.pow(2).sum(1).mean()
        if self.align_weight:
            pick = torch.randperm(len(self.warm_items))[: self.hp.align_batch]
            loss = loss + self.align_weight * self.aligner(
                {k: v[pick] for k, v in extras["views"].items()},
                {k: m[pick] for k, m in extras["masks"].items()}, content=extras["content"][pick])
        return loss

    # ------------------------------------------------------------------ scoring
    def _scoring_vectors(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """User [B, D] and item [N, D] vectors whose inner product is the model's score.

        The content bias rides along as an extra dimension; with ``knn_weight`` the content-kNN
        vectors follow, each part scaled per user by 1 / (std of its scores over the catalogue), so
        the blend matches per-user z-scores up to a per-user constant (same ranking).
        """
        vecs, bias, _ = self.item_vectors(None, training=False)
        u = torch.cat([self.user_vectors(users, vecs[self.warm_items]), torch.ones(len(users), 1)], 1)
        items = torch.cat([vecs, bias[:, None]], 1)
        if self.knn is None:
            return u, items
        ku, ki = self.knn.score_vectors(users)
        scale = 1.0 / (u @ items.T).std(1, keepdim=True).clamp_min(1e-8)
        knn_scale = self.knn_weight / (ku @ ki.T).std(1, keepdim=True).clamp_min(1e-8)
        return torch.cat([u * scale, ku * knn_scale], 1), torch.cat([items, ki], 1)

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        if self.knn is None:
            vecs, bias, _ = self.item_vectors(None, training=False)
            return self.user_vectors(users, vecs[self.warm_items]) @ vecs.T + bias[None, :]
        u, items = self._scoring_vectors(users)
        return u @ items.T

    @torch.no_grad()
    def user_embeddings(self) -> torch.Tensor:
        return self._scoring_vectors(torch.arange(self.n_users))[0]

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        return self._scoring_vectors(torch.arange(1))[1]
