"""mmgraph's ``cold_neighbours``: at serving time a new item's head vector is summed with the mean final
vector of its warm neighbours in the content kNN graph (weighted), then renormalised; warm items' scores
do not move."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from fusionrec.errors import UserError
from fusionrec.models.adaptive_head import warm_neighbour_mean
from fusionrec.models.registry import build_model
from fusionrec.train import seed_everything
from tests.models.test_adaptive_head_detach import DETACHED, _train
from tests.models.test_mmgraph import _clustered


def test_warm_neighbour_mean_averages_warm_neighbours_by_weight_only():
    #   item 0 warm, 1 warm, 2 cold, 3 cold, 4 cold (its only neighbour is cold)
    graph = sp.csr_matrix(np.array([
        [0, 1, 1, 0, 0],
        [1, 0, 0, 1, 0],
        [1.0, 3.0, 0, 2.0, 0],
        [0, 2.0, 0, 0, 0],
        [0, 0, 1.0, 0, 0],
    ], dtype=np.float32))
    cold = np.array([False, False, True, True, True])
    m = warm_neighbour_mean(graph, cold).to_dense().numpy()
    expected = np.zeros((5, 5), np.float32)
    expected[2, :2] = [0.25, 0.75]       # the cold neighbour (item 3) is left out, weights renormalised
    expected[3, 1] = 1.0
    np.testing.assert_allclose(m, expected)   # warm rows and item 4 (no warm neighbour) stay empty
    assert warm_neighbour_mean(graph, np.zeros(5, bool)) is None
    assert warm_neighbour_mean(None, cold) is None


def test_cold_neighbours_mixes_the_neighbour_mean_into_new_items_only():
    ds, _, _ = _clustered(n_users=120, n_items=60, cold_items=8, per_user=10)
    model, before, cold = _train(ds, DETACHED)
    users = torch.arange(ds.n_users)
    model.hp = model.hp.model_copy(update={"cold_neighbours": 2.0})
    model.load_state_dict(model.state_dict())          # drops the cached vectors
    after = model.full_sort_predict(users)
    torch.testing.assert_close(after[:, ~cold], before[:, ~cold])
    model.hp = model.hp.model_copy(update={"cold_neighbours": 0.0})
    model.load_state_dict(model.state_dict())
    with torch.no_grad():
        u, graph_items = (x.clone() for x in model._final())
        graph_items[cold] = 0.0                           # only warm neighbours count
        head = model.head()
    nbr = model._cold_neighbours().to_dense()
    assert torch.all(nbr[~cold] == 0) and torch.allclose(nbr[cold].sum(1), torch.ones(int(cold.sum())))
    mixed = F.normalize(head + 2.0 * nbr @ graph_items, dim=1)
    torch.testing.assert_close(after[:, cold], u @ mixed[cold].T)   # no item bias: cosine scores
    assert not torch.allclose(after[:, cold], before[:, cold], atol=1e-3)


def test_cold_neighbours_alone_place_each_users_new_item_of_their_own_cluster():
    # an untrained head is noise; with a large weight the warm neighbours' trained vectors decide
    ds, user_c, item_c = _clustered()
    model, _, cold = _train(ds, {**DETACHED, "align": "none"})
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_()
    model.hp = model.hp.model_copy(update={"cold_neighbours": 50.0})
    model.load_state_dict(model.state_dict())
    s = model.full_sort_predict(torch.arange(ds.n_users))[:, cold].numpy()
    same = item_c[cold.numpy()][None, :] == user_c[:, None]
    top = s.argmax(axis=1)
    assert same[np.arange(len(top)), top].mean() > 0.8     # 4 clusters: chance is 0.25


def test_cold_neighbours_without_a_head_is_refused_with_the_fix():
    ds, _, _ = _clustered(n_users=40, n_items=40, cold_items=4, per_user=8)
    seed_everything(0)
    with pytest.raises(UserError, match="cold_neighbours"):
        build_model("mmgraph", ds.train_data(), {"cold_neighbours": 1.0})
