"""Placing a new item with the served model's own content path.

A model that computes item vectors from content (``two_tower``'s item tower,
``content_cf``'s content tower, ``mmgraph``'s content head with its warm
content neighbours, or without a head its projected content plus its modality
graph) already knows where an item with given text/image features
belongs: the same function it applies to the cold items of its catalogue.
:func:`content_placer` wraps that function for one item at a time, so a posted
item gets exactly the vector the model would have given it, in the space of
``model.item_embeddings()``. Models without a content path (ID-only ones) get
``None`` and serving falls back to the ridge map of :mod:`fusionrec.serve.content`.

Each placer takes *raw* encoder outputs (what the feature store holds) and
normalises them as the model's :class:`~fusionrec.models.modal_inputs.ModalInputs`
did, with statistics of the training catalogue. Which normalisation that was is
checked, not assumed: the placer reproduces the model's own normalised catalogue
features, or it is not used.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fusionrec.data.dataset import Dataset
from fusionrec.models.modal_inputs import FEATURE_NORMS

log = logging.getLogger("fusionrec.serve")


class Normaliser:
    """The model's feature normalisation of one modality, with the catalogue's statistics."""

    def __init__(self, how: str, features: np.ndarray, mask: np.ndarray) -> None:
        self.how = how
        present = features[mask].astype(np.float32)
        self.mean = present.mean(axis=0) if len(present) else np.zeros(features.shape[1], np.float32)
        std = present.std(axis=0) if len(present) else np.ones(features.shape[1], np.float32)
        # constant dimensions are divided by 1, as in modal_inputs.normalise_features
        self.std = np.where(std > 1e-8, std, 1.0).astype(np.float32)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        x = np.asarray(rows, dtype=np.float32).copy()
        if self.how in ("standard", "center_l2"):
            x = x - self.mean
            if self.how == "standard":
                x = x / self.std
        if self.how in ("l2", "center_l2"):
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
        return x


def matching_normaliser(reference: torch.Tensor, features: np.ndarray, mask: np.ndarray) -> Normaliser | None:
    """The normalisation that turns the raw catalogue ``features`` into the model's ``reference``."""
    ref = reference.detach().cpu().numpy()[mask]
    for how in FEATURE_NORMS:
        norm = Normaliser(how, features, mask)
        if ref.shape == features[mask].shape and np.allclose(norm(features[mask]), ref, atol=1e-4, rtol=1e-4):
            return norm
    return None


