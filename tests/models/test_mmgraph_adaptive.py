"""mmgraph's content head (``cold_dropout``): which items it scores, and that it lets new items compete
with warm ones in one full ranking, which the default model does not."""
from __future__ import annotations

import numpy as np
import torch

from fusionrec.models.registry import build_model
from tests.models.test_mmgraph import _clustered, _fit

ADAPTIVE = {"cold_dropout": 0.3, "cold_negatives": False}


def test_head_scores_cold_items_always_and_a_share_of_warm_items_in_training():
    ds, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=10)
    data = ds.train_data()
    model = build_model("mmgraph", data, {**ADAPTIVE, "cold_dropout": 0.5})
    cold = torch.from_numpy(data.item_popularity <= 0)
    model.eval()
    with torch.no_grad():
        _, items = model.propagate(model._full_adj)
        head = model.head()
    torch.testing.assert_close(items[cold], head[cold])            # new items: content head only
    assert not torch.isclose(items[~cold], head[~cold]).all(dim=1).any()   # warm items: graph vectors
    model.train()
    model.head.eval()   # no dropout inside the head, so its rows can be recognised
    torch.manual_seed(0)
    _, items_t = model.propagate(model._full_adj, drop=True)
    with torch.no_grad():
        head_t = model.head()
    replaced = torch.isclose(items_t, head_t, atol=1e-6).all(dim=1)
    assert replaced[cold].all()
    share = replaced[~cold].float().mean()
    assert 0.3 < share < 0.7, share                                 # about half of the warm items
    # default params build no head and keep the old behaviour
    assert build_model("mmgraph", data, {}).head is None


def test_new_items_compete_with_warm_ones_in_the_full_ranking():
    ds, _, _ = _clustered()
    cold = np.arange(ds.n_items - 12, ds.n_items)
    hits = {}
    for name, params in (("default", {}), ("adaptive", ADAPTIVE)):
        model, ev = _fit(ds, params)
        model.eval()
        with torch.no_grad():
            s = model.full_sort_predict(torch.arange(ds.n_users)).numpy()
        s[ds.interaction_matrix("train").toarray() > 0] = -np.inf
        top10 = np.argsort(-s, axis=1)[:, :10]
        # each user's test cold item (own cluster) appears in their top 10 over the whole catalogue
        test = ds.split_frame("test")
        cold_truth = test[test["item"].isin(cold)].set_index("user")["item"]
        hits[name] = np.mean([cold_truth[u] in top10[u] for u in cold_truth.index])
        if name == "adaptive":
            assert ev.evaluate(model, "valid")["recall@10"] > 0.3       # warm items still ranked well
    assert hits["adaptive"] > 0.5 and hits["adaptive"] > hits["default"] + 0.2, hits


def test_cold_margin_lowers_only_new_items_and_serving_vectors_agree():
    ds, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=10)
    data = ds.train_data()
    cold = torch.from_numpy(data.item_popularity <= 0)
    model = build_model("mmgraph", data, ADAPTIVE)
    model.eval()
    users = torch.arange(10)
    before = model.full_sort_predict(users).clone()
    model.hp = model.hp.model_copy(update={"cold_margin": 0.2})
    model.load_state_dict(model.state_dict())          # drops the cached vectors
    after = model.full_sort_predict(users)
    scale = 1.0 / model.hp.temperature                 # with a bias the scores are logits (cosine / T)
    torch.testing.assert_close(after[:, ~cold], before[:, ~cold] * scale)
    torch.testing.assert_close(after[:, cold], (before[:, cold] - 0.2) * scale)
    torch.testing.assert_close(model.user_embeddings()[users] @ model.item_embeddings().T, after)
