"""mmgraph's detached content head (``head_detach``) and per-user cold gate (``cold_gate``): the head
learns against the graph's final vectors without touching them, so warm items keep the plain model's
scores exactly, new items get head scores, and the gate shifts new items per user by activity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.config import TrainConfig
from fusionrec.errors import UserError
from fusionrec.models.adaptive_head import activity_gate
from fusionrec.models.registry import build_model
from fusionrec.train import Trainer, seed_everything
from tests.models.test_mmgraph import _clustered

DETACHED = {"cold_dropout": 0.3, "head_detach": True, "cold_negatives": True}
# fixed epochs, no validation: both models train for the same steps, nothing is selected
FIXED = TrainConfig(epochs=6, batch_size=256, lr=0.01, seeds=[0], checkpoint=False, progress=False,
                    num_threads=1)
# the demo's kind of model: content dropout and alignment draw random numbers every step
RANDOM_PARTS = {"modality_dropout": 0.2, "align_batch": 16, "edge_dropout": 0.1, "item_bias": True}


def _train(ds, params: dict):
    seed_everything(0)
    data = ds.train_data()
    model = build_model("mmgraph", data, params)
    Trainer(model, data, FIXED, None, seed=0).fit()
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(torch.arange(ds.n_users)).clone()
    return model, scores, torch.from_numpy(data.item_popularity <= 0)


def test_detached_head_leaves_warm_scores_identical_and_scores_new_items():
    ds, _, _ = _clustered(n_users=120, n_items=60, cold_items=8, per_user=10)
    plain, s_plain, cold = _train(ds, RANDOM_PARTS)
    detached, s_det, _ = _train(ds, {**RANDOM_PARTS, **DETACHED})
    _, s_joint, _ = _train(ds, {**RANDOM_PARTS, "cold_dropout": 0.3})
    # the graph trained on the same random numbers and got no gradient from the head
    torch.testing.assert_close(detached.item_emb.weight, plain.item_emb.weight)
    torch.testing.assert_close(s_det[:, ~cold], s_plain[:, ~cold])
    # new items are scored by the (trained) head, not by the graph's content-only vectors
    with torch.no_grad():
        head = detached.head()
    users = detached._final()[0]
    # new items have no item bias: their logit is the user's vector . the head vector / temperature
    torch.testing.assert_close(s_det[:, cold], users @ head[cold].T / detached.hp.temperature)
    assert not torch.allclose(s_det[:, cold], s_plain[:, cold], atol=1e-3)
    # the joint head (DropoutNet through the graph) does change the warm scores
    assert not torch.allclose(s_joint[:, ~cold], s_plain[:, ~cold], atol=1e-3)


def test_detached_head_ranks_each_users_new_item_of_their_own_cluster():
    ds, user_c, item_c = _clustered()
    _, scores, cold = _train(ds, {**DETACHED, "align": "none"})
    s = scores[:, cold].numpy()
    same = item_c[cold.numpy()][None, :] == user_c[:, None]
    top = s.argmax(axis=1)
    assert same[np.arange(len(top)), top].mean() > 0.8     # 4 clusters: chance is 0.25


def test_cold_gate_shifts_new_items_by_user_activity_and_serving_vectors_agree():
    ds, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=10)
    data = ds.train_data()
    # users with more training interactions get a positive factor, the factor is centred on log counts
    counts = np.asarray(data.train.sum(axis=1)).ravel()
    act = activity_gate(data.train)
    assert act.shape == (60,) and abs(float(np.log1p(counts).mean() - np.log1p(counts)[0]) + float(act[0])) < 1e-5
    assert float(act[counts.argmax()]) > 0 > float(act[counts.argmin()])
    cold = torch.from_numpy(data.item_popularity <= 0)
    seed_everything(0)
    model = build_model("mmgraph", data, DETACHED)
    model.eval()
    users = torch.arange(60)
    before = model.full_sort_predict(users).clone()
    model.hp = model.hp.model_copy(update={"cold_margin": 0.1, "cold_gate": 0.05})
    model.load_state_dict(model.state_dict())          # drops the cached vectors
    after = model.full_sort_predict(users)
    scale = 1.0 / model.hp.temperature
    torch.testing.assert_close(after[:, ~cold], before[:, ~cold] * scale)
    shift = (-0.1 + 0.05 * act)[:, None]
    torch.testing.assert_close(after[:, cold], (before[:, cold] + shift) * scale)
    torch.testing.assert_close(model.user_embeddings()[users] @ model.item_embeddings().T, after)


def test_head_detach_without_a_head_is_refused_with_the_fix():
    ds, _, _ = _clustered(n_users=40, n_items=40, cold_items=4, per_user=8)
    with pytest.raises(UserError, match="set cold_dropout > 0"):
        build_model("mmgraph", ds.train_data(), {"head_detach": True})