class ContentPlacer:
    """Raw features of items -> their vectors in the model's item space (``item_embeddings()``)."""

    def __init__(self, model: Any, normalisers: dict[str, Normaliser]) -> None:
        self.model = model
        self.normalisers = normalisers

    @property
    def modalities(self) -> list[str]:
        return list(self.normalisers)

    def usable(self, vectors: Mapping[str, np.ndarray]) -> bool:
        """True when the item has at least one modality the model's content path reads."""
        return any(vectors.get(n) is not None for n in self.normalisers)

    def inputs(self, vectors: Mapping[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One item's normalised features and presence masks, shaped ``[1, dim]`` / ``[1]``."""
        feats, masks = {}, {}
        for name, norm in self.normalisers.items():
            v = vectors.get(name)
            present = v is not None
            dim = norm.mean.shape[0]
            row = norm(np.asarray(v, np.float32).reshape(1, -1)) if present else np.zeros((1, dim), np.float32)
            feats[name] = torch.from_numpy(row)
            masks[name] = torch.tensor([present])
        return feats, masks

    def place(self, vectors: Mapping[str, np.ndarray], row: int | None = None) -> np.ndarray:
        """The item-space vector of one item with these raw modality vectors.

        ``row``: the item's catalogue row when the model's training catalogue already
        holds it (a graph model then leaves the item itself out of its neighbours).
        """
        if not self.usable(vectors):
            raise ValueError(f"no modality the model reads (needs one of {self.modalities})")
        self.model.eval()
        with torch.no_grad():
            out = self._vector(vectors, *self.inputs(vectors), row)
        return np.ascontiguousarray(out.reshape(-1).cpu().numpy(), dtype=np.float32)

    def _vector(self, vectors: Mapping[str, np.ndarray], feats: dict[str, torch.Tensor],
                masks: dict[str, torch.Tensor], row: int | None) -> torch.Tensor:
        """The model-specific part: normalised inputs -> item vector ``[1, D]``."""
        raise NotImplementedError


class TwoTowerPlacer(ContentPlacer):
    """``two_tower``: the item tower with the ID part off (what its cold items get)."""

    def _vector(self, vectors, feats, masks, row):
        # the model's own cold-item path (decision-level blocks, the mean item bias included)
        return self.model.place_content(feats, masks)


class ContentCFPlacer(ContentPlacer):
    """``content_cf``: the content tower and its content bias (the item side never uses an ID)."""

    def _vector(self, vectors, feats, masks, row):
        m = self.model
        vec = m.fusion(m.projector(feats), masks)
        bias = m.bias(vec) if m.bias is not None else vec.new_zeros(1, 1)
        return torch.cat([vec, bias.reshape(1, 1)], dim=1)


class ContentNeighbours:
    """The row a posted item would have in a model's mixed modality kNN graph.

    Mirrors :func:`fusionrec.models.graphs.modality_item_graph`: per modality, the item's
    cosine kNN among the catalogue items that have that modality, each edge weighted
    ``1/sqrt(k) * 1/sqrt(column degree)`` (the degree counting the new edge), the
    modalities mixed with the model's ``modality_weights`` renormalised over the ones
    the item has.
    """

    def __init__(self, modalities: Mapping[str, Any], k: int, weights: Mapping[str, float] | None) -> None:
        from fusionrec.models.graphs import knn_graph

        self.k = k
        self.graph: dict[str, tuple[torch.Tensor, np.ndarray, np.ndarray]] = {}
        for name, mod in modalities.items():
            g = knn_graph(mod.features, mod.mask, k)
            unit = torch.nn.functional.normalize(torch.from_numpy(mod.features.astype(np.float32)), dim=1)
            self.graph[name] = (unit, mod.mask.copy(), np.asarray(g.sum(axis=0)).ravel())
        self.weights = {n: float((weights or {}).get(n, 1.0)) for n in self.graph}

    def row(self, feats_raw: Mapping[str, np.ndarray | None], row: int | None) -> tuple[np.ndarray, torch.Tensor]:
        """(catalogue rows, edge weights) of the item's graph row; a row may repeat across modalities.

        ``row``: the item's own catalogue row when the catalogue holds it (not its own neighbour).
        """
        present = [n for n in self.graph if feats_raw.get(n) is not None]
        total = sum(self.weights[n] for n in present)
        rows, weights = [np.zeros(0, np.int64)], [torch.zeros(0)]
        for name in present if total > 0 else []:
            unit, mask, cdeg = self.graph[name]
            q = torch.nn.functional.normalize(torch.from_numpy(np.asarray(feats_raw[name], np.float32)), dim=0)
            candidates = mask.copy()
            if row is not None:
                candidates[row] = False  # the catalogue's own copy of this item is not its neighbour
            idx = np.flatnonzero(candidates)
            if len(idx) == 0:
                continue
            k = min(self.k, len(idx))
            nbr = idx[torch.topk(unit[idx] @ q, k).indices.numpy()]
            # a catalogue item's degree already counts its own edges; a new item adds one to each neighbour
            deg = cdeg[nbr] + (0.0 if row is not None else 1.0)
            coef = (1.0 / np.sqrt(k) / np.sqrt(np.maximum(deg, 1e-12))) * self.weights[name] / total
            rows.append(nbr)
            weights.append(torch.from_numpy(coef.astype(np.float32)))
        return np.concatenate(rows), torch.cat(weights)


class MMGraphPlacer(ContentPlacer):
    """``mmgraph`` without a content head: projected, fused content, LightGCN layer mean of an isolated
    node, plus the modality graph row (:class:`ContentNeighbours`) over the catalogue's item vectors."""

    def __init__(self, model: Any, normalisers: dict[str, Normaliser], dataset: Dataset) -> None:
        super().__init__(model, normalisers)
        self.graph: dict[str, Any] = {}
        if model._mm_adj is None:
            return
        self.neighbours = ContentNeighbours({n: dataset.modalities[n] for n in model.modality_names},
                                            model.knn_k, _param(model, "modality_weights"))
        self.graph = self.neighbours.graph
        with torch.no_grad():
            h = model.item_inputs(drop=False)
            for _ in range(model.n_mm_layers - 1):
                h = torch.sparse.mm(model._mm_adj, h)
        self._h_prev = h  # item vectors the new item's graph row averages over

    def usable(self, vectors: Mapping[str, np.ndarray]) -> bool:
        return super().usable(vectors) or any(vectors.get(n) is not None for n in self.graph)

    def _vector(self, vectors, feats, masks, row):
        m = self.model
        item0 = torch.zeros(1, m.dim)
        if m.fusion is not None and m.content_weight != 0 and any(bool(v) for v in masks.values()):
            views = {n: layer(feats[n]) for n, layer in m.proj.items()}
            item0 = m.content_weight * m.fusion(views, masks)
        out = item0 / (m.n_ui_layers + 1)  # an item without interactions: only layer 0 of the mean
        if self.graph:
            nbr, w = self.neighbours.row({n: vectors.get(n) for n in self.graph}, row)
            out = out + m.mm_graph_weight * (w[:, None] * self._h_prev[nbr]).sum(0, keepdim=True)
        if m.normalize:
            out = torch.nn.functional.normalize(out, dim=1)
        # no trained bias for an unseen item; cold_margin and the cold_gate flag as for the catalogue's new items
        return m.serving_rows(out, None if m.item_bias is None else torch.zeros(1), torch.ones(1, dtype=torch.bool))


class MMGraphHeadPlacer(ContentPlacer):
    """``mmgraph`` with a content head (``cold_dropout > 0``): the path its own new items take.

    The head's vector of the item's content (its own feature normalisation), plus with
    ``cold_neighbours`` that weight times the edge-weighted mean final vector of the item's
    *warm* neighbours in the model's content kNN graph, renormalised; then the serving columns
    (no item bias, ``cold_margin``, the ``cold_gate`` flag) as for the catalogue's new items.
    """

    def __init__(self, model: Any, normalisers: dict[str, Normaliser], dataset: Dataset) -> None:
        super().__init__(model, normalisers)
        self.neighbours: ContentNeighbours | None = None
        self.graph: dict[str, Any] = {}
        if model.hp.cold_neighbours > 0 and model.neighbour_modalities:
            self.neighbours = ContentNeighbours({n: dataset.modalities[n] for n in model.neighbour_modalities},
                                                model.knn_k, model.hp.modality_weights)
            self.graph = self.neighbours.graph
            with torch.no_grad():
                self._final_items = model._final()[1]
            self._warm = ~model._cold.numpy()

    def _vector(self, vectors, feats, masks, row):
        m = self.model
        out = m.head.encode(feats, masks)
        if self.neighbours is not None:
            nbr, w = self.neighbours.row({n: vectors.get(n) for n in self.graph}, row)
            keep = self._warm[nbr]
            if keep.any():   # no warm neighbour: the head alone, as adaptive_head.warm_neighbour_mean
                w = w[torch.from_numpy(keep)]
                mean = (w[:, None] * self._final_items[nbr[keep]]).sum(0, keepdim=True) / w.sum()
                out = out + m.hp.cold_neighbours * mean
                out = torch.nn.functional.normalize(out, dim=1) if m.normalize else out
        return m.serving_rows(out, None if m.item_bias is None else torch.zeros(1), torch.ones(1, dtype=torch.bool))


def _param(model: Any, key: str) -> Any:
    hp = getattr(model, "hp", None)
    if hp is not None and hasattr(hp, key):
        return getattr(hp, key)
    return (getattr(model, "params", None) or {}).get(key)


def _normalisers(model: Any, dataset: Dataset, inputs: Any = None) -> dict[str, Normaliser] | None:
    """One :class:`Normaliser` per modality of ``inputs`` (default: the model's own ``inputs``)."""
    inputs = getattr(model, "inputs", None) if inputs is None else inputs
    if inputs is None:
        return {}
    out: dict[str, Normaliser] = {}
    for name in inputs.names:
        mod = dataset.modalities.get(name)
        norm = None if mod is None else matching_normaliser(inputs.features(name), mod.features, mod.mask)
        if norm is None:
            log.warning("%s: the served catalogue's %r features do not match what the model was built on; "
                        "new items are placed by the ridge map instead", type(model).__name__, name)
            return None
        out[name] = norm
    return out


def content_placer(model: Any, dataset: Dataset) -> ContentPlacer | None:
    """The model's own content path for new items, or None (ID-only models, content switched off)."""
    kind = getattr(model, "name", "")
    if kind == "two_tower" and getattr(model, "use_content", False):
        normalisers = _normalisers(model, dataset)
        return TwoTowerPlacer(model, normalisers) if normalisers else None
    if kind == "content_cf":
        normalisers = _normalisers(model, dataset)
        return ContentCFPlacer(model, normalisers) if normalisers else None
    if kind == "mmgraph" and getattr(model, "head", None) is not None:
        # new items of a model with a content head are scored by the head (adaptive_head.py)
        normalisers = _normalisers(model, dataset, model.head.inputs)
        return MMGraphHeadPlacer(model, normalisers, dataset) if normalisers else None
    if kind == "mmgraph" and (model.fusion is not None or model._mm_adj is not None):
        normalisers = _normalisers(model, dataset)
        if normalisers is None:
            return None
        return MMGraphPlacer(model, normalisers, dataset)
    return None


__all__ = ["ContentPlacer", "Normaliser", "content_placer", "matching_normaliser"]
