"""Collaborative baselines: hand-checked Popularity/ItemKNN, BPR and LightGCN learn, MMRec details."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from fusionrec.config import TrainConfig
from fusionrec.data.dataset import TrainData
from fusionrec.evaluate import Evaluator
from fusionrec.models.bpr import bpr_loss, embedding_norm_reg
from fusionrec.models.itemknn import cosine_topk
from fusionrec.models.lightgcn import normalized_adjacency
from fusionrec.models.registry import build_model, default_params
from fusionrec.train import Trainer, seed_everything
from tests.train.synthetic import clustered_dataset


def _data(dense: np.ndarray) -> TrainData:
    m = sp.csr_matrix(dense.astype(np.float32))
    coo = m.tocoo()
    return TrainData(dense.shape[0], dense.shape[1], m, pd.DataFrame({"user": coo.row, "item": coo.col}))


# users x items, hand example
HAND = np.array([
    [1, 1, 0, 0],
    [1, 1, 1, 0],
    [0, 1, 1, 0],
    [0, 0, 0, 1],
])


def test_popularity_scores_are_training_counts():
    model = build_model("pop", _data(HAND), {})
    model.fit(_data(HAND))
    scores = model.full_sort_predict(torch.tensor([0, 3]))
    assert scores.tolist() == [[2, 3, 2, 1], [2, 3, 2, 1]]


def test_itemknn_cosine_and_scores_by_hand():
    data = _data(HAND)
    # item columns: i0=(1,1,0,0) i1=(1,1,1,0) i2=(0,1,1,0) i3=(0,0,0,1)
    # cos(i0,i1)=2/sqrt(2*3)=0.8165, cos(i0,i2)=1/2=0.5, cos(i1,i2)=0.8165, cos(.,i3)=0
    ids, sims = cosine_topk(data.train, k=2)
    assert ids[0].tolist() == [1, 2] and sims[0] == pytest.approx([2 / np.sqrt(6), 0.5], abs=1e-6)
    assert set(ids[1].tolist()) == {0, 2} and sims[1] == pytest.approx([2 / np.sqrt(6)] * 2, abs=1e-6)
    assert sims[3].tolist() == [0.0, 0.0]

    model = build_model("itemknn", data, {"k": 1})
    model.fit(data)
    # k=1: i0 -> {i1}, i1 -> {i0 or i2: tie}, i2 -> {i1}, i3 -> nothing useful (sim 0)
    s = model.full_sort_predict(torch.tensor([2])).numpy()[0]
    # user 2 has i1, i2: score(i0) = sim(i0<-i1) = 0.8165; score(i2) = sim(i2<-i1) = 0.8165
    assert s[0] == pytest.approx(2 / np.sqrt(6), abs=1e-6)
    assert s[3] == 0.0
    model_all = build_model("itemknn", data, {"k": 3})
    model_all.fit(data)
    full = model_all.full_sort_predict(torch.arange(4)).numpy()
    x = HAND.astype(float)
    norms = np.sqrt(x.sum(0))
    cos = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(cos, 0)
    assert np.allclose(full, x @ cos, atol=1e-5)  # k >= n_items-1 equals the exact item-based CF


def test_bpr_loss_and_reg_follow_mmrec_definitions():
    pos = torch.tensor([2.0, 0.0])
    neg = torch.tensor([0.0, 1.0])
    expected = -np.mean(np.log(1e-10 + 1 / (1 + np.exp(-np.array([2.0, -1.0])))))
    assert float(bpr_loss(pos, neg)) == pytest.approx(expected, rel=1e-6)
    a = torch.ones(4, 3)
    b = torch.full((4, 3), 2.0)
    # MMRec EmbLoss: plain (not squared) norms / batch size
    assert float(embedding_norm_reg(a, b)) == pytest.approx((np.sqrt(12) + np.sqrt(48)) / 4)


def test_lightgcn_adjacency_is_symmetric_normalised():
    adj = normalized_adjacency(sp.csr_matrix(HAND.astype(np.float32))).to_dense().numpy()
    n_u = HAND.shape[0]
    a = np.zeros((8, 8))
    a[:n_u, n_u:] = HAND
    a[n_u:, :n_u] = HAND.T
    d = a.sum(1) + 1e-7
    assert np.allclose(adj, a / np.sqrt(np.outer(d, d)), atol=1e-6)
    assert np.allclose(adj, adj.T)


def test_lightgcn_gradient_matches_dense_reference():
    data = _data(HAND)
    model = build_model("lightgcn", data, {"embedding_size": 3, "n_layers": 2, "reg_weight": 0.0})
    batch = {"user": torch.tensor([0, 2]), "pos_item": torch.tensor([1, 2]), "neg_item": torch.tensor([3, 0])}
    loss = model.calculate_loss(batch)
    loss.backward()
    grad = model.user_embedding.weight.grad.clone()
    # dense autograd reference of the same propagation
    adj = model.norm_adj.to_dense()
    ego = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().requires_grad_(True)
    layers = [ego, adj @ ego, adj @ (adj @ ego)]
    out = torch.stack(layers).mean(0)
    u, i = out[:4], out[4:]
    ref = bpr_loss((u[[0, 2]] * i[[1, 2]]).sum(-1), (u[[0, 2]] * i[[3, 0]]).sum(-1))
    ref.backward()
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    assert torch.allclose(grad, ego.grad[:4], atol=1e-6)


def test_lightgcn_eval_cache_is_invalidated_by_weight_changes():
    data = _data(HAND)
    model = build_model("lightgcn", data, {"embedding_size": 4, "n_layers": 2})
    model.eval()
    before = model.full_sort_predict(torch.tensor([0])).clone()
    assert torch.equal(before, model.full_sort_predict(torch.tensor([0])))
    with torch.no_grad():  # propagation is linear: doubling every embedding scales scores by 4
        model.user_embedding.weight.mul_(2.0)
        model.item_embedding.weight.mul_(2.0)
    after = model.full_sort_predict(torch.tensor([0]))
    assert torch.allclose(after, before * 4.0, atol=1e-5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["user_embedding.weight"].zero_()
    state["item_embedding.weight"].zero_()
    model.load_state_dict(state)
    assert model.full_sort_predict(torch.tensor([0])).abs().sum() == 0


def test_defaults_match_mmrec():
    assert default_params("bpr")["embedding_size"] == 64
    lgn = default_params("lightgcn")
    assert lgn["embedding_size"] == 64 and lgn["n_layers"] in (3, 4)
    assert lgn["reg_weight"] in (1e-2, 1e-3, 1e-4)
    assert default_params("bpr")["reg_weight"] in (2.0, 1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5)


@pytest.fixture(scope="module")
def clustered():
    return clustered_dataset(n_users=300, n_items=200, seed=0)


@pytest.fixture(scope="module")
def evaluator(clustered):
    return Evaluator(clustered, ks=(20,), protocol="full", metrics=("recall", "ndcg"))


def _train(name, ds, ev, params):
    seed_everything(0)
    data = ds.train_data()
    model = build_model(name, data, params)
    cfg = TrainConfig(epochs=40, batch_size=512, lr=0.01, patience=5, progress=False, num_threads=1,
                      checkpoint=False, seeds=[0])
    Trainer(model, data, cfg, ev, seed=0).fit()
    return ev.evaluate(model, "test")["recall@20"], model


def test_bpr_and_lightgcn_learn_well_above_popularity(clustered, evaluator):
    pop, _ = _train("pop", clustered, evaluator, {})
    bpr, bpr_model = _train("bpr", clustered, evaluator, {"embedding_size": 32, "reg_weight": 1e-3})
    lgn, lgn_model = _train("lightgcn", clustered, evaluator,
                            {"embedding_size": 32, "n_layers": 2, "reg_weight": 1e-4})
    knn, _ = _train("itemknn", clustered, evaluator, {"k": 50})
    assert pop < 0.35
    for name, value in (("bpr", bpr), ("lightgcn", lgn), ("itemknn", knn)):
        assert value > pop + 0.3, f"{name} recall@20 {value:.3f} vs popularity {pop:.3f}"
    # serving relies on scores == user_emb @ item_emb.T
    for model in (bpr_model, lgn_model):
        users = torch.arange(5)
        assert torch.allclose(model.full_sort_predict(users),
                              model.user_embeddings()[users] @ model.item_embeddings().T, atol=1e-5)
