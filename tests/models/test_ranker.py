"""DCN-v2 ranker: exact side-split scoring, history without the target, masks, hard negatives, learning.

World: items have one of K types; the "text" feature reveals the type (plus
noise), the "image" feature is noise and absent for some items; every user likes
one type. A fifth of the items never occur in training (cold) -- only content
can rank them.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.config import TrainConfig
from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.evaluate.metrics import evaluate_pointwise
from fusionrec.models.ranker import DCNRanker
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer, seed_everything
from tests.models.worlds import typed_world

N_USERS, N_ITEMS, K = 120, 150, 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_world(seed: int = 0) -> Dataset:
    return typed_world(seed, N_USERS, N_ITEMS, K, text_dim=16, image_dim=8, image_missing=0.25)


@pytest.fixture(scope="module")
def world() -> Dataset:
    return make_world()


PARAMS = {"embedding_size": 8, "cross_layers": 2, "cross_rank": 4, "mlp_layers": [16, 8], "dropout": 0.0,
          "id_dropout": 0.2, "num_negatives": 4}


def reference_logits(model: DCNRanker, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """The textbook DCN-v2 forward on the concatenated x0 (no side split), pair by pair."""
    user_side, item_side = model._sides(users, training=False)
    x0 = torch.cat([user_side, item_side[items]], dim=1)
    x = x0
    for layer in model.cross:
        x = x0 * layer.linear(x) + x
    if model.structure == "parallel":
        return model.head(torch.cat([x, model.mlp(x0)], dim=1)).squeeze(-1)
    return model.head(model.mlp(x)).squeeze(-1)


@pytest.mark.parametrize("structure,rank", [("parallel", 4), ("parallel", None), ("stacked", 4)])
def test_side_split_scoring_equals_plain_forward(world, structure, rank):
    seed_everything(1)
    model = build_model("dcn", world.train_data(), {**PARAMS, "structure": structure, "cross_rank": rank,
                                                     "score_chunk": 50})
    model.eval()
    users = torch.tensor([0, 5, 17, 5])
    scores = model.full_sort_predict(users)
    assert scores.shape == (4, N_ITEMS)
    for row, u in enumerate(users):
        ref = reference_logits(model, u.repeat(N_ITEMS), torch.arange(N_ITEMS))
        torch.testing.assert_close(scores[row], ref, rtol=1e-4, atol=1e-5)
    # predict_pairs is the sigmoid of the same logits, for arbitrary aligned pairs
    pu, pi = torch.tensor([17, 0, 5]), torch.tensor([3, 149, 40])
    torch.testing.assert_close(model.predict_pairs(pu, pi), torch.sigmoid(scores[[2, 0, 1], [3, 149, 40]]),
                               rtol=1e-4, atol=1e-6)


def test_history_summary_leaves_out_the_target(world):
    model = build_model("dcn", world.train_data(), {**PARAMS, "modalities": ["text"]})
    model.eval()
    train = world.train_data().train
    u = int(np.argmax(np.diff(train.indptr)))
    hist = train.indices[train.indptr[u]:train.indptr[u + 1]]
    target = int(hist[0])
    with torch.no_grad():
        full, _ = model._sides(torch.tensor([u]), training=False)
        left, _ = model._sides(torch.tensor([u]), training=False, exclude=torch.tensor([target]))
        none, _ = model._sides(torch.tensor([u]), training=False, exclude=torch.tensor([-1]))
        ids = model.item_id.weight * model.warm[:, None]
        content = model.projector(model.inputs.all_features())["text"]
    e = model.emb
    rest = torch.from_numpy(hist[1:].astype(np.int64))
    # fields: [user id | mean history item id | mean history text]
    torch.testing.assert_close(left[0, e:2 * e], ids[rest].mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(left[0, 2 * e:3 * e], content[rest].mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(none, full)
    assert not torch.allclose(left, full)


def test_absent_modality_is_a_zero_field_with_a_zero_flag(world):
    model = build_model("dcn", world.train_data(), PARAMS)
    model.eval()
    with torch.no_grad():
        _, item_side = model._sides(torch.tensor([0]), training=False)
    e = model.emb
    missing = np.flatnonzero(~world.modalities["image"].mask)
    present = np.flatnonzero(world.modalities["image"].mask)
    # item fields: [id | text | image | flag text | flag image]
    image_block = item_side[:, 2 * e:3 * e]
    assert torch.all(image_block[missing] == 0)
    assert torch.all(item_side[missing, -1] == 0) and torch.all(item_side[present, -1] == 1)
    assert torch.all(item_side[:, -2] == 1)
    # cold items have no ID field (their embedding never trained)
    cold = np.flatnonzero(world.train_data().item_popularity == 0)
    assert torch.all(item_side[cold, :e] == 0)


def test_hard_negatives_come_from_candidates_and_never_hit_positives(world):
    seed_everything(0)
    data = world.train_data()
    model = build_model("dcn", data, {**PARAMS, "hard_negatives": 3})
    with pytest.raises(UserError, match="one row of item ids per user"):
        model.set_candidates(np.zeros((3, 5), dtype=np.int64))
    # candidates = each user's own training positives: every hard negative must be rejected
    train = data.train
    own = np.stack([train.indices[train.indptr[u]:train.indptr[u] + 1].repeat(4) if train.indptr[u + 1] > train.indptr[u]
                    else np.zeros(4, dtype=np.int64) for u in range(N_USERS)])
    has = np.diff(train.indptr) > 0
    batch = {"user": torch.from_numpy(np.flatnonzero(has)[:32]), "item": torch.from_numpy(own[has][:32, 0]),
             "label": torch.ones(32)}
    model.eval()
    base = model.calculate_loss(batch)
    model.set_candidates(own)
    assert torch.allclose(model.calculate_loss(batch), base)   # all hard negatives rejected: weight 0
    # candidates that are never positives add real negatives: the loss changes
    never = np.setdiff1d(np.arange(N_ITEMS), np.unique(train.indices))[:4]
    model.set_candidates(np.tile(never, (N_USERS, 1)))
    assert not torch.allclose(model.calculate_loss(batch), base)


def test_bad_structure_is_a_user_error(world):
    with pytest.raises(UserError, match="structure"):
        build_model("dcn", world.train_data(), {**PARAMS, "structure": "tower"})


def test_dcn_learns_and_ranks_cold_items_from_content(world):
    seed_everything(0)
    data = world.train_data()
    model = build_model("dcn", data, PARAMS)
    cfg = TrainConfig(epochs=12, lr=0.01, batch_size=256, patience=50, checkpoint=False, progress=False)
    Trainer(model, data, cfg, evaluator=None, seed=0).fit()
    model.eval()
    # AUC / log loss on held-out test positives vs an equal number of random non-positives
    test = world.split_frame("test")
    rng = np.random.default_rng(1)
    seen = set(zip(world.interactions["user"], world.interactions["item"]))
    neg_u, neg_i = [], []
    while len(neg_u) < len(test):
        u, i = int(rng.integers(N_USERS)), int(rng.integers(N_ITEMS))
        if (u, i) not in seen:
            neg_u.append(u)
            neg_i.append(i)
    users = np.concatenate([test["user"].to_numpy(), neg_u])
    items = np.concatenate([test["item"].to_numpy(), neg_i])
    labels = np.concatenate([np.ones(len(test)), np.zeros(len(neg_u))])
    probs = model.predict_pairs(torch.from_numpy(users), torch.from_numpy(items)).numpy()
    point = evaluate_pointwise(labels, probs)
    assert point["auc"] > 0.85, point
    assert point["logloss"] < 0.6, point
    # cold-start protocol: the cold test items are ranked from content alone
    cold_eval = Evaluator(world, ks=(10,), candidates="test_items").evaluate(model, "test")
    random_recall = 10 / max(len(np.unique(test["item"])), 1)
    assert cold_eval["recall@10"] > 3 * random_recall, cold_eval
