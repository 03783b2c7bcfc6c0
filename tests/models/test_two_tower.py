"""Two-tower, VBPR-style and content-kNN models on synthetic data with a known content signal.

Synthetic world: items belong to one of K types; each item's "text" feature
reveals its type (plus noise), its "image" feature is pure noise; each user
likes one type. A fifth of the items never appear in training (cold):
they can only be ranked from content.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.config import TrainConfig
from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer, seed_everything
from tests.models.worlds import typed_world

N_USERS, N_ITEMS, K = 240, 300, 15


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_world(seed: int = 0, image_missing: float = 0.2) -> Dataset:
    return typed_world(seed, N_USERS, N_ITEMS, K, text_dim=24, image_dim=16, image_missing=image_missing)


def train(model, ds: Dataset, epochs: int = 15, lr: float = 0.01, batch_size: int = 256):
    cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, patience=50, checkpoint=False, progress=False)
    Trainer(model, ds.train_data(), cfg, evaluator=None, seed=0).fit()
    model.eval()
    return model


def cold_recall(model, ds: Dataset) -> float:
    ev = Evaluator(ds, ks=(10,), protocol="full", candidates="test_items")
    return ev.evaluate(model, "test")["recall@10"]


@pytest.fixture(scope="module")
def world() -> Dataset:
    return make_world()


def test_cold_items_are_embedded_from_content_alone(world):
    seed_everything(0)
    model = build_model("two_tower", world.train_data(), {"fusion": "attention", "align": "infonce",
                                                          "align_weight": 0.1})
    model.eval()
    items = model.item_embeddings()
    content = model.content_embeddings()
    cold = torch.from_numpy(world.cold)
    assert torch.allclose(items[cold], content[cold], atol=1e-6), "cold items must not use an untrained ID"
    assert not torch.allclose(items[~cold], content[~cold], atol=1e-3)
    # scores are inner products of the exported embeddings (ANN serving)
    users = torch.arange(5)
    assert torch.allclose(model.user_embeddings()[users] @ items.T, model.full_sort_predict(users), atol=1e-5)


@pytest.mark.parametrize("fusion,align,history,loss", [
    ("attention", "infonce", "mean", "softmax"),
    ("concat", "cca", "attention", "softmax"),
    ("late", "none", "attention", "bpr"),
])
def test_two_tower_learns_content_and_ranks_cold_items(world, fusion, align, history, loss):
    seed_everything(0)
    model = build_model("two_tower", world.train_data(), {
        "fusion": fusion, "align": align, "history": history, "loss": loss, "id_dropout": 0.3,
        "align_weight": 0.1, "embedding_size": 32})
    chance = cold_recall(model, world)
    train(model, world, epochs=8, lr=0.01 if loss == "softmax" else 0.005)
    learned = cold_recall(model, world)
    # ~150 test-item candidates, the user's type has ~10 of them: chance recall@10 is ~0.07
    assert learned > 0.6, (chance, learned)
    assert learned > chance + 0.4, (chance, learned)


@pytest.mark.parametrize("history", ["attention", "transformer"])
def test_padded_history_encoders_ignore_padding_and_the_target(world, history):
    seed_everything(0)
    model = build_model("two_tower", world.train_data(), {"history": history, "embedding_size": 16}).eval()
    vecs = torch.randn(N_ITEMS, 16)
    users = torch.tensor([0, 1, 2])
    out = model._encode_history(users, vecs, exclude=None)
    # changing the vector of an item no user in the batch has must not change the encoding
    seen = set(model.hist[users].flatten().tolist()) - {-1}
    other = next(i for i in range(N_ITEMS) if i not in seen)
    vecs2 = vecs.clone()
    vecs2[other] += 100.0
    assert torch.allclose(out, model._encode_history(users, vecs2, exclude=None), atol=1e-5)
    # the excluded target has no influence either
    target = model.hist[0, 0].item()
    vecs3 = vecs.clone()
    vecs3[target] += 100.0
    ex = torch.tensor([target, -5, -5])
    a = model._encode_history(users[:1], vecs, exclude=ex[:1])
    b = model._encode_history(users[:1], vecs3, exclude=ex[:1])
    assert torch.allclose(a, b, atol=1e-5)
    loss = model.train().calculate_loss({"user": users, "pos_item": model.hist[users, 0],
                                         "neg_item": torch.tensor([1, 2, 3])})
    loss.backward()
    assert torch.isfinite(loss)


def test_history_encoder_excludes_the_training_target(world):
    model = build_model("two_tower", world.train_data(), {"history": "mean"})
    vecs = torch.randn(N_ITEMS, model.dim)
    users = torch.tensor([0, 1])
    train = world.train_data().train
    targets = torch.tensor([train[0].indices[0], train[1].indices[0]])
    out = model._encode_history(users, vecs, exclude=targets)
    for row, u in enumerate(users.tolist()):
        hist = [i for i in train[u].indices if i != targets[row]]
        assert torch.allclose(out[row], vecs[hist].mean(0), atol=1e-5)


def test_logq_is_log_training_popularity(world):
    model = build_model("two_tower", world.train_data(), {})
    pop = world.train_data().item_popularity
    warm = pop > 0
    assert np.allclose(model.log_q.numpy()[warm], np.log(pop[warm] / pop.sum()), atol=1e-5)


def test_bad_choices_are_user_errors(world):
    with pytest.raises(UserError, match="no user attributes"):
        build_model("two_tower", world.train_data(), {"user_attributes": True})
    with pytest.raises(UserError, match="history"):
        build_model("two_tower", world.train_data(), {"history": "lstm"})
    with pytest.raises(UserError, match="audio"):
        build_model("two_tower", world.train_data(), {"modalities": ["audio"]})


def test_vbpr_matches_the_mmrec_formula_and_learns(world):
    seed_everything(0)
    model = build_model("vbpr", world.train_data(), {"embedding_size": 16, "reg_weight": 1e-4})
    feats = np.hstack([world.modalities["text"].features, world.modalities["image"].features])
    with torch.no_grad():
        content = torch.from_numpy(feats) @ model.item_linear.weight.T + model.item_linear.bias
        expect = model.u_embedding[:3] @ torch.cat([model.i_embedding, content], 1).T
    assert torch.allclose(model.full_sort_predict(torch.arange(3)), expect, atol=1e-4)
    ev = Evaluator(world, ks=(10,), protocol="full")
    before = ev.evaluate(model, "test")["recall@10"]
    train(model, world, epochs=25, lr=0.01)
    after = ev.evaluate(model, "test")["recall@10"]
    assert after > before + 0.15, (before, after)


def test_content_knn_scores_are_mean_cosine_to_history(world):
    model = build_model("content_knn", world.train_data(), {"modalities": ["text"]})
    model.fit(world.train_data())
    x = world.modalities["text"].features.astype(np.float64)
    x = x - x.mean(0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    hist = world.train_data().train[3].indices
    expect = (x @ x[hist].T).mean(1)
    got = model.full_sort_predict(torch.tensor([3]))[0].numpy()
    assert np.allclose(got, expect, atol=1e-5)
    # cold items are ranked from content well above chance
    assert cold_recall(model, world) > 0.6


def test_content_knn_ignores_absent_modalities(world):
    model = build_model("content_knn", world.train_data(), {})
    both = model.full_sort_predict(torch.tensor([0]))[0]
    text_only = build_model("content_knn", world.train_data(), {"modalities": ["text"]}).full_sort_predict(
        torch.tensor([0]))[0]
    no_img = ~torch.from_numpy(world.modalities["image"].mask)
    # an item without an image is scored by its text alone, not dragged towards 0 by a fake image score
    assert torch.allclose(both[no_img], text_only[no_img], atol=1e-5)
    topk = model.__class__(world.train_data(), {"k": 2, "feature_norm": "center_l2"})
    assert torch.isfinite(topk.full_sort_predict(torch.tensor([0, 1]))).all()
