"""Single-tower CTR ranker: DCN-v2 (Wang et al., WWW 2021) over user, item and multimodal fields.

Input fields (each ``embedding_size`` wide, concatenated into ``x0``):

* user side -- user ID embedding; the mean of the user's training items' ID
  embeddings (FISM/SVD++ style); the mean of the user's training items' projected
  content (one field per modality, over the history items that have it);
* item side -- item ID embedding (zero for items without training interactions,
  and dropped at random in training with ``id_dropout`` so content alone must
  carry cold items); one projected field per modality (attribute modalities from
  the attribute encoder are just another modality); one presence flag per
  modality. Absent modalities are zero fields plus a 0 flag -- never imputed.

While training, a positive item is removed from its own user's history summary:
at test time the held-out item is never in the history, so the model must not
learn to look the answer up.

Network (``structure: parallel``, the DCN-v2 paper's parallel variant):
``logit = w_c . cross(x0) + w_d . mlp(x0) + b``; the cross network is
``x_{l+1} = x0 * (W_l x_l + b_l) + x_l`` with full (``cross_rank: null``) or
low-rank ``W_l = U_l V_l^T`` matrices. ``structure: stacked`` feeds the cross
output into the MLP. Loss: binary cross-entropy over the pointwise sampler's
rows (every training positive plus ``num_negatives`` uniformly sampled
negatives); optionally ``hard_negatives`` extra negatives per positive drawn from
candidate lists set with :meth:`DCNRanker.set_candidates` (the retriever's top-N
in a cascade, so the ranker learns to separate exactly what it will be shown).

Scoring is split by side: user fields are computed once per user, item fields
once per item, and the first layer of the cross and deep networks is linear, so
``W x0 = W_u x_u + W_i x_i`` is added by broadcasting; only later layers run per
(user, item) pair, in chunks of ``score_chunk`` pairs. That makes
``full_sort_predict`` (every user x every item, needed for full-ranking metrics)
affordable for a single-tower model on a CPU.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from fusionrec.align import ModalityProjector
from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.models.base import RecModel
from fusionrec.models.modal_inputs import ModalInputs
from fusionrec.models.params import FeatureNorm, Modalities, ModelParams

STRUCTURES = ("parallel", "stacked")


class CrossLayer(nn.Module):
    """One DCN-v2 cross layer: ``x0 * (W x + b) + x``; ``W`` full or ``U V^T`` of rank ``rank``."""

    def __init__(self, dim: int, rank: int | None = None) -> None:
        super().__init__()
        self.rank = rank
        if rank is None:
            self.w = nn.Linear(dim, dim)
        else:
            self.v = nn.Linear(dim, rank, bias=False)
            self.u = nn.Linear(rank, dim)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        return self.w(x) if self.rank is None else self.u(self.v(x))

    def forward(self, x0: torch.Tensor, x: torch.Tensor, wx: torch.Tensor | None = None) -> torch.Tensor:
        # ``wx`` lets the caller pass a precomputed W x (first layer, split by side)
        return x0 * (self.linear(x) if wx is None else wx) + x


class DCNRanker(RecModel):
    """DCN-v2 pointwise ranker over user/item IDs, user history and item multimodal fields."""

    name = "dcn"
    trainable = True
    batch_kind = "pointwise"
    uses_content = True   # item and history content fields whenever the data has modalities

    class Params(ModelParams):
        embedding_size: int = Field(32, gt=0, description="width of every field (IDs, history summaries, "
                                                          "projected modalities)")
        modalities: Modalities = Field(None, description="item modalities to use (null = all of data.modalities, "
                                                         "attributes included)")
        feature_norm: FeatureNorm = Field("standard", description="feature normalisation (statistics over "
                                                                  "present rows only)")
        projection: Literal["linear", "mlp"] = Field("linear", description="each modality -> one field")
        projection_dropout: float = Field(0.0, ge=0, lt=1, description="dropout inside the projections")
        use_user_id: bool = Field(True, description="user ID field")
        use_id: bool = Field(True, description="item ID field (zero for items without training interactions)")
        use_history: bool = Field(True, description="mean of the user's training items' ID and content fields")
        use_content: bool = Field(True, description="projected modality fields (when the data has modalities)")
        id_dropout: float = Field(0.1, ge=0, le=1, description="share of item IDs dropped in training so content "
                                                               "alone can rank cold items")
        structure: Literal[STRUCTURES] = Field("parallel", description=(  # type: ignore[valid-type]
            "DCN-v2 variant: cross and deep side by side, or the cross output fed into the MLP"))
        cross_layers: int = Field(2, ge=0, description="cross layers")
        cross_rank: int | None = Field(16, ge=0, description="rank of the low-rank cross matrices U V^T "
                                                             "(null or 0 = full rank)")
        mlp_layers: list[int] = Field(default_factory=lambda: [128, 64], description="hidden widths of the deep "
                                                                                    "network")
        dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the deep network")
        num_negatives: int = Field(4, ge=0, description="uniform negatives per positive (the trainer's pointwise "
                                                        "sampler)")
        hard_negatives: int = Field(0, ge=0, description="extra negatives per positive from set_candidates() "
                                                         "(a cascade's retriever)")
        reg_weight: float = Field(0.0, ge=0, description="L2 on the batch's field vectors")
        score_chunk: int = Field(262144, ge=1, description="(user, item) pairs scored at once in "
                                                           "full_sort_predict")

        @model_validator(mode="after")
        def _stacked_needs_mlp(self) -> DCNRanker.Params:
            if self.structure == "stacked" and not self.mlp_layers:
                raise ValueError("structure 'stacked' needs mlp_layers, e.g. [256, 128] (or use "
                                 "structure: parallel)")
            return self

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        hp = self.hp
        e = hp.embedding_size
        self.emb = e
        self.structure = hp.structure
        self.use_id = hp.use_id
        self.use_user_id = hp.use_user_id
        self.use_history = hp.use_history
        self.use_content = hp.use_content and bool(data.modalities)
        self.id_dropout = hp.id_dropout
        self.reg_weight = hp.reg_weight
        self.hard_negatives = hp.hard_negatives
        self.score_chunk = hp.score_chunk
        pop = data.item_popularity
        self.register_buffer("warm", torch.from_numpy(pop > 0), persistent=False)
        train = data.train.tocsr().astype(np.float32)
        coo = train.tocoo()
        self._hist = torch.sparse_coo_tensor(
            torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
            torch.ones(coo.nnz), (self.n_users, self.n_items), check_invariants=False).coalesce()
        self.register_buffer("user_deg", torch.from_numpy(np.asarray(train.sum(1)).ravel()), persistent=False)
        # sorted user * n_items + item keys of the training positives (hard-negative rejection)
        keys = np.sort(coo.row.astype(np.int64) * self.n_items + coo.col.astype(np.int64))
        self.register_buffer("pos_keys", torch.from_numpy(keys), persistent=False)
        self.register_buffer("candidates", torch.empty(0, 0, dtype=torch.long), persistent=False)

        user_fields = item_fields = 0
        if self.use_user_id:
            self.user_id = nn.Embedding(self.n_users, e)
            nn.init.normal_(self.user_id.weight, std=0.05)
            user_fields += 1
        if self.use_id:
            self.item_id = nn.Embedding(self.n_items, e)
            nn.init.normal_(self.item_id.weight, std=0.05)
            item_fields += 1
            if self.use_history:
                user_fields += 1          # mean of history item IDs (shares the item table)
        self.names: list[str] = []
        if self.use_content:
            self.inputs = ModalInputs(data, hp.modalities, hp.feature_norm, self.name)
            self.names = self.inputs.names
            self.projector = ModalityProjector(self.inputs.dims, e, kind=hp.projection,
                                               dropout=hp.projection_dropout)
            item_fields += len(self.names)
            if self.use_history:
                user_fields += len(self.names)
        if user_fields == 0 or item_fields == 0:
            raise UserError("dcn needs at least one user field and one item field",
                            "model.params.use_user_id / use_id / use_history / use_content",
                            "enable the user ID or history, and the item ID or content")
        self.d_user = user_fields * e
        self.d_item = item_fields * e + len(self.names)      # + presence flags
        self._init_network(self.d_user + self.d_item)

    def _init_network(self, d: int) -> None:
        """The cross network, the deep network and the output head over ``x0`` of width ``d``."""
        hp = self.hp
        rank = hp.cross_rank or None     # null or 0: full rank
        hidden, dropout = list(hp.mlp_layers), hp.dropout
        self.cross = nn.ModuleList([CrossLayer(d, rank) for _ in range(hp.cross_layers)])
        layers: list[nn.Module] = []
        prev = d
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU(), nn.Dropout(dropout)]
            prev = h
        self.mlp = nn.Sequential(*layers)
        self.mlp_out = prev if hidden else 0
        if self.structure == "parallel":
            self.head = nn.Linear(d + self.mlp_out, 1)
        else:
            self.head = nn.Linear(self.mlp_out, 1)

    # ------------------------------------------------------------------ fields
    def _item_content(self, training: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """[n_items, M*e] projected content (absent modalities zero) and [n_items, M] presence flags."""
        if not self.use_content:
            return None, None
        views = self.projector(self.inputs.all_features())
        masks = self.inputs.all_masks()
        parts = [views[n] * masks[n][:, None] for n in self.names]
        flags = torch.stack([masks[n].float() for n in self.names], dim=1)
        return torch.cat(parts, dim=1), flags

    def _item_id(self, training: bool) -> torch.Tensor | None:
        if not self.use_id:
            return None
        keep = self.warm.float()
        if training and self.id_dropout > 0:
            keep = keep * (torch.rand(self.n_items, device=keep.device) >= self.id_dropout).float()
        return self.item_id.weight * keep[:, None]

    def _sides(self, users: torch.Tensor, training: bool, exclude: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """User-side fields [B, d_user] for ``users`` and item-side fields [n_items, d_item] for every item.

        ``exclude`` ([B] item ids or -1) removes that item from the user's history summary.
        """
        content, flags = self._item_content(training)
        ids = self._item_id(training)
        item_parts = [p for p in (ids, content, flags) if p is not None]
        item_side = torch.cat(item_parts, dim=1)

        user_parts = []
        if self.use_user_id:
            user_parts.append(self.user_id(users))
        if self.use_history:
            deg = self.user_deg[users]
            ex = None if exclude is None else exclude.clamp_min(0)
            has_ex = None if exclude is None else (exclude >= 0).float()
            if self.use_id:
                # all training interactions count in the ID history (cold items have none)
                s = torch.sparse.mm(self._hist, self.item_id.weight)[users]
                n = deg
                if ex is not None:
                    s = s - self.item_id.weight[ex] * has_ex[:, None]
                    n = n - has_ex
                user_parts.append(s / n.clamp_min(1.0)[:, None])
            if self.use_content:
                for j, name in enumerate(self.names):
                    block = content[:, j * self.emb:(j + 1) * self.emb]
                    s = torch.sparse.mm(self._hist, block)[users]
                    n = torch.sparse.mm(self._hist, flags[:, j:j + 1])[users].squeeze(1)
                    if ex is not None:
                        present = flags[ex, j] * has_ex
                        s = s - block[ex] * has_ex[:, None]
                        n = n - present
                    user_parts.append(s / n.clamp_min(1.0)[:, None])
        return torch.cat(user_parts, dim=1), item_side

    # ------------------------------------------------------------------ network
    def _first_layer_parts(self, user_side: torch.Tensor, item_side: torch.Tensor):
        """Per-side pieces of the first cross / MLP layers (their inputs are linear in x0)."""
        du = self.d_user
        parts = {}
        if self.cross:
            lin = self.cross[0]
            if lin.rank is None:
                w, b = lin.w.weight, lin.w.bias
                parts["cross_u"] = user_side @ w[:, :du].T + b
                parts["cross_i"] = item_side @ w[:, du:].T
            else:
                v = lin.v.weight
                parts["cross_u"] = user_side @ v[:, :du].T
                parts["cross_i"] = item_side @ v[:, du:].T
        if self.structure == "parallel" and len(self.mlp):
            first: nn.Linear = self.mlp[0]
            parts["mlp_u"] = user_side @ first.weight[:, :du].T + first.bias
            parts["mlp_i"] = item_side @ first.weight[:, du:].T
        return parts

    def _score(self, user_side: torch.Tensor, item_side: torch.Tensor, parts: dict[str, torch.Tensor],
               u_idx: torch.Tensor, i_idx: torch.Tensor) -> torch.Tensor:
        """Logits of the pairs (``user_side[u_idx]``, ``item_side[i_idx]``), both index tensors [P]."""
        x0 = torch.cat([user_side[u_idx], item_side[i_idx]], dim=1)
        x = x0
        for layer_no, layer in enumerate(self.cross):
            if layer_no == 0:
                pre = parts["cross_u"][u_idx] + parts["cross_i"][i_idx]
                wx = pre if layer.rank is None else layer.u(pre)
                x = layer(x0, x, wx)
            else:
                x = layer(x0, x)
        if self.structure == "parallel":
            outs = [x]
            if len(self.mlp):
                h = F.relu(parts["mlp_u"][u_idx] + parts["mlp_i"][i_idx])
                h = self.mlp[2](h)                      # dropout of the first block
                h = self.mlp[3:](h)
                outs.append(h)
            return self.head(torch.cat(outs, dim=1)).squeeze(-1)
        return self.head(self.mlp(x)).squeeze(-1)

    # ------------------------------------------------------------------ training
    def set_candidates(self, candidates: torch.Tensor | np.ndarray | None) -> None:
        """Candidate lists [n_users, N] (e.g. a retriever's top-N) to draw hard negatives from."""
        if candidates is None:
            self.candidates = torch.empty(0, 0, dtype=torch.long, device=self.warm.device)
            return
        cand = candidates if torch.is_tensor(candidates) else torch.from_numpy(np.asarray(candidates))
        cand = cand.to(device=self.warm.device, dtype=torch.long)
        if cand.dim() != 2 or cand.shape[0] != self.n_users:
            raise UserError(f"candidates have shape {tuple(cand.shape)}", "DCNRanker.set_candidates",
                            f"pass one row of item ids per user: shape ({self.n_users}, N)")
        self.candidates = cand

    def _is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.pos_keys.numel() == 0:
            return torch.zeros_like(users, dtype=torch.bool)
        q = users * self.n_items + items
        pos = torch.searchsorted(self.pos_keys, q).clamp_(max=self.pos_keys.numel() - 1)
        return self.pos_keys[pos] == q

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, items, labels = batch["user"], batch["item"], batch["label"].float()
        weights = torch.ones_like(labels)
        if self.hard_negatives > 0 and self.candidates.numel():
            pos_users = users[labels > 0].repeat_interleave(self.hard_negatives)
            cols = torch.randint(0, self.candidates.shape[1], (len(pos_users),))
            hard = self.candidates[pos_users, cols]
            ok = (hard >= 0) & ~self._is_positive(pos_users, hard.clamp_min(0))
            users = torch.cat([users, pos_users])
            items = torch.cat([items, hard.clamp_min(0)])
            labels = torch.cat([labels, torch.zeros(len(pos_users))])
            weights = torch.cat([weights, ok.float()])
        # positives leave their own user's history summary (-1 = nothing to remove); user fields
        # are therefore computed per row, so each positive removes only itself
        exclude_rows = torch.where(labels > 0, items, torch.full_like(items, -1))
        user_side, item_side = self._sides(users, training=self.training, exclude=exclude_rows)
        parts = self._first_layer_parts(user_side, item_side)
        rows = torch.arange(len(users))
        logits = self._score(user_side, item_side, parts, rows, items)
        loss = (F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * weights).sum()
        loss = loss / weights.sum().clamp_min(1.0)
        if self.reg_weight:
            reg = user_side.pow(2).sum(1).mean() + item_side[items].pow(2).sum(1).mean()
            loss = loss + self.reg_weight * reg
        return loss

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def score_candidates(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits [B, C] of ``items[b, c]`` for ``users[b]`` (``items`` is [B, C] or [C] shared)."""
        user_side, item_side = self._sides(users, training=False)
        parts = self._first_layer_parts(user_side, item_side)
        if items.dim() == 1:
            items = items[None, :].expand(len(users), -1)
        b, c = items.shape
        out = torch.empty(b, c)
        rows_per_chunk = max(1, self.score_chunk // max(c, 1))
        for r0 in range(0, b, rows_per_chunk):
            r1 = min(b, r0 + rows_per_chunk)
            u_idx = torch.arange(r0, r1).repeat_interleave(c)
            i_idx = items[r0:r1].reshape(-1)
            out[r0:r1] = self._score(user_side, item_side, parts, u_idx, i_idx).view(r1 - r0, c)
        return out

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        return self.score_candidates(users, torch.arange(self.n_items))

    @torch.no_grad()
    def predict_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Click probabilities of aligned (user, item) pairs, both [P] (for AUC / log loss)."""
        users = torch.as_tensor(users, dtype=torch.long)
        items = torch.as_tensor(items, dtype=torch.long)
        uniq, inverse = torch.unique(users, return_inverse=True)
        user_side, item_side = self._sides(uniq, training=False)
        parts = self._first_layer_parts(user_side, item_side)
        out = torch.empty(len(users))
        for p0 in range(0, len(users), self.score_chunk):
            p1 = min(len(users), p0 + self.score_chunk)
            out[p0:p1] = self._score(user_side, item_side, parts, inverse[p0:p1], items[p0:p1])
        return torch.sigmoid(out)
