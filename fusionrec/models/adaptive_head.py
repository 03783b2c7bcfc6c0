"""A content-only item head that places items without interactions in a graph model's *final* space.

Why: a graph model's warm item vector is mostly collaborative (its neighbours' user vectors after
propagation). An item with no training interaction has no neighbours, so whatever content is added
at layer 0 lands in a different part of the space, and the softmax learns to rank it low: in one
ranked list new items lose to warm ones regardless of fit (mmgraph on the demo's new arrivals:
Recall@20 0.007 against 0.197 for content-kNN).

The head maps an item's content (per-modality MLPs, mask-aware concat fusion, as in
:mod:`fusionrec.models.content_cf`) straight to a vector in the final, normalised item space. It is
trained DropoutNet-style (Volkovs et al., NeurIPS 2017) on the final vector: each step a random share
of the warm items is represented by its head vector instead of its graph vector, both as a positive
and in the softmax partition. The head is therefore trained and calibrated against real warm vectors
in the same softmax, so at inference a new item's head score competes with warm items' graph scores
on the same scale, and an item's interaction count decides which path scores it.

With ``head_detach`` the head is trained instead in a loss of its own against the graph's *detached*
final vectors (:func:`detached_head_loss`): the graph trains exactly as without a head, so warm items
keep the plain model's scores, and only items without interactions are scored by the head. The
DropoutNet step is the same (a random share of warm items scored by their head vector, positives and
partition), but no gradient reaches the graph.

Where new items may enter a list is decided at serving time: ``cold_margin`` lowers every new item's
score by one amount, and ``cold_gate`` (:func:`activity_gate`) lowers it less for users with many
training interactions, more for users with few. Every new item in a top-k takes a slot from a warm item;
a light user usually has one or two held-out items, so a displaced one costs them much, while a heavy
user has more held-out items of every kind, new arrivals included.

``cold_neighbours`` adds a second view of a new item at serving time: the mean final vector of its warm
neighbours in the model's content kNN graph (:func:`warm_neighbour_mean`), where the collaborative
signal placed items that look like it. The head's vector and that mean are summed (the mean weighted)
and renormalised.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.align import ModalityProjector
from fusionrec.data.dataset import TrainData
from fusionrec.fuse import build_fusion, modality_dropout
from fusionrec.models.modal_inputs import ModalInputs


class ContentHead(nn.Module):
    """Items' content -> ``dim``-d vectors (unit length when ``normalize``), from features alone."""

    def __init__(self, data: TrainData, modalities: Any, dim: int, hidden: int, *, dropout: float = 0.2,
                 modality_dropout: float = 0.1, normalize: bool = True, model: str = "model") -> None:
        super().__init__()
        # z-scored features: the head learns which dimensions matter, so no dimension may dominate by scale
        self.inputs = ModalInputs(data, modalities, "standard", model)
        self.projector = ModalityProjector(self.inputs.dims, dim, kind="mlp", hidden=hidden, dropout=dropout)
        self.fusion = build_fusion("concat", self.inputs.names, dim)
        self.modality_dropout = modality_dropout
        self.normalize = normalize

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """[n, dim] head vectors of ``items`` (every item when None); modalities dropped in training."""
        if items is None:
            feats, masks = self.inputs.all_features(), self.inputs.all_masks()
        else:
            feats, masks = self.inputs.gather(items)
        return self.encode(feats, masks)

    def encode(self, feats: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> torch.Tensor:
        """[n, dim] head vectors of items given by their normalised features and presence masks (what
        ``self.inputs`` holds for the catalogue); serving places posted items with it."""
        masks = modality_dropout(masks, self.modality_dropout, self.training)
        out = self.fusion(self.projector(feats), masks)
        return F.normalize(out, dim=-1) if self.normalize else out


def replace_rows(vectors: torch.Tensor, head: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``vectors`` with the rows flagged in the bool mask ``rows`` taken from ``head`` (differentiable)."""
    return torch.where(rows.unsqueeze(1), head, vectors)


def head_rows(cold: torch.Tensor, share: float, training: bool) -> torch.Tensor:
    """Bool [n_items]: items scored by the head this step -- every cold item, plus in training a random
    ``share`` of the warm ones (the simulated new arrivals that train it)."""
    if not training or share <= 0:
        return cold
    return cold | (torch.rand(cold.shape[0], device=cold.device) < share)



def detached_head_loss(head: ContentHead, users: torch.Tensor, pos: torch.Tensor, user_vecs: torch.Tensor,
                       item_vecs: torch.Tensor, cold: torch.Tensor, share: float, scale: float,
                       generator: torch.Generator, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax loss of the head alone against the graph's final vectors, which get no gradient.

    Per step a random ``share`` of the warm items is scored by its head vector instead of its graph
    vector, as a positive and in the partition; items without training interactions are left out of
    the partition (nobody could choose them in training). ``bias`` (logit units, the graph's per-item
    bias) is kept for graph-scored rows and is 0 for head-scored ones, as for new items at serving
    time. The random draws (row choice, the head's
    dropout) come from ``generator`` inside a forked RNG, so the global stream -- and with it the
    graph's own training -- is the same as without the head.
    """
    # on a GPU the head's draws come from the device's generator: fork that one too
    with torch.random.fork_rng(devices=[cold.device.index or 0] if cold.is_cuda else []):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))
        rows = (torch.rand(cold.shape[0], device=cold.device) < share) & ~cold
        items = replace_rows(item_vecs.detach(), head(), rows)
    u = user_vecs.detach()
    distinct, inverse = torch.unique(users, return_inverse=True)
    b = torch.zeros(cold.shape[0], device=cold.device) if bias is None else bias.detach().masked_fill(rows, 0.0)
    log_z = torch.logsumexp((u[distinct] * scale) @ items.T + b.masked_fill(cold, float("-inf")), dim=1)
    return (log_z[inverse] - scale * (u[users] * items[pos]).sum(dim=1) - b[pos]).mean()


def warm_neighbour_mean(graph: sp.spmatrix | None, cold: np.ndarray) -> torch.Tensor | None:
    """Sparse [n_items, n_items]: row i of a new item averages its *warm* neighbours in the content
    (modality kNN) graph ``graph``, by edge weight; rows of warm items, and of new items with no warm
    neighbour, are empty. None without a graph or without new items.

    Why: a warm neighbour's final vector is where the collaborative signal put an item with similar
    content; averaged, it places a new item by content kNN in the model's own space, a second view
    next to the head's learned mapping (``cold_neighbours``).
    """
    if graph is None or not cold.any():
        return None
    g = sp.csr_matrix(graph, dtype=np.float32)
    g = sp.diags(cold.astype(np.float32)) @ g @ sp.diags((~cold).astype(np.float32))
    total = np.asarray(g.sum(axis=1)).ravel()
    g = sp.diags(np.divide(1.0, total, out=np.zeros_like(total), where=total > 0).astype(np.float32)) @ g
    coo = sp.coo_matrix(g)
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(index, torch.from_numpy(coo.data), g.shape).coalesce()


def activity_gate(train: sp.csr_matrix) -> torch.Tensor:
    """[n_users] centred log(1 + training interactions): > 0 for users more active than the average
    (in log terms), the per-user factor of ``cold_gate``."""
    log_n = np.log1p(np.asarray(train.sum(axis=1), dtype=np.float64).ravel())
    return torch.from_numpy((log_n - log_n.mean()).astype(np.float32))
