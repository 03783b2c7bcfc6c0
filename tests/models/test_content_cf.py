"""content_cf: content-only item tower (cold = warm by construction), exact multinomial loss, learning."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fusionrec.config import TrainConfig
from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer, seed_everything
from tests.models.test_ranker import make_world

PARAMS = {"embedding_size": 16, "projection": "linear", "feature_dropout": 0.0, "modality_dropout": 0.0}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world() -> Dataset:
    return make_world(5)


@pytest.mark.parametrize("user_history", ["none", "mean"])
def test_items_with_equal_content_score_equally_warm_or_cold(world, user_history):
    pop = world.train_data().item_popularity
    warm, cold = int(np.flatnonzero(pop > 0)[0]), int(np.flatnonzero(pop == 0)[0])
    mods = {}
    for name, m in world.modalities.items():
        feats, mask = m.features.copy(), m.mask.copy()
        feats[cold], mask[cold] = feats[warm], mask[warm]          # the cold item is a copy of a warm one
        mods[name] = FeatureModality(name, m.kind, feats, mask)
    twin = Dataset(world.name, world.user_ids, world.item_ids, world.interactions, modalities=mods)
    seed_everything(0)
    model = build_model("content_cf", twin.train_data(), {**PARAMS, "user_history": user_history})
    model.eval()
    scores = model.full_sort_predict(torch.arange(20))
    torch.testing.assert_close(scores[:, cold], scores[:, warm])
    # serving vectors reproduce the scores (content bias rides as an extra dimension)
    torch.testing.assert_close(model.user_embeddings()[:20] @ model.item_embeddings().T, scores,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("user_history", ["none", "mean"])
def test_loss_is_the_multinomial_likelihood_over_warm_items(world, user_history):
    seed_everything(0)
    data = world.train_data()
    model = build_model("content_cf", data, {**PARAMS, "user_history": user_history})
    model.eval()
    users = torch.tensor([0, 3, 7])
    loss = model.calculate_loss({"user": users})
    scores = model.full_sort_predict(users)
    warm = torch.from_numpy(np.flatnonzero(data.item_popularity > 0))
    logp = F.log_softmax(scores[:, warm], dim=1)
    train = data.train.toarray()
    expected = torch.stack([-logp[r, torch.from_numpy(train[int(u), warm.numpy()] > 0)].mean()
                            for r, u in enumerate(users)]).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    # cold items are not in the softmax: changing their content leaves the loss unchanged
    cold = np.flatnonzero(data.item_popularity == 0)
    feats = model.inputs.features("text")
    feats[torch.from_numpy(cold)] += 5.0
    torch.testing.assert_close(model.calculate_loss({"user": users}), loss)


def test_history_tower_adds_the_mean_content_of_the_users_training_items(world):
    seed_everything(0)
    data = world.train_data()
    model = build_model("content_cf", data, {**PARAMS, "user_history": "mean"})
    model.eval()
    with torch.no_grad():
        model.user.weight.zero_()                     # no ID signal left: scores come from the history alone
    vecs, bias, _ = model.item_vectors(None)
    train = data.train.toarray() > 0
    users = torch.tensor([1, 4])
    expected = torch.stack([vecs[torch.from_numpy(train[int(u)])].mean(0) for u in users]) @ vecs.T + bias
    torch.testing.assert_close(model.full_sort_predict(users), expected, rtol=1e-5, atol=1e-5)
    # training hides part of the history (Mult-DAE style), so the training loss is stochastic
    model.train()
    with torch.no_grad():
        losses = {round(float(model.calculate_loss({"user": users})), 6) for _ in range(5)}
    assert len(losses) > 1


def test_content_cf_learns_cold_items_and_uses_the_informative_modality(world):
    ev = Evaluator(world, ks=(10,), candidates="test_items")
    recall = {}
    for mods in (["text"], ["image"]):
        seed_everything(0)
        data = world.train_data(mods)
        model = build_model("content_cf", data, PARAMS)
        cfg = TrainConfig(epochs=15, lr=0.02, batch_size=64, checkpoint=False, progress=False)
        Trainer(model, data, cfg, evaluator=None, seed=0).fit()
        recall[mods[0]] = ev.evaluate(model, "test")["recall@10"]
    n_test_items = len(np.unique(world.split_frame("test")["item"]))
    assert recall["text"] > 3 * 10 / n_test_items, recall      # text reveals the item type
    assert recall["text"] > recall["image"] + 0.2, recall       # image is noise in this world


def test_bad_fusion_is_a_user_error(world):
    with pytest.raises(UserError, match="fusion"):
        build_model("content_cf", world.train_data(), {**PARAMS, "fusion": "user_attention"})


@pytest.mark.parametrize("bad", [{"user_history": "attention"}, {"user_history": "mean", "history_dropout": 1.0}])
def test_bad_history_settings_are_user_errors(world, bad):
    with pytest.raises(UserError, match="history"):
        build_model("content_cf", world.train_data(), {**PARAMS, **bad})
