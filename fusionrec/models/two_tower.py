"""Two-tower multimodal retrieval: user tower x item tower, scored by an inner product.

**Item tower.** ``v_i = keep_i * ID_i + fuse(project(content_i))``: every modality
is projected (linear / MLP, :mod:`fusionrec.align.projection`) into the shared
``embedding_size`` space and fused by the configured method
(:func:`fusionrec.fuse.build_fusion`: concat, weighted_sum, attention, gated,
joint) -- or, with ``fusion: late``, kept as one scorer per modality whose scores
are combined by learned per-item-renormalised weights (decision level; still an
inner product of concatenated vectors, so ANN serving works). ``keep_i`` is 0
for items without training interactions (their ID embedding was never trained):
**cold items are embedded from content alone**. During training the ID embedding
is dropped at random (``id_dropout``) and modalities are hidden at random
(``modality_dropout``) so the content path learns to stand on its own and to
work from any subset of modalities. ``use_id: false`` gives a pure content tower.

**User tower.** ``u = ID_u + W h_u`` where ``h_u`` encodes the user's training
items' item-tower vectors: ``mean`` (exact, over the whole history), ``attention``
(the user ID queries the history) or ``transformer`` (one small encoder layer,
mean-pooled), or ``none``. While training, the target item is removed from the
history so the tower cannot just look the answer up.

**Losses.** ``softmax``: in-batch sampled softmax over cosine scores / temperature
with logQ correction (Yi et al., RecSys 2019: subtract ``log p(item in batch)``,
since popular items are over-represented as in-batch negatives); duplicates of
the positive in the batch are masked. ``bpr``: BPR on the sampler's uniform
negative with MMRec's embedding-norm regulariser.

**Alignment** (:class:`fusionrec.align.Aligner`, ``align: none|infonce|cca|matching``)
adds ``align_weight`` x a loss that aligns the modalities of the same item and
(``align_id``) the fused content with the item's ID embedding on warm items.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from fusionrec.align import Aligner, ModalityProjector
from fusionrec.align.aligner import ALIGN_METHODS
from fusionrec.data.dataset import TrainData
from fusionrec.fuse import ScoreFusion, build_fusion, modality_dropout
from fusionrec.fuse.feature import FUSIONS
from fusionrec.models.base import RecModel
from fusionrec.models.bpr import bpr_loss, embedding_norm_reg
from fusionrec.models.modal_inputs import ModalInputs
from fusionrec.models.params import FeatureNorm, Modalities, ModelParams

TWO_TOWER_FUSIONS = tuple(f for f in FUSIONS if f != "user_attention") + ("late",)
HISTORY_ENCODERS = ("none", "mean", "attention", "transformer")
LOSSES = ("softmax", "bpr")


class TwoTower(RecModel):
    """Two-tower retrieval with aligned, fused content and a history-encoding user tower."""

    name = "two_tower"
    trainable = True
    batch_kind = "pairwise"
    uses_content = True

    class Params(ModelParams):
        embedding_size: int = Field(64, gt=0, description="width of the shared space (IDs, projected modalities)")
        modalities: Modalities = Field(None, description="item modalities to use (null = all of data.modalities)")
        feature_norm: FeatureNorm = Field("standard", description="feature normalisation (statistics over "
                                                                  "present rows only)")
        projection: Literal["linear", "mlp"] = Field("mlp", description="each modality -> shared space")
        projection_dropout: float = Field(0.0, ge=0, lt=1, description="dropout inside the projections")
        fusion: Literal[TWO_TOWER_FUSIONS] = Field("attention", description=(  # type: ignore[valid-type]
            "how projected modalities become one item vector; late = one scorer per modality (decision level)"))
        joint_layers: int = Field(1, ge=1, description="encoder layers of the joint fusion")
        joint_heads: int = Field(2, ge=1, description="attention heads of the joint fusion")
        align: Literal[ALIGN_METHODS] = Field("infonce", description=(  # type: ignore[valid-type]
            "alignment loss between an item's modalities (and its ID embedding)"))
        align_weight: float = Field(0.1, ge=0, description="weight of the alignment loss")
        align_id: bool = Field(True, description="also align the fused content with the item ID embedding "
                                                 "(warm items)")
        align_temperature: float = Field(0.2, gt=0, description="temperature of the alignment loss")
        align_batch: int = Field(512, ge=1, description="items per step in the alignment loss")
        align_tokens: int = Field(4, ge=1, description="tokens per view for align: matching")
        history: Literal[HISTORY_ENCODERS] = Field("mean", description=(  # type: ignore[valid-type]
            "user tower history encoder"))
        history_len: int = Field(50, ge=1, description="history items seen by attention/transformer (mean uses "
                                                       "the whole history)")
        use_id: bool = Field(True, description="item ID embedding (zeroed for items without training "
                                               "interactions)")
        use_user_id: bool = Field(True, description="user ID embedding in the user tower")
        use_content: bool = Field(True, description="item content in the item tower")
        id_dropout: float = Field(0.1, ge=0, le=1, description="share of item IDs dropped in training so content "
                                                               "alone must rank")
        modality_dropout: float = Field(0.1, ge=0, lt=1, description="share of modalities hidden in training "
                                                                     "(never all of an item's)")
        loss: Literal[LOSSES] = Field("softmax", description=(  # type: ignore[valid-type]
            "softmax: in-batch, logQ-corrected, cosine scores; bpr: sampled negative"))
        temperature: float = Field(0.1, gt=0, description="softmax temperature on cosine scores")
        logq: bool = Field(True, description="subtract log p(item in batch) from in-batch logits")
        reg_weight: float = Field(0.0, ge=0, description="EmbLoss weight (bpr loss only)")

        @field_validator("fusion", mode="before")
        @classmethod
        def _item_side_fusion(cls, value: Any) -> Any:
            if value == "user_attention":
                raise ValueError("a two-tower item vector cannot depend on the user: that would break "
                                 "inner-product/ANN retrieval; use user-conditioned attention in a ranker")
            return value

        @model_validator(mode="after")
        def _towers_not_empty(self) -> TwoTower.Params:
            if not (self.use_id or self.use_content):
                raise ValueError("use_id and use_content are both false: the item tower is empty")
            if not (self.use_user_id or self.history != "none"):
                raise ValueError("use_user_id is false and history is none: the user tower is empty")
            return self

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        hp = self.hp
        self.dim = hp.embedding_size
        self.fusion_name = hp.fusion
        self.history = hp.history
        self.loss_name = hp.loss
        align = hp.align
        self.use_id, self.use_user_id, self.use_content = hp.use_id, hp.use_user_id, hp.use_content
        self.id_dropout = hp.id_dropout
        self.modality_dropout = hp.modality_dropout
        self.temperature = hp.temperature
        self.logq = hp.logq
        self.reg_weight = hp.reg_weight
        self.align_weight = hp.align_weight if align != "none" else 0.0
        self.align_batch = hp.align_batch
        self.history_len = hp.history_len
        self._init_item_tower(data, align)
        self._init_user_tower(data)

    def _init_item_tower(self, data: TrainData, align: str) -> None:
        hp, d = self.hp, self.dim
        pop = data.item_popularity
        self.register_buffer("warm", torch.from_numpy(pop > 0), persistent=False)
        # log of each item's share of training interactions = its in-batch sampling probability
        q = np.maximum(pop, 1.0) / max(pop.sum(), 1.0)
        self.register_buffer("log_q", torch.from_numpy(np.log(q).astype(np.float32)), persistent=False)
        if self.use_id:
            self.item_id = nn.Embedding(self.n_items, d)
            nn.init.normal_(self.item_id.weight, std=0.1)
        if self.use_content:
            self.inputs = ModalInputs(data, hp.modalities, hp.feature_norm, self.name)
            names = self.inputs.names
            self.projector = ModalityProjector(self.inputs.dims, d, kind=hp.projection,
                                               dropout=hp.projection_dropout)
            if self.fusion_name == "late":
                self.score_fusion = ScoreFusion(names)
                self.user_heads = nn.ModuleDict({n: nn.Linear(d, d, bias=False) for n in names})
            else:
                self.fusion = build_fusion(self.fusion_name, names, d, n_layers=hp.joint_layers,
                                           n_heads=hp.joint_heads)
            self.aligner = Aligner(align, names, d, temperature=hp.align_temperature,
                                   with_id=hp.align_id and self.use_id, n_tokens=hp.align_tokens)

    def _init_user_tower(self, data: TrainData) -> None:
        d = self.dim
        if self.use_user_id:
            self.user_id = nn.Embedding(self.n_users, d)
            nn.init.normal_(self.user_id.weight, std=0.1)
        train = data.train.tocsr().astype(np.float32)
        self._train = train
        deg = np.asarray(train.sum(axis=1)).ravel()
        self.register_buffer("user_deg", torch.from_numpy(deg.astype(np.float32)), persistent=False)
        if self.history != "none":
            self.history_proj = nn.Linear(d, d)
            coo = train.tocoo()
            self._hist_sparse = torch.sparse_coo_tensor(
                torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
                torch.ones(coo.nnz), (self.n_users, self.n_items), check_invariants=False).coalesce()
            hist = np.full((self.n_users, max(self.history_len, 1)), -1, dtype=np.int64)
            self.register_buffer("hist", torch.from_numpy(hist), persistent=False)
            self._resample_history(np.random.default_rng(0))
        if self.history == "attention":
            self.hist_query = nn.Linear(d, d, bias=False)
            self.hist_global_query = nn.Parameter(torch.zeros(d))
        elif self.history == "transformer":
            layer = nn.TransformerEncoderLayer(d, 2, dim_feedforward=2 * d, dropout=0.1, batch_first=True,
                                               norm_first=True)
            self.hist_encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)

    # ------------------------------------------------------------------ history
    def _resample_history(self, rng: np.random.Generator) -> None:
        """Padded per-user history of at most ``history_len`` training items (random subset when longer)."""
        indptr, indices = self._train.indptr, self._train.indices
        hist = np.full(tuple(self.hist.shape), -1, dtype=np.int64)
        length = hist.shape[1]
        for u in range(self.n_users):
            items = indices[indptr[u]:indptr[u + 1]]
            if len(items) > length:
                items = rng.choice(items, length, replace=False)
            hist[u, : len(items)] = items
        self.hist.copy_(torch.from_numpy(hist))

    def pre_epoch(self) -> None:
        # a new random history subset each epoch for users with long histories (augmentation);
        # drawn from torch's RNG so the trainer's seed controls it
        if self.history in ("attention", "transformer") and self.training:
            seed = int(torch.randint(0, 2**31 - 1, (1,)))
            self._resample_history(np.random.default_rng(seed))

    # ------------------------------------------------------------------ towers
    def _content(self, items: torch.Tensor | None, training: bool):
        """Projected views, masks (after modality dropout) and fused content for ``items`` (None = all)."""
        if items is None:
            feats, masks = self.inputs.all_features(), self.inputs.all_masks()
        else:
            feats, masks = self.inputs.gather(items)
        views = self.projector(feats)
        masks = modality_dropout(masks, self.modality_dropout, training)
        if self.fusion_name == "late":
            n = next(iter(views.values())).shape[0]
            w = self.score_fusion.item_weights(masks, n)                          # [N, M]
            parts = [views[name] * w[:, j : j + 1] for j, name in enumerate(self.inputs.names)]
            fused = torch.cat(parts, dim=1)
        else:
            fused = self.fusion(views, masks)
        return views, masks, fused

    def _item_vectors(self, training: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        """[n_items, D] item-tower outputs, plus pieces the alignment loss needs."""
        extras: dict[str, Any] = {}
        keep = self.warm.float()
        if training and self.id_dropout > 0:
            keep = keep * (torch.rand(self.n_items) >= self.id_dropout).float()
        if self.use_id:
            id_vec = self.item_id.weight * keep[:, None]
            extras["id"] = self.item_id.weight
        if self.use_content:
            views, masks, fused = self._content(None, training)
            extras.update(views=views, masks=masks, content=fused)
        if self.fusion_name == "late" and self.use_content:
            id_part = id_vec if self.use_id else torch.zeros(self.n_items, self.dim)
            return torch.cat([id_part, fused], dim=1), extras
        if self.use_id and self.use_content:
            return id_vec + fused, extras
        return (id_vec if self.use_id else fused), extras

    def _encode_history(self, users: torch.Tensor, item_vecs: torch.Tensor,
                        exclude: torch.Tensor | None) -> torch.Tensor:
        d = self.dim
        if self.fusion_name == "late" and self.use_content:
            # the history summary needs one d-vector per item: sum the ID and weighted modality blocks
            base = item_vecs.view(item_vecs.shape[0], -1, d).sum(dim=1)
        else:
            base = item_vecs
        if self.history == "mean":
            sums = torch.sparse.mm(self._hist_sparse, base)[users]                 # [B, d]
            deg = self.user_deg[users]
            if exclude is not None:
                sums = sums - base[exclude]
                deg = deg - 1
            return sums / deg.clamp_min(1.0)[:, None]
        hist = self.hist[users]                                                    # [B, L]
        valid = hist >= 0
        if exclude is not None:
            valid = valid & (hist != exclude[:, None])
        tokens = base[hist.clamp_min(0)] * valid[..., None]                       # [B, L, d]
        if self.history == "attention":
            q = (self.hist_query(self.user_id(users)) if self.use_user_id
                 else self.hist_global_query.expand(len(users), -1))
            logits = (tokens @ q[:, :, None]).squeeze(-1) / math.sqrt(d)
            logits = logits.masked_fill(~valid, float("-inf"))
            w = torch.nan_to_num(torch.softmax(logits, dim=1), nan=0.0)
            return (w[..., None] * tokens).sum(1)
        out = self.hist_encoder(tokens, src_key_padding_mask=~valid)
        out = torch.nan_to_num(out, nan=0.0) * valid[..., None]
        return out.sum(1) / valid.sum(1, keepdim=True).clamp_min(1)

    def _user_vectors(self, users: torch.Tensor, item_vecs: torch.Tensor,
                      exclude: torch.Tensor | None = None) -> torch.Tensor:
        u = self.user_id(users) if self.use_user_id else None
        if self.history != "none":
            h = self.history_proj(self._encode_history(users, item_vecs, exclude))
            u = h if u is None else u + h
        if self.fusion_name == "late" and self.use_content:
            u = torch.cat([u] + [self.user_heads[n](u) for n in self.inputs.names], dim=1)
        return u

    def _score_space(self, x: torch.Tensor) -> torch.Tensor:
        # the softmax loss works on cosine similarities; serve with the same geometry
        return F.normalize(x, dim=-1) if self.loss_name == "softmax" else x

    # ------------------------------------------------------------------ contract
    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, pos = batch["user"], batch["pos_item"]
        item_vecs, extras = self._item_vectors(training=True)
        u = self._user_vectors(users, item_vecs, exclude=pos)
        if self.loss_name == "softmax":
            # temperature applied to the [B, d] side, not to the [B, B] logits (cheaper)
            u_n, v_n = self._score_space(u) / self.temperature, self._score_space(item_vecs[pos])
            logits = u_n @ v_n.T
            if self.logq:
                logits = logits - self.log_q[pos][None, :]
            same = pos[:, None] == pos[None, :]
            same.fill_diagonal_(False)
            logits = logits.masked_fill(same, float("-inf"))
            loss = F.cross_entropy(logits, torch.arange(len(users)))
        else:
            neg = batch["neg_item"]
            p, n = item_vecs[pos], item_vecs[neg]
            loss = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
            if self.reg_weight:
                loss = loss + self.reg_weight * embedding_norm_reg(u, p, n)
        if self.align_weight and self.use_content:
            loss = loss + self.align_weight * self._alignment_loss(pos, extras)
        return loss

    def _alignment_loss(self, pos: torch.Tensor, extras: dict[str, Any]) -> torch.Tensor:
        items = torch.unique(pos)
        if len(items) > self.align_batch:
            items = items[torch.randperm(len(items))[: self.align_batch]]
        views = {k: v[items] for k, v in extras["views"].items()}
        masks = {k: m[items] for k, m in extras["masks"].items()}
        content = extras["content"][items]
        if self.fusion_name == "late":
            # align the (unweighted) mean of present modalities with the ID embedding
            stack = torch.stack([views[n] * masks[n][:, None] for n in self.inputs.names], 1)
            cnt = torch.stack([masks[n] for n in self.inputs.names], 1).sum(1, keepdim=True).clamp_min(1)
            content = stack.sum(1) / cnt
        id_emb = extras["id"][items] if "id" in extras else None
        return self.aligner(views, masks, content=content, id_emb=id_emb, id_mask=self.warm[items])

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        item_vecs, _ = self._item_vectors(training=False)
        u = self._user_vectors(users, item_vecs)
        return self._score_space(u) @ self._score_space(item_vecs).T

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        item_vecs, _ = self._item_vectors(training=False)
        return self._score_space(item_vecs)

    @torch.no_grad()
    def user_embeddings(self) -> torch.Tensor:
        item_vecs, _ = self._item_vectors(training=False)
        return self._score_space(self._user_vectors(torch.arange(self.n_users), item_vecs))

    @torch.no_grad()
    def content_embeddings(self) -> torch.Tensor | None:
        """[n_items, D] content-only item vectors (what a brand-new item would get)."""
        if not self.use_content:
            return None
        _, _, fused = self._content(None, training=False)
        if self.fusion_name == "late":
            fused = torch.cat([torch.zeros(self.n_items, self.dim), fused], dim=1)
        return self._score_space(fused)
