"""Two-tower multimodal retrieval: user tower x item tower, scored by an inner product.

**Item tower.** ``v_i = keep_i * ID_i + fuse(project(content_i))``: every modality
is projected (linear / MLP, :mod:`fusionrec.align.projection`) into the shared
``embedding_size`` space and fused by the configured method
(:func:`fusionrec.fuse.build_fusion`: concat, weighted_sum, attention, gated,
joint) -- or, with ``fusion: late``, kept as one scorer per modality whose scores
are combined by learned per-item-renormalised weights (decision level; still an
inner product of concatenated vectors, so ANN serving works). ``fusion: rrf`` /
``borda`` keep the same per-modality scorers (and the ID scorer), train each to rank on
its own and fuse their *rankings* (reciprocal rank / Borda count; a scorer never votes
for an item it has no content for). ``fusion: user_attention`` weighs an item's
modalities per user (:class:`fusionrec.fuse.UserConditionedAttention`). These three
are not one inner product, so they are served by full scoring, not by an ANN index.
``keep_i`` is 0
for items without training interactions (their ID embedding was never trained):
**cold items are embedded from content alone**. During training the ID embedding
is dropped at random (``id_dropout``) and modalities are hidden at random
(``modality_dropout``) so the content path learns to stand on its own and to
work from any subset of modalities. ``use_id: false`` gives a pure content tower.

**User tower.** ``u = keep_u * ID_u + W h_u [+ A(attributes_u)]`` where ``h_u`` encodes the user's training
items' item-tower vectors: ``mean`` (exact, over the whole history), ``attention``
(the user ID queries the history) or ``transformer`` (one small encoder layer,
mean-pooled), or ``none``. While training, the target item is removed from the
history so the tower cannot just look the answer up. With ``user_attributes: true``
``A`` embeds the user table's attributes (:class:`~fusionrec.models.user_tower.UserAttributeEncoder`);
``keep_u`` is 0 for users without training events (their ID was never trained) and is
dropped at random in training (``user_id_dropout``), so a new user is ranked from the
attributes and whatever first events it has (:meth:`TwoTower.user_vector_from_attributes`,
:mod:`fusionrec.evaluate.user_cold`).

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

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.align import Aligner, ModalityProjector
from fusionrec.data.dataset import TrainData
from fusionrec.fuse import (
    ScoreFusion,
    UserConditionedAttention,
    borda_fusion,
    build_fusion,
    modality_dropout,
    reciprocal_rank_fusion,
)
from fusionrec.models.base import RecModel
from fusionrec.models.bpr import bpr_loss, embedding_norm_reg
from fusionrec.models.modal_inputs import ModalInputs
from fusionrec.models.sampled_softmax import uses_sampled_softmax
from fusionrec.models.two_tower_params import (
    BLOCK_FUSIONS,
    COSINE_LOSSES,
    TwoTowerParams,
)
from fusionrec.models.two_tower_scale import BatchLocalTraining
from fusionrec.models.two_tower_user import HistoryUserTower
from fusionrec.models.user_tower import NewUserMixin
from fusionrec.train.distributed import gather_ids


class TwoTower(HistoryUserTower, BatchLocalTraining, NewUserMixin, RecModel):
    """Two-tower retrieval with aligned, fused content and a history-encoding user tower."""

    name = "two_tower"
    trainable = True
    batch_kind = "pairwise"
    uses_content = True

    Params = TwoTowerParams

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
        self.rank_fusion = hp.fusion in ("rrf", "borda") and hp.use_content
        self.blocks = hp.fusion in BLOCK_FUSIONS and hp.use_content
        self.user_attention = hp.fusion == "user_attention" and hp.use_content
        # above the threshold a training step only touches the batch's items (two_tower_scale.py)
        self.batch_local = uses_sampled_softmax(self.n_items, hp.full_softmax_max_items)
        self._init_item_tower(data, align)
        self._init_user_tower(data)
        self._init_new_user_prior(data)  # user_tower.NewUserMixin; None unless new_user_prior
        if self.batch_local:
            self._init_batch_local(data.item_popularity)

    def _id_table(self, n: int, d: int) -> nn.Embedding:
        # batch-local training looks rows up: sparse gradients, stepped by SparseAdam (train/sparse_optim.py)
        table = nn.Embedding(n, d, sparse=self.batch_local)
        nn.init.normal_(table.weight, std=0.1)
        if self.batch_local:
            table.weight.sparse_grad = True
        return table

    @property
    def inner_product(self) -> bool:
        """True when a score is one inner product of a user and an item vector (ANN-servable)."""
        return not (self.rank_fusion or self.user_attention)

    def _init_item_tower(self, data: TrainData, align: str) -> None:
        hp, d = self.hp, self.dim
        pop = data.item_popularity
        self.register_buffer("warm", torch.from_numpy(pop > 0), persistent=False)
        # log of each item's share of training interactions = its in-batch sampling probability
        q = np.maximum(pop, 1.0) / max(pop.sum(), 1.0)
        self.register_buffer("log_q", torch.from_numpy(np.log(q).astype(np.float32)), persistent=False)
        if self.use_id:
            self.item_id = self._id_table(self.n_items, d)
        if hp.item_bias:
            self.bias = nn.Parameter(torch.zeros(self.n_items))
        if self.use_content:
            self.inputs = ModalInputs(data, hp.modalities, hp.feature_norm, self.name)
            names = self.inputs.names
            self.projector = ModalityProjector(self.inputs.dims, d, kind=hp.projection,
                                               dropout=hp.projection_dropout)
            if self.blocks:
                self.score_fusion = ScoreFusion(names)
                self.user_heads = nn.ModuleDict({n: nn.Linear(d, d, bias=False) for n in names})
            elif self.user_attention:
                self.fusion = UserConditionedAttention(names, d)
            else:
                self.fusion = build_fusion(self.fusion_name, names, d, n_layers=hp.joint_layers,
                                           n_heads=hp.joint_heads)
            self.aligner = Aligner(align, names, d, temperature=hp.align_temperature,
                                   with_id=hp.align_id and self.use_id, n_tokens=hp.align_tokens)
            # a fine-tuned text encoder (text_tuning.mode != frozen) replaces the stored text features
            from fusionrec.encoders.finetune.tower import build_text_tower

            self.text_tower = build_text_tower(data, hp.text_tuning, hp.feature_norm, self.name)
            # likewise a fine-tuned image encoder (image_tuning.mode != frozen) for the image features
            from fusionrec.encoders.finetune.image_tower import build_image_tower

            self.image_tower = build_image_tower(data, hp.image_tuning, hp.feature_norm, self.name)

    def pre_epoch(self) -> None:
        # a new random history subset each epoch for users with long histories (augmentation);
        # drawn from torch's RNG so the trainer's seed controls it
        if self.batch_local and self.history != "none" and self.training:
            self._resample_local_history()  # every encoder reads the sampled histories in training
        elif self.history in ("attention", "transformer") and self.training:
            seed = int(torch.randint(0, 2**31 - 1, (1,)))
            self._resample_history(np.random.default_rng(seed))

    # ------------------------------------------------------------------ towers
    def _content(self, items: torch.Tensor | None, training: bool):
        """Projected views, masks (after modality dropout) and fused content for ``items`` (None = all)."""
        if items is None:
            feats, masks = self.inputs.all_features(), self.inputs.all_masks()
        else:
            feats, masks = self.inputs.gather(items)
        if getattr(self, "text_tower", None) is not None:  # a fine-tuned text encoder replaces stored features
            feats = self.text_tower.replace(feats, items, self.hp.text_tuning.modality, training)
        if getattr(self, "image_tower", None) is not None:  # and a fine-tuned image encoder
            feats = self.image_tower.replace(feats, items, self.hp.image_tuning.modality, training)
        views = self.projector(feats)
        masks = modality_dropout(masks, self.modality_dropout, training)
        if self.blocks:
            n = next(iter(views.values())).shape[0]
            w = self.score_fusion.item_weights(masks, n)                          # [N, M]
            parts = [views[name] * w[:, j : j + 1] for j, name in enumerate(self.inputs.names)]
            fused = torch.cat(parts, dim=1)
        else:
            # user_attention: the item-side (user-independent) attention, for histories and new items
            fused = self.fusion(views, masks)
        return views, masks, fused

    def _item_vectors(self, training: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        """[n_items, D] item-tower outputs, plus pieces the alignment loss and pair scoring need."""
        extras: dict[str, Any] = {}
        keep = self.warm.float()
        if training and self.id_dropout > 0:
            keep = keep * (torch.rand(self.n_items) >= self.id_dropout).float()
        if self.use_id:
            id_vec = self.item_id.weight * keep[:, None]
            extras["id"] = self.item_id.weight
            extras["id_vec"] = id_vec
        if self.use_content:
            views, masks, fused = self._content(None, training)
            extras.update(views=views, masks=masks, content=fused)
        if self.blocks:
            id_part = id_vec if self.use_id else torch.zeros(self.n_items, self.dim)
            return torch.cat([id_part, fused], dim=1), extras
        if self.use_id and self.use_content:
            return id_vec + fused, extras
        return (id_vec if self.use_id else fused), extras

    def _score_space(self, x: torch.Tensor) -> torch.Tensor:
        # the softmax loss works on cosine similarities; serve with the same geometry
        return F.normalize(x, dim=-1) if self.loss_name in COSINE_LOSSES else x

    def _item_bias(self, idx: slice | torch.Tensor = slice(None)) -> torch.Tensor | None:
        """Per-item score bias on the scale of the scores (x temperature for cosine losses), or None."""
        if not self.hp.item_bias:
            return None
        # an item never trained on gets the mean warm bias, not its untrained (pushed-down) value
        warm_mean = self.bias[self.warm].mean() if bool(self.warm.any()) else self.bias.new_zeros(())
        b = torch.where(self.warm, self.bias, warm_mean)[idx]
        return b * self.temperature if self.loss_name in COSINE_LOSSES else b

    def _export_users(self, u: torch.Tensor) -> torch.Tensor:
        """User vectors whose inner product with :meth:`_export_items` is the score (bias as a last column)."""
        u = self._score_space(u)
        u = torch.cat([u, torch.ones(u.shape[0], 1)], dim=1) if self.hp.item_bias else u
        return self._prior_pad(u)  # new_user_prior: zero prior columns (a trained user does not use it)

    def _export_items(self, v: torch.Tensor) -> torch.Tensor:
        v = self._score_space(v)
        b = self._item_bias()
        v = torch.cat([v, b[:, None]], dim=1) if b is not None else v
        return self._prior_item_columns(v)  # new_user_prior: its item table and bias as extra columns

    def _score_matrices(self, u: torch.Tensor, items: torch.Tensor | None, item_vecs: torch.Tensor,
                        extras: dict[str, Any]) -> list[torch.Tensor]:
        """Scores of every user in ``u`` for ``items`` (None = all): one [B, N] matrix, or one per
        scorer (ID, then each modality) for rank fusion."""
        idx = slice(None) if items is None else items
        bias = self._item_bias(idx)
        mats = self._raw_score_matrices(u, idx, item_vecs, extras)
        return mats if bias is None else [m + bias[None, :] for m in mats]

    def _raw_score_matrices(self, u: torch.Tensor, idx: slice | torch.Tensor, item_vecs: torch.Tensor,
                            extras: dict[str, Any]) -> list[torch.Tensor]:
        if self.user_attention:
            views = {k: v[idx] for k, v in extras["views"].items()}
            masks = {k: m[idx] for k, m in extras["masks"].items()}
            base = extras["id_vec"][idx] if self.use_id else None
            return [self.fusion.pair_scores(u, views, masks, base, cosine=self.loss_name in COSINE_LOSSES)]
        v = item_vecs[idx]
        if not self.rank_fusion:
            return [self._score_space(u) @ self._score_space(v).T]
        d, mats = self.dim, []
        for j in range(u.shape[1] // d):
            if j == 0 and not self.use_id:
                continue
            blk = slice(j * d, (j + 1) * d)
            mats.append(self._score_space(u[:, blk]) @ self._score_space(v[:, blk]).T)
        return mats

    def _voter_masks(self, extras: dict[str, Any]) -> list[np.ndarray]:
        """Which items each rank-fusion scorer may vote for: the ID scorer warm items, a modality its items."""
        masks = [self.warm.cpu().numpy()] if self.use_id else []
        return masks + [extras["masks"][n].cpu().numpy() for n in self.inputs.names]

    def _fuse_ranks(self, mats: list[torch.Tensor], extras: dict[str, Any]) -> torch.Tensor:
        if self.hp.fusion == "rrf":
            fused = reciprocal_rank_fusion(mats, k=self.hp.rrf_k, item_masks=self._voter_masks(extras))
        else:
            fused = borda_fusion(mats, item_masks=self._voter_masks(extras))
        return torch.from_numpy(fused.astype(np.float32)).to(mats[0].device)   # rank fusion runs in numpy

    # ------------------------------------------------------------------ contract
    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.batch_local:
            return self._batch_local_loss(batch)
        users, pos = batch["user"], batch["pos_item"]
        if getattr(self, "text_tower", None) is not None:
            self.text_tower.focus(pos)  # the batch's items get re-encoded with gradient
        if getattr(self, "image_tower", None) is not None:
            self.image_tower.focus(pos)
        item_vecs, extras = self._item_vectors(training=True)
        u = self._user_vectors(users, item_vecs, exclude=pos)
        if self.loss_name == "softmax":
            # in-batch negatives; under DDP (torchrun) the positives of the whole batch, from every rank
            cand, offset = gather_ids(pos)
            mats = self._score_matrices(u, cand, item_vecs, extras)
            target = torch.arange(len(users)) + offset
            same = pos[:, None] == cand[None, :]
            same[torch.arange(len(users)), target] = False
            losses = []
            for scores in mats:
                logits = scores / self.temperature
                if self.logq:
                    logits = logits - self.log_q[cand][None, :]
                losses.append(F.cross_entropy(logits.masked_fill(same, float("-inf")), target))
            # rank fusion: every scorer is a voter that has to rank on its own
            loss = torch.stack(losses).mean()
        elif self.loss_name == "full_softmax":
            # every item is a negative: no sampling, so no logQ correction is needed
            mats = self._score_matrices(u, None, item_vecs, extras)
            loss = torch.stack([F.cross_entropy(scores / self.temperature, pos) for scores in mats]).mean()
        else:
            neg = batch["neg_item"]
            both = torch.cat([pos, neg])
            losses = []
            for scores in self._score_matrices(u, both, item_vecs, extras):
                rows = torch.arange(len(users))
                losses.append(bpr_loss(scores[rows, rows], scores[rows, rows + len(users)]))
            loss = torch.stack(losses).mean()
            if self.reg_weight:
                loss = loss + self.reg_weight * embedding_norm_reg(u, item_vecs[pos], item_vecs[neg])
        if self.align_weight and self.use_content:
            loss = loss + self.align_weight * self._alignment_loss(pos, extras)
        loss = loss + self._new_user_prior_loss(users, pos)  # 0 without new_user_prior
        return loss

    def _alignment_loss(self, pos: torch.Tensor, extras: dict[str, Any],
                        warm: torch.Tensor | None = None) -> torch.Tensor:
        # ``pos`` indexes the rows of ``extras`` (global ids, or batch-local ones with their ``warm``)
        warm = self.warm if warm is None else warm
        items = torch.unique(pos)
        limit = self.hp.matching_batch if self.hp.align == "matching" else self.align_batch
        if len(items) > limit:
            items = items[torch.randperm(len(items))[:limit]]
        views = {k: v[items] for k, v in extras["views"].items()}
        masks = {k: m[items] for k, m in extras["masks"].items()}
        content = extras["content"][items]
        if self.blocks:
            # align the (unweighted) mean of present modalities with the ID embedding
            stack = torch.stack([views[n] * masks[n][:, None] for n in self.inputs.names], 1)
            cnt = torch.stack([masks[n] for n in self.inputs.names], 1).sum(1, keepdim=True).clamp_min(1)
            content = stack.sum(1) / cnt
        id_emb = extras["id"][items] if "id" in extras else None
        return self.aligner(views, masks, content=content, id_emb=id_emb, id_mask=warm[items])

    def _predict(self, u: torch.Tensor, item_vecs: torch.Tensor, extras: dict[str, Any]) -> torch.Tensor:
        mats = self._score_matrices(u, None, item_vecs, extras)
        return self._fuse_ranks(mats, extras) if self.rank_fusion else mats[0]

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        item_vecs, extras = self._item_vectors(training=False)
        scores = self._predict(self._user_vectors(users, item_vecs), item_vecs, extras)
        return self._prior_for_unseen(users, scores)  # new_user_prior: users without training events

    # ------------------------------------------------------------------ serving
    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor | None:
        if not self.inner_product:
            return None
        item_vecs, _ = self._item_vectors(training=False)
        return self._export_items(item_vecs)

    @torch.no_grad()
    def user_embeddings(self) -> torch.Tensor | None:
        if not self.inner_product:
            return None
        item_vecs, _ = self._item_vectors(training=False)
        return self._export_users(self._user_vectors(torch.arange(self.n_users), item_vecs))

    @torch.no_grad()
    def place_content(self, feats: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, D] item vectors of new items from their (normalised) features, as a cold item gets them:
        no ID part and, with ``item_bias``, the mean bias -- in :meth:`item_embeddings`' space."""
        views = self.projector(feats)
        if self.blocks:
            w = self.score_fusion.item_weights(masks, next(iter(views.values())).shape[0])
            fused = torch.cat([views[n] * w[:, j:j + 1] for j, n in enumerate(self.inputs.names)], dim=1)
            vec = torch.cat([torch.zeros(fused.shape[0], self.dim), fused], dim=1)
        else:
            vec = self.fusion(views, masks)
        out = self._score_space(vec)
        if self.hp.item_bias:
            mean = self._item_bias()[self.warm].mean() if bool(self.warm.any()) else out.new_zeros(())
            out = torch.cat([out, mean.expand(out.shape[0], 1)], dim=1)
        return self._prior_new_items(out)  # new_user_prior: no prior row yet, the mean warm prior bias

    @torch.no_grad()
    def content_embeddings(self) -> torch.Tensor | None:
        """[n_items, D] content-only item vectors (what a brand-new item would get)."""
        if not self.use_content:
            return None
        _, _, fused = self._content(None, training=False)
        if self.blocks:
            fused = torch.cat([torch.zeros(self.n_items, self.dim), fused], dim=1)
        return self._export_items(fused)
