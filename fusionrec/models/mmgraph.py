"""MMGraph: graph multimodal retrieval (FREEDOM / LGMRec class), trained with a softmax loss.

The model combines three signals, each of which can be switched off by config so
that ablations use the *same* model:

1. **Collaborative graph.** LightGCN propagation of user and item ID embeddings
   over the symmetric-normalised user-item training graph, with FREEDOM-style
   degree-sensitive edge dropout resampled before every epoch.
2. **Frozen modality item-item graphs.** For every modality a cosine kNN graph
   is built once from the raw feature matrix (mask-aware: an item without that
   modality has no edges in it). The graphs are mixed per item with weights
   renormalised over the modalities the item actually has, so an item missing an
   image uses its text graph only -- never an imputed mean vector. Item
   embeddings are smoothed over this graph and added to the collaborative ones.
3. **Aligned content.** Every modality is projected (linear or MLP) into the ID
   space; the projections are fused (mask-aware mean, learned weights, or
   attention over modalities) into one content vector per item, which is added
   to the item ID embedding *before* graph propagation, so items with few or no
   interactions still get a meaningful position. An InfoNCE loss aligns each
   item's content vector with its collaborative embedding, which is what places
   cold items in the same space as warm ones.

Training uses a full softmax over the whole catalogue (the catalogues here have
a few thousand items, so this is exact and cheap) on cosine scores divided by a
temperature; BPR and sampled softmax are available for larger catalogues and
for comparison. Scores are inner products of the final user and item vectors,
so :meth:`user_embeddings` / :meth:`item_embeddings` enable ANN serving.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.align.contrastive import info_nce
from fusionrec.align.projection import Projection
from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.fuse.feature import build_fusion, modality_dropout
from fusionrec.models.adaptive_head import (
    ContentHead,
    activity_gate,
    detached_head_loss,
    head_rows,
    replace_rows,
    warm_neighbour_mean,
)
from fusionrec.models.base import RecModel
from fusionrec.models.graphs import (  # noqa: F401  (re-exported: tests and serving import them from here)
    _to_torch_sparse,
    knn_graph,
    modality_item_graph,
    normalized_bipartite,
    spmm,
    sym_normalize,
)
from fusionrec.models.mmgraph_params import MMGraphParams
from fusionrec.models.modal_inputs import ModalInputs
from fusionrec.models.sampled_softmax import (
    NegativeSampler,
    expected_log_count,
    sampled_softmax_loss,
    uses_sampled_softmax,
)


# ---------------------------------------------------------------------- the model
class MMGraph(RecModel):
    """Graph multimodal retrieval: LightGCN + frozen modality kNN graphs + aligned content.

    Hyper-parameters: :class:`MMGraph.Params` (``fusionrec models show mmgraph``). The
    defaults were chosen on VALID (lastfm2k, ml100k-mmrec; grid in docs/benchmarks/mmrec_compare.md).
    """

    name: ClassVar[str] = "mmgraph"
    trainable: ClassVar[bool] = True
    batch_kind: ClassVar[str] = "pairwise"
    uses_content: ClassVar[bool] = True
    # edge dropout draws on the host (CUDA's multinomial takes at most 2**24 edges): the same pruned
    # graphs on every device (train.device)
    host_tensors: ClassVar[tuple[str, ...]] = ("_edge_p",)

    Params = MMGraphParams

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        self._alias_hyperparameters()
        graph_mods, content_mods = self._select_modalities(data)
        train = data.train.tocsr().astype(np.float32)
        train.data[:] = 1.0
        self._init_user_item_graph(train)
        self._init_embeddings(np.asarray(train.sum(axis=0)).ravel())
        self._init_modality_graph(graph_mods)
        self._init_content(data, content_mods)
        # items with no training interaction are scored by the content head when there is one
        # the detached head draws from its own random stream (its init, dropout and row choice), so the
        # graph trains with the same random numbers as without a head
        self._head_rng = torch.Generator().manual_seed(torch.initial_seed() % 2**63)
        with torch.random.fork_rng(devices=[], enabled=self.hp.head_detach):
            if self.hp.head_detach:
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=self._head_rng)))
            self.head = (ContentHead(data, self.hp.modalities, self.dim, self.hp.head_hidden,
                                     dropout=self.hp.head_dropout, normalize=self.normalize, model=self.name)
                         if self.hp.cold_dropout > 0 else None)
        self._cold = torch.from_numpy(np.asarray(train.sum(axis=0)).ravel() <= 0)
        # new items' warm content neighbours (cold_neighbours), built on first use: the serving-time
        # knob may be set after training
        self._nbr_mods = graph_mods or content_mods
        self._cold_nbr: torch.Tensor | None = None
        self._activity = activity_gate(train)   # per-user factor of cold_gate
        # the softmax of a large catalogue is sampled (models/sampled_softmax.py)
        if self.loss_kind == "softmax" and uses_sampled_softmax(self.n_items, self.hp.full_softmax_max_items):
            self.loss_kind = "sampled_softmax"
        self._neg_sampler = NegativeSampler(np.asarray(train.sum(axis=0)).ravel(), self.hp.negative_sampler)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ construction
    def _alias_hyperparameters(self) -> None:
        # the names the methods below (and serving/ablation code) read; self.hp is the source
        p = self.hp
        self.dim = p.embedding_size
        self.n_ui_layers, self.n_mm_layers, self.knn_k = p.n_ui_layers, p.n_mm_layers, p.knn_k
        self.loss_kind, self.temperature, self.normalize = p.loss, p.temperature, p.normalize
        self.use_item_bias, self.n_negatives, self.reg_weight = p.item_bias, p.n_negatives, p.reg_weight
        self.align, self.align_weight = p.align, p.align_weight
        self.align_temperature, self.align_batch = p.align_temperature, p.align_batch
        self.edge_dropout, self.modality_dropout = p.edge_dropout, p.modality_dropout
        self.content_weight, self.mm_graph_weight = p.content_weight, p.mm_graph_weight
        self.fusion_name, self.projection, self.feature_norm = p.fusion, p.projection, p.feature_norm
        self.use_mm_graph, self.use_content = p.modality_graph, p.use_content

    def _select_modalities(self, data: TrainData) -> tuple[dict, dict]:
        """(modalities for the kNN graphs, modalities for the projected content): all in TrainData unless
        narrowed by ``modalities``; the two uses are switched separately (modality_graph, use_content)."""
        mods = dict(data.modalities)
        wanted = self.hp.modalities
        if wanted is not None:
            unknown = [m for m in wanted if m not in mods]
            if unknown:
                raise UserError(f"mmgraph: modalities {unknown} are not in the data", "model.params.modalities",
                                f"use a subset of {sorted(mods)} (or null for all)")
            mods = {m: mods[m] for m in wanted}
        graph_mods = mods if self.use_mm_graph else {}
        content_mods = mods if self.use_content else {}
        self.modality_names = list(dict.fromkeys([*graph_mods, *content_mods]))
        return graph_mods, content_mods

    def _init_user_item_graph(self, train: sp.csr_matrix) -> None:
        """The fixed normalised user-item graph, plus edge sampling weights for edge dropout."""
        self._full_adj = _to_torch_sparse(normalized_bipartite(train))
        self._epoch_adj = self._full_adj
        coo = train.tocoo()
        self._edge_u = coo.row.astype(np.int64)
        self._edge_i = coo.col.astype(np.int64)
        deg_u = np.asarray(train.sum(axis=1)).ravel()
        deg_i = np.asarray(train.sum(axis=0)).ravel()
        # FREEDOM's degree-sensitive pruning samples kept edges with prob ~ 1/sqrt(d_u d_i)
        edge_p = 1.0 / np.sqrt(deg_u[self._edge_u] * deg_i[self._edge_i]) if len(self._edge_u) else np.ones(0)
        self._edge_p = torch.from_numpy(edge_p / max(edge_p.sum(), 1e-12))

    def _init_embeddings(self, item_degree: np.ndarray) -> None:
        self.user_emb = nn.Embedding(self.n_users, self.dim)
        self.item_emb = nn.Embedding(self.n_items, self.dim)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        # Items without training interactions have an ID embedding no positive ever trained;
        # zeroing it makes such (cold) items rank purely by their aligned content.
        warm = torch.from_numpy(item_degree > 0).float().unsqueeze(1)
        self.register_buffer("_warm_items", warm if self.hp.zero_cold_ids else torch.ones_like(warm),
                             persistent=False)
        # 0 for warm items, -inf for cold ones: added to the logits of the softmax partition when cold
        # items are not negatives (nobody could have interacted with them in training)
        cold = torch.from_numpy(item_degree <= 0)
        self._partition_mask = (None if self.hp.cold_negatives or not cold.any()
                                else torch.zeros(self.n_items).masked_fill(cold, float("-inf")))
        # A per-item score bias carries popularity, which cosine scores cannot (they drop the norms).
        # Like the ID vectors it is zero for items without training interactions, so a cold item is
        # neither pushed down by having been a softmax negative nor up by an untrained value.
        self.item_bias = nn.Parameter(torch.zeros(self.n_items)) if self.use_item_bias else None

    def _init_modality_graph(self, graph_mods: dict) -> None:
        """The frozen, mask-aware mix of the modality item-item kNN graphs (None when off or empty)."""
        self._mm_adj: torch.Tensor | None = None
        self._mm_adj_t: torch.Tensor | None = None
        self._mm_graph: sp.csr_matrix | None = None
        if graph_mods and self.n_mm_layers > 0 and self.mm_graph_weight != 0:
            g = modality_item_graph(graph_mods, self.knn_k, self.hp.modality_weights)
            if g is not None and g.nnz > 0:
                self._mm_graph = g
                self._mm_adj = _to_torch_sparse(g)
                self._mm_adj_t = _to_torch_sparse(g.T.tocsr())  # kNN graphs are directed

    def _cold_neighbours(self) -> torch.Tensor | None:
        """:func:`warm_neighbour_mean` over the mixed modality kNN graph (the smoothing one when built)."""
        if self._cold_nbr is None:
            graph = self._mm_graph
            if graph is None and self._nbr_mods:
                graph = modality_item_graph(self._nbr_mods, self.knn_k, self.hp.modality_weights)
            nbr = warm_neighbour_mean(graph, self._cold.cpu().numpy())
            self._cold_nbr = nbr.to(self._cold.device) if nbr is not None else None
        return self._cold_nbr

    def _init_content(self, data: TrainData, content_mods: dict) -> None:
        """Per-modality projection into the ID space, then mask-aware fusion (None when off)."""
        self.proj = nn.ModuleDict()
        self.fusion: nn.Module | None = None
        self.inputs: ModalInputs | None = None
        if content_mods:
            self.inputs = ModalInputs(data, list(content_mods), self.feature_norm, self.name)
            for m, fm in content_mods.items():
                self.proj[m] = Projection(fm.dim, self.dim, self.projection, hidden=self.hp.hidden_dim)
            self.fusion = build_fusion(self.fusion_name, list(content_mods), self.dim)

    # ------------------------------------------------------------------ pieces
    def content(self, items: torch.Tensor | None = None, drop: bool = False) -> torch.Tensor | None:
        """Fused projected content [n, dim] of ``items`` (all items when None), mask-aware.

        Absent modalities are excluded by the fusion (never imputed); in
        training, modality dropout hides present modalities at random (never all
        of an item's) so the model learns to rank from any subset.
        """
        if self.fusion is None:
            return None
        if items is None:
            feats, masks = self.inputs.all_features(), self.inputs.all_masks()
        else:
            feats, masks = self.inputs.gather(items)
        views = {m: layer(feats[m]) for m, layer in self.proj.items()}
        if drop and self.modality_dropout > 0:
            masks = modality_dropout(masks, self.modality_dropout, training=True)
        return self.fusion(views, masks)

    def modality_weights(self) -> dict[str, float]:
        """Mean fusion weight per modality over the items that have it (for reports)."""
        if self.fusion is None:
            return {}
        with torch.no_grad():
            views = {m: self.proj[m](self.inputs.features(m)) for m in self.proj}
            masks = self.inputs.all_masks()
            w = self.fusion.weights(views, masks)
            if w is None:
                return {}
            return {m: float(w[masks[m], j].mean()) if masks[m].any() else 0.0
                    for j, m in enumerate(self.proj)}

    def item_inputs(self, drop: bool = False) -> torch.Tensor:
        """Layer-0 item vectors: ID embedding plus (weighted) fused content."""
        item0 = self.item_emb.weight * self._warm_items
        if drop and self.hp.id_dropout > 0:
            item0 = item0 * (torch.rand(self.n_items, 1) >= self.hp.id_dropout)
        c = self.content(drop=drop)
        if c is not None and self.content_weight != 0:
            item0 = item0 + self.content_weight * c
        return item0

    def bias(self) -> torch.Tensor | None:
        """[n_items] score bias (None when ``item_bias`` is off); zero for items never seen in training."""
        if self.item_bias is None:
            return None
        return self.item_bias * self._warm_items.squeeze(1)

    def propagate(self, adj: torch.Tensor, drop: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user and item vectors over the user-item graph ``adj`` and the modality graph."""
        item0 = self.item_inputs(drop)
        x = torch.cat([self.user_emb.weight, item0], dim=0)
        acc = x
        for _ in range(self.n_ui_layers):
            x = spmm(adj, x)  # the normalised user-item graph is symmetric
            acc = acc + x
        out = acc / (self.n_ui_layers + 1)  # LightGCN's mean over layers 0..L
        users, items = out[: self.n_users], out[self.n_users:]
        if self._mm_adj is not None:
            h = item0
            for _ in range(self.n_mm_layers):
                h = spmm(self._mm_adj, h, self._mm_adj_t)
            items = items + self.mm_graph_weight * h
        if self.normalize:
            users = F.normalize(users, dim=1)
            items = F.normalize(items, dim=1)
        if self.head is not None and not (drop and self.hp.head_detach):
            # cold items (and, in training, a random share of warm ones) are scored from content alone
            head = self.head()
            nbr = self._cold_neighbours() if not drop and self.hp.cold_neighbours > 0 else None
            if nbr is not None:
                # serving: plus the mean final vector of each new item's warm content neighbours
                head = head + self.hp.cold_neighbours * torch.sparse.mm(nbr, items)
                head = F.normalize(head, dim=1) if self.normalize else head
            items = replace_rows(items, head, head_rows(self._cold, self.hp.cold_dropout, drop))
        return users, items

    # ------------------------------------------------------------------ training
    def pre_epoch(self) -> None:
        """Resample the pruned user-item graph for this epoch (FREEDOM's degree-sensitive dropout)."""
        self._cache = None
        if self.edge_dropout <= 0 or len(self._edge_u) == 0:
            self._epoch_adj = self._full_adj
            return
        n_keep = max(1, int(len(self._edge_u) * (1.0 - self.edge_dropout)))
        keep = torch.multinomial(self._edge_p, n_keep, replacement=False).cpu().numpy()
        sub = sp.csr_matrix((np.ones(n_keep, np.float32), (self._edge_u[keep], self._edge_i[keep])),
                            shape=(self.n_users, self.n_items))
        self._epoch_adj = _to_torch_sparse(normalized_bipartite(sub)).to(self._full_adj.device)

    def train(self, mode: bool = True) -> MMGraph:
        self._cache = None  # a mode switch invalidates the cached inference vectors
        return super().train(mode)

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users = batch["user"].long()
        pos = batch["pos_item"].long()
        u_all, i_all = self.propagate(self._epoch_adj, drop=True)
        # cosine scores need a temperature; raw inner products are used as they are.
        # The scale is folded into the [B, d] user rows, not the [B, n_items] logits.
        scale = 1.0 / self.temperature if self.normalize else 1.0
        u = u_all[users] * scale
        b = self.bias()
        if b is None:
            b = u_all.new_zeros(self.n_items)
        b_neg = b if self._partition_mask is None else b + self._partition_mask
        if self.loss_kind == "softmax":
            # Exact softmax over the whole catalogue: cheap for catalogues of a few thousand items.
            # A batch of pairs repeats users, and the log-partition depends on the user only, so it
            # is computed once per distinct user (~40% fewer [B, n_items] rows at batch 2048 on
            # lastfm2k); the loss equals cross_entropy(u @ i_all.T, pos).
            distinct, inverse = torch.unique(users, return_inverse=True)
            log_z = torch.logsumexp((u_all[distinct] * scale) @ i_all.T + b_neg[None, :], dim=1)
            rec = (log_z[inverse] - (u * i_all[pos]).sum(dim=1) - b[pos]).mean()
        elif self.loss_kind == "sampled_softmax":
            # shared negatives; uniform ones need no logQ correction (the same constant for every item)
            negs = self._neg_sampler.sample(self.n_negatives)
            pos_s = (u * i_all[pos]).sum(dim=1) + b[pos]
            neg_s = u @ i_all[negs].T + b_neg[None, negs]
            corr = self.hp.negative_sampler != "uniform"
            log_q = (lambda ids: expected_log_count(ids, None, 0, self._neg_sampler, len(negs))) if corr else None
            rec = sampled_softmax_loss(pos_s, neg_s, pos, negs, log_q(pos) if corr else None,
                                       log_q(negs) if corr else None)
        else:
            neg = batch["neg_item"].long()
            diff = (u * i_all[pos]).sum(1) + b[pos] - (u * i_all[neg]).sum(1) - b[neg]
            rec = -F.logsigmoid(diff).mean()
        loss = rec
        if self.head is not None and self.hp.head_detach:
            loss = loss + detached_head_loss(self.head, users, pos, u_all, i_all, self._cold,
                                             self.hp.cold_dropout, scale, self._head_rng, self.bias())
        if self.align == "infonce" and self.fusion is not None and self.align_weight > 0:
            loss = loss + self.align_weight * self.align_loss(pos)
        if self.reg_weight > 0:
            loss = loss + self.reg_weight * (
                self.user_emb.weight[users].pow(2).sum() + self.item_emb.weight[pos].pow(2).sum()
            ) / len(users)
        return loss

    def align_loss(self, items: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE between each batch item's fused content and its ID embedding.

        This ties the content projection to the collaborative space, so an item
        with no interactions (ID embedding never trained) is placed by its content
        where a warm item with the same content would be.
        """
        items = torch.unique(items)
        if len(items) > self.align_batch > 0:
            # a random subset bounds the [n, n] similarity matrix; the loss is an average anyway
            items = items[torch.randperm(len(items))[: self.align_batch]]
        return info_nce(self.content(items, drop=True), self.item_emb.weight[items], self.align_temperature)

    # ------------------------------------------------------------------ inference
    def _final(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is not None and not self.training:
            return self._cache
        with torch.no_grad():
            out = self.propagate(self._full_adj, drop=False)
        if not self.training:
            self._cache = out
        return out

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        # only the batch's user rows are turned into serving vectors, not every user per batch
        users = users.long()
        return self._serving_rows(self._final()[0][users], users) @ self.item_embeddings().T

    def user_embeddings(self) -> torch.Tensor:
        return self._serving_rows(self._final()[0], torch.arange(self.n_users))

    def _serving_rows(self, u: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        bias, gate = self._score_bias(self.bias(), self._cold), self._gate()
        if bias is None and gate is None:
            return u   # without a bias the temperature does not change the ranking
        # with a bias the scale matters: [u / temperature, 1, g_u] . [i, b, cold] = training score
        # + the item bias - cold_margin + the user's gate bonus on cold items
        scale = 1.0 / self.temperature if self.normalize else 1.0
        cols = [u * scale]
        if bias is not None:
            cols.append(torch.ones(len(u), 1))
        if gate is not None:
            cols.append(gate[users, None] * scale)
        return torch.cat(cols, dim=1)

    def _gate(self) -> torch.Tensor | None:
        """[n_users] cosine-unit bonus on new items' scores (``cold_gate`` x centred log activity);
        None when off or when every item has training interactions."""
        if self.hp.cold_gate <= 0 or not bool(self._cold.any()):
            return None
        return self.hp.cold_gate * self._activity

    def _score_bias(self, bias: torch.Tensor | None, cold: torch.Tensor) -> torch.Tensor | None:
        """Serving bias in logit units: the item ``bias``, minus ``cold_margin`` (cosine units) for the
        ``cold`` items; None when there is neither. The margin column exists when the training catalogue
        has items without interactions (the users' vectors were built to match)."""
        b = bias
        if self.hp.cold_margin > 0 and bool(self._cold.any()):
            scale = 1.0 / self.temperature if self.normalize else 1.0
            margin = -self.hp.cold_margin * scale * cold.float()
            b = margin if b is None else b + margin
        return b

    def item_embeddings(self) -> torch.Tensor:
        return self.serving_rows(self._final()[1], self.bias(), self._cold)

    def serving_rows(self, vectors: torch.Tensor, bias: torch.Tensor | None, cold: torch.Tensor) -> torch.Tensor:
        """Item rows of the serving space from final item ``vectors`` [n, dim], their item ``bias`` [n]
        (None when ``item_bias`` is off) and ``cold`` [n] (no training interaction): the vectors, then the
        score-bias column (the bias minus ``cold_margin`` on cold items) and the cold-flag column that
        the users' ``cold_gate`` multiplies, each only when the model scores with it. Serving builds a
        posted item's row with this too (``serve/placement.py``), so it matches the catalogue's."""
        b, gate = self._score_bias(bias, cold), self._gate()
        if b is None and gate is None:
            return vectors
        cols = [vectors] + ([b[:, None]] if b is not None else []) + ([cold.float()[:, None]] if gate is not None else [])
        with torch.no_grad():
            return torch.cat(cols, dim=1)

    @property
    def neighbour_modalities(self) -> dict:
        """The modalities of the content kNN graph that ``cold_neighbours`` reads (name -> FeatureModality)."""
        return dict(self._nbr_mods)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        self._cache = None  # restored weights (e.g. the valid-best ones) invalidate cached vectors
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
