"""Content-kNN: the classic content-based baseline (and a cold-start reference).

A user's score for an item is the similarity of the item's content to the
user's training history. Per modality, features are centred (over present
items) and L2-normalised; then

* ``k: null`` -- score = mean cosine to all history items (= cosine to the mean
  of the normalised history vectors, computed as one matrix product);
* ``k: <int>`` -- score = mean of the ``k`` largest cosines to history items
  (item-kNN style; rewards matching one liked item closely).

With several modalities the per-modality scores are averaged with weights
``modality_weights`` (default equal), renormalised per item over the
modalities the item has -- a missing poster never counts as a zero similarity.
Nothing is learned (``trainable = False``); items without interactions get
scores like any other, which is why it is the reference for item cold-start.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pydantic import Field

from fusionrec.data.dataset import TrainData
from fusionrec.models.base import RecModel
from fusionrec.models.modal_inputs import ModalInputs
from fusionrec.models.params import FeatureNorm, Modalities, ModelParams


class ContentKNN(RecModel):
    """Similarity of candidate content to the user's training items."""

    name = "content_knn"
    trainable = False
    batch_kind = "user"
    uses_content = True

    class Params(ModelParams):
        modalities: Modalities = Field(None, description="item modalities to compare (null = all of "
                                                         "data.modalities)")
        feature_norm: FeatureNorm = Field("center_l2", description="feature normalisation before the cosine "
                                                                   "(center_l2: centre over present items)")
        k: int | None = Field(None, ge=0, description="null or 0: mean similarity to the whole history; "
                                                      "an int: mean of the top-k similarities")
        modality_weights: dict[str, float] = Field(default_factory=dict, description=(
            "per-modality weights (default 1 each), renormalised over the modalities an item has"))

    hp: Params

    def __init__(self, data: TrainData, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, params)
        self.inputs = ModalInputs(data, self.hp.modalities, self.hp.feature_norm, self.name)
        self.k = self.hp.k or None
        weights = self.hp.modality_weights
        self.register_buffer(
            "mod_weights",
            torch.tensor([float(weights.get(n, 1.0)) for n in self.inputs.names]), persistent=False)
        train = data.train.tocsr()
        self._train = train
        coo = train.tocoo()
        self._r = torch.sparse_coo_tensor(
            torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
            torch.ones(coo.nnz), tuple(train.shape), check_invariants=False).coalesce()

    def fit(self, data: TrainData) -> None:
        """Nothing to learn: the features are the model. (Kept for the closed-form contract.)"""

    def _modality_scores(self, name: str, users: torch.Tensor) -> torch.Tensor:
        feats, mask = self.inputs.features(name), self.inputs.mask(name).float()
        if self.k is None:
            # mean over the history items that have this modality
            sums = torch.sparse.mm(self._r, feats)[users]
            cnt = torch.sparse.mm(self._r, mask[:, None])[users]
            return sums @ feats.T / cnt.clamp_min(1.0)
        out = torch.zeros(len(users), self.n_items)
        indptr, indices = self._train.indptr, self._train.indices
        for row, u in enumerate(users.tolist()):
            hist = torch.from_numpy(indices[indptr[u]:indptr[u + 1]].astype(np.int64))
            hist = hist[mask[hist] > 0]
            if len(hist) == 0:
                continue
            sims = feats @ feats[hist].T                                             # [N, H]
            k = min(self.k, len(hist))
            out[row] = sims.topk(k, dim=1).values.mean(dim=1)
        return out

    def score_vectors(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """User [B, D] and item [N, D] vectors whose inner product is the score with ``k`` null (the
        mean similarity to the history), so it can be served or blended as one inner product
        (``content_cf``'s ``knn_weight``).

        Per modality, the mean of the user's normalised history vectors against the item's; the
        item side carries the modality weight renormalised over the modalities the item has.
        """
        if self.k is not None:
            raise ValueError("score_vectors needs k null: a top-k mean is not an inner product")
        present = [self.inputs.mask(n).float() * self.mod_weights[j] for j, n in enumerate(self.inputs.names)]
        total = torch.stack(present).sum(0).clamp_min(1e-12)
        # the history rows are scipy (host); the sums come back to where the features are (content_cf
        # holds this model as a submodule, so on a GPU its features moved there with it)
        hist = self._train[users.cpu().numpy()]
        user_parts, item_parts = [], []
        for name, share in zip(self.inputs.names, present):
            feats, mask = self.inputs.features(name), self.inputs.mask(name).float()
            sums = torch.from_numpy(np.asarray(hist @ feats.cpu().numpy(), dtype=np.float32))
            counts = torch.from_numpy(np.asarray(hist @ mask.cpu().numpy(), dtype=np.float32)).clamp_min(1.0)
            user_parts.append((sums / counts[:, None]).to(feats.device))
            item_parts.append(feats * (share / total)[:, None])
        return torch.cat(user_parts, 1), torch.cat(item_parts, 1)

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(len(users), self.n_items)
        weight = torch.zeros(self.n_items)
        for j, name in enumerate(self.inputs.names):
            present = self.inputs.mask(name).float() * self.mod_weights[j]
            total += self._modality_scores(name, users) * present[None, :]
            weight += present
        return total / weight.clamp_min(1e-12)[None, :]
