"""MMGraph (graph multimodal retrieval) and EASE: graph construction by hand, mask-awareness,
closed form by hand, learning through the shared Trainer/Evaluator, cold items from content."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from fusionrec.config import TrainConfig
from fusionrec.data.dataset import Dataset, FeatureModality, TrainData
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.models.mmgraph import (
    MMGraph,
    _to_torch_sparse,
    knn_graph,
    modality_item_graph,
    normalized_bipartite,
    spmm,
)
from fusionrec.models.registry import build_model, default_params
from fusionrec.train import Trainer, seed_everything


# ---------------------------------------------------------------------- fixtures
def _tiny(dense: np.ndarray, modalities: dict[str, FeatureModality] | None = None) -> TrainData:
    m = sp.csr_matrix(dense.astype(np.float32))
    coo = m.tocoo()
    return TrainData(dense.shape[0], dense.shape[1], m, pd.DataFrame({"user": coo.row, "item": coo.col}),
                     modalities or {})


def _clustered(n_users=240, n_items=120, n_clusters=4, per_user=14, cold_items=12, seed=0,
               image_missing=10) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """Users/items in taste clusters; text and image features are noisy views of the item's cluster.

    The last ``cold_items`` items never occur in training (only in valid/test), so
    only their content can place them; ``image_missing`` items have no image.
    """
    rng = np.random.default_rng(seed)
    user_c = rng.integers(0, n_clusters, n_users)
    item_c = np.arange(n_items) % n_clusters
    warm = np.arange(n_items - cold_items)
    cold = np.arange(n_items - cold_items, n_items)
    rows = []
    for u in range(n_users):
        own = warm[item_c[warm] == user_c[u]]
        items = rng.choice(own, size=per_user - 2, replace=False).tolist()
        items += rng.choice(warm, size=2, replace=False).tolist()
        items = list(dict.fromkeys(items))
        rng.shuffle(items)
        n_eval = max(1, len(items) // 10)
        split = ["test"] * n_eval + ["valid"] * n_eval + ["train"] * (len(items) - 2 * n_eval)
        rows += [(u, it, s) for it, s in zip(items, split)]
        # every user also has one cold item of their own cluster in test
        own_cold = cold[item_c[cold] == user_c[u]]
        rows.append((u, int(rng.choice(own_cold)), "test"))
    frame = pd.DataFrame(rows, columns=["user", "item", "split"])
    centers_t = rng.normal(size=(n_clusters, 16))
    centers_i = rng.normal(size=(n_clusters, 24))
    text = centers_t[item_c] + 0.3 * rng.normal(size=(n_items, 16))
    image = centers_i[item_c] + 0.3 * rng.normal(size=(n_items, 24))
    img_mask = np.ones(n_items, bool)
    img_mask[rng.choice(n_items, image_missing, replace=False)] = False
    ds = Dataset("clustered", np.arange(n_users), np.arange(n_items), frame,
                 modalities={"text": FeatureModality("text", "text", text),
                             "image": FeatureModality("image", "image", image, img_mask)})
    return ds, user_c, item_c


FAST = TrainConfig(epochs=30, batch_size=512, lr=0.01, eval_every=5, patience=3, seeds=[0],
                   checkpoint=False, progress=False, valid_metric="recall@10", num_threads=1)


# ---------------------------------------------------------------------- graphs
def test_knn_graph_by_hand_and_mask_aware():
    # items 0,1 point the same way, 2 is orthogonal, 3 is absent (its row must not be used)
    feats = np.array([[1, 0], [0.9, 0.1], [0, 1], [1, 0]], dtype=np.float32)
    mask = np.array([True, True, True, False])
    g = knn_graph(feats, mask, k=1).toarray()
    assert g[0].tolist() == [0, 1, 0, 0]          # nearest of 0 is 1 (not itself, not absent 3)
    assert g[1].tolist() == [1, 0, 0, 0]
    assert g[2, 3] == 0 and g[2, 2] == 0 and g[2].sum() == 1
    assert g[3].sum() == 0 and g[:, 3].sum() == 0  # absent item: no edges at all


def test_modality_graph_falls_back_to_present_modalities():
    text = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], dtype=np.float32)
    # image says 0~2 and 1~3 (contradicting text); item 0 has no image
    image = np.array([[0, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32)
    img_mask = np.array([False, True, True, True])
    mods = {"text": FeatureModality("text", "text", text),
            "image": FeatureModality("image", "image", image, img_mask)}
    g = modality_item_graph(mods, k=1).toarray()
    # item 0 has only text: its whole row comes from the text graph (neighbour 1)
    assert np.flatnonzero(g[0]).tolist() == [1]
    # item 1 has both: half text (-> 0), half image (-> 3); no edge into the imageless item from image
    assert set(np.flatnonzero(g[1]).tolist()) == {0, 3}
    # no row ever reaches the absent image of item 0 through the image graph: column 0 only from text
    img_only = modality_item_graph({"image": mods["image"]}, k=1).toarray()
    assert img_only[:, 0].sum() == 0 and img_only[0].sum() == 0


def test_normalized_bipartite_is_symmetric_lightgcn_normalisation():
    r = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0]], dtype=np.float32))
    a = normalized_bipartite(r).toarray()
    assert np.allclose(a, a.T)
    # user 0 (degree 2) - item 1 (degree 2): 1/sqrt(2*2)
    assert a[0, 2 + 1] == pytest.approx(0.5)
    # the item 2 without interactions is isolated (zero row), not a NaN
    assert np.all(a[4] == 0) and np.isfinite(a).all()


def test_spmm_gradient_matches_dense():
    rng = np.random.default_rng(0)
    dense = (rng.random((6, 6)) > 0.6) * rng.random((6, 6))
    adj = torch.from_numpy(dense.astype(np.float32))
    adj_s = _to_torch_sparse(sp.csr_matrix(dense))
    adj_t = _to_torch_sparse(sp.csr_matrix(dense.T))
    x = torch.randn(6, 3, requires_grad=True)
    w = torch.randn(6, 3)
    (spmm(adj_s, x, adj_t) * w).sum().backward()
    expected = adj.T @ w
    assert torch.allclose(x.grad, expected, atol=1e-6)


# ---------------------------------------------------------------------- model pieces
def test_content_fusion_ignores_absent_modality():
    ds, _, _ = _clustered()
    data = ds.train_data()
    model = MMGraph(data, {**default_params("mmgraph"), "fusion": "weighted_sum"})
    missing = int(np.flatnonzero(~ds.modalities["image"].mask)[0])
    with torch.no_grad():
        c = model.content(torch.tensor([missing]))
        text_only = model.proj["text"](model.inputs.features("text")[[missing]])
    # absent image: the fused vector is exactly the text view (weights renormalised), no imputation
    assert torch.allclose(c, text_only, atol=1e-6)


def test_bad_params_raise_user_errors():
    data = _tiny(np.eye(3))
    with pytest.raises(UserError, match="loss"):
        MMGraph(data, {"loss": "hinge"})
    with pytest.raises(UserError, match="edge_dropout"):
        MMGraph(data, {"edge_dropout": 1.0})
    ds, _, _ = _clustered()
    with pytest.raises(UserError, match="audio"):
        MMGraph(ds.train_data(), {"modalities": ["audio"]})


# ---------------------------------------------------------------------- learning
def _fit(ds: Dataset, params: dict, modalities=None, cfg: TrainConfig = FAST):
    seed_everything(0)
    data = ds.train_data(modalities)
    model = build_model("mmgraph", data, params)
    ev = Evaluator(ds, ks=(10,), protocol="mmrec", metrics=("recall", "ndcg"))
    Trainer(model, data, cfg, ev, seed=0).fit()
    return model, ev


def test_mmgraph_learns_clusters_and_places_cold_items_by_content():
    ds, user_c, item_c = _clustered()
    model, ev = _fit(ds, {"align": "infonce", "align_weight": 0.5})
    valid = ev.evaluate(model, "valid")
    pop = ds.interaction_matrix("train").sum(axis=0).A1
    pop_valid = ev.evaluate_scores(lambda u: np.tile(pop, (len(u), 1)), "valid")
    assert valid["recall@10"] > pop_valid["recall@10"] + 0.15

    # cold items never seen in training: content (aligned with the ID space) must still rank an
    # item of the user's own cluster above cold items of other clusters
    cold = np.arange(ds.n_items - 12, ds.n_items)
    with torch.no_grad():
        s = model.full_sort_predict(torch.arange(ds.n_users)).numpy()[:, cold]
    same = item_c[cold][None, :] == user_c[:, None]
    top = s.argmax(axis=1)
    assert same[np.arange(len(top)), top].mean() > 0.8   # chance would be 0.25

    # and an ID-only model cannot do this (its cold items are just untrained vectors)
    id_model, _ = _fit(ds, {"use_content": False, "modality_graph": False}, modalities=[])
    with torch.no_grad():
        s_id = id_model.full_sort_predict(torch.arange(ds.n_users)).numpy()[:, cold]
    top_id = s_id.argmax(axis=1)
    assert same[np.arange(len(top_id)), top_id].mean() < 0.6


def test_inference_cache_follows_weights_and_embeddings_give_scores():
    ds, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=10)
    data = ds.train_data()
    model = MMGraph(data, default_params("mmgraph"))
    model.eval()
    before = model.full_sort_predict(torch.tensor([0, 1])).clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.user_emb.weight.add_(1.0)
    model.load_state_dict(state)  # restoring weights must drop the cached vectors
    assert torch.allclose(model.full_sort_predict(torch.tensor([0, 1])), before)
    u, i = model.user_embeddings(), model.item_embeddings()
    assert torch.allclose(u[[0, 1]] @ i.T, before, atol=1e-5)


@pytest.mark.parametrize("use_content,modality_graph", [(True, True), (True, False), (False, True), (False, False)])
def test_content_and_modality_graph_switch_independently(use_content, modality_graph):
    ds, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=10)
    model = build_model("mmgraph", ds.train_data(), {"use_content": use_content, "modality_graph": modality_graph})
    assert (model.fusion is not None) == use_content
    assert (len(model.proj) > 0) == use_content
    assert (model._mm_adj is not None) == modality_graph


@pytest.mark.parametrize("item_bias", [False, True])
def test_softmax_loss_is_cross_entropy_over_the_catalogue(item_bias):
    # the loss computes the log-partition once per distinct user; it must equal the plain per-pair form
    ds, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=10)
    data = ds.train_data()
    model = build_model("mmgraph", data, {"align_weight": 0.0, "temperature": 0.3, "item_bias": item_bias})
    model.eval()
    bias = torch.zeros(ds.n_items)
    if item_bias:
        with torch.no_grad():
            model.item_bias.copy_(torch.randn(ds.n_items))
        bias = model.item_bias.detach() * torch.from_numpy(data.item_popularity > 0).float()
        assert torch.equal(model.bias()[data.item_popularity == 0], torch.zeros(int((data.item_popularity == 0).sum())))
    coo = data.train.tocoo()
    users = torch.from_numpy(coo.row).long()          # every user many times over
    pos = torch.from_numpy(coo.col).long()
    loss = model.calculate_loss({"user": users, "pos_item": pos})
    with torch.no_grad():
        u, i = model.propagate(model._full_adj)
    expected = torch.nn.functional.cross_entropy(u[users] / 0.3 @ i.T + bias, pos)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    # scores and serving vectors follow the trained score (ranking per user)
    scores = model.full_sort_predict(torch.tensor([0, 5]))
    torch.testing.assert_close(scores, u[[0, 5]] / 0.3 @ i.T + bias if item_bias else u[[0, 5]] @ i.T,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss", ["sampled_softmax", "bpr"])
def test_other_losses_train(loss):
    ds, _, _ = _clustered(n_users=120, n_items=60, cold_items=4, per_user=10)
    data = ds.train_data()
    model = build_model("mmgraph", data, {"loss": loss, "n_negatives": 32, "edge_dropout": 0.2})
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    coo = data.train.tocoo()
    batch = {"user": torch.from_numpy(coo.row).long(), "pos_item": torch.from_numpy(coo.col).long(),
             "neg_item": torch.randint(0, ds.n_items, (coo.nnz,))}
    losses = []
    for _ in range(30):
        model.pre_epoch()
        loss_v = model.calculate_loss(batch)
        opt.zero_grad()
        loss_v.backward()
        opt.step()
        losses.append(loss_v.item())
    assert losses[-1] < 0.8 * losses[0]


# ---------------------------------------------------------------------- EASE
def test_ease_matches_closed_form_by_hand():
    x = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]], dtype=np.float64)
    data = _tiny(x)
    model = build_model("ease", data, {"l2": 2.0})
    model.fit(data)
    b = model.weights.numpy().astype(np.float64)
    # B = I - P diag(1/diag(P)), P = (X^T X + 2 I)^-1  (Steck 2019, eq. 8)
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(4))
    expected = np.eye(4) - p / np.diag(p)[None, :]
    assert np.allclose(b, expected, atol=1e-5)
    assert np.allclose(np.diag(b), 0.0)
    # and it is the constrained least-squares optimum: the gradient of the loss vanishes off the diagonal
    grad = -x.T @ (x - x @ b) + 2.0 * b
    off = ~np.eye(4, dtype=bool)
    assert np.abs(grad[off]).max() < 1e-5
    scores = model.full_sort_predict(torch.tensor([4])).numpy()[0]
    assert np.allclose(scores, x[4] @ b, atol=1e-6)
    assert scores[1] > scores[3]  # item 0's co-occurring item 1 beats the unrelated item 3


def test_ease_rejects_non_positive_l2():
    with pytest.raises(UserError, match="l2"):
        build_model("ease", _tiny(np.eye(3)), {"l2": 0})


def test_cold_items_left_out_of_the_softmax_partition():
    # cold_negatives=false: the partition runs over the items with training interactions only
    ds, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=10)
    data = ds.train_data()
    warm = torch.from_numpy(data.item_popularity > 0)
    assert (~warm).sum() == 4
    model = build_model("mmgraph", data, {"align_weight": 0.0, "temperature": 0.3, "cold_negatives": False})
    model.eval()
    coo = data.train.tocoo()
    users, pos = torch.from_numpy(coo.row).long(), torch.from_numpy(coo.col).long()
    loss = model.calculate_loss({"user": users, "pos_item": pos})
    with torch.no_grad():
        u, i = model.propagate(model._full_adj)
    warm_ids = torch.nonzero(warm).squeeze(1)
    remap = torch.full((ds.n_items,), -1, dtype=torch.long)
    remap[warm_ids] = torch.arange(len(warm_ids))
    expected = torch.nn.functional.cross_entropy(u[users] / 0.3 @ i[warm_ids].T, remap[pos])
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    # the default keeps them as negatives: a different (larger) loss
    default = build_model("mmgraph", data, {"align_weight": 0.0, "temperature": 0.3})
    default.load_state_dict(model.state_dict())
    default.eval()
    assert default.calculate_loss({"user": users, "pos_item": pos}) > loss


def test_id_dropout_hides_item_ids_in_training_only():
    ds, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=10)
    model = build_model("mmgraph", ds.train_data(), {"id_dropout": 0.5, "use_content": False,
                                                     "modality_graph": False})
    torch.manual_seed(0)
    dropped = model.item_inputs(drop=True)
    hidden = (dropped == 0).all(dim=1) & (model._warm_items.squeeze(1) > 0)
    assert 0.25 < hidden.float().mean() < 0.75          # about half the warm items lose their ID
    kept = model.item_inputs(drop=False)
    assert not ((kept == 0).all(dim=1) & (model._warm_items.squeeze(1) > 0)).any()
