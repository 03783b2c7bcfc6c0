"""Negative feedback (label 0, ratings under data.positive_rating) is never a training positive;
pointwise models (dcn) train on it as negatives and report AUC / log loss; a wrong valid_metric
fails before the first epoch."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.config import TrainConfig
from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.models.registry import build_model
from fusionrec.train import PointwiseSampler, Trainer, seed_everything
from tests.train.shown import shown_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DCN = {"embedding_size": 8, "cross_layers": 1, "mlp_layers": [16], "num_negatives": 1}


def _pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user"].tolist(), frame["item"].tolist()))


def test_label_zero_rows_are_never_training_positives():
    ds = shown_world()
    data = ds.train_data()
    train = ds.split_frame("train")
    skipped = _pairs(train[train["label"] == 0])
    clicked = _pairs(train[train["label"] == 1])
    assert skipped and not skipped & clicked
    rows, cols = data.train.nonzero()
    assert set(zip(rows.tolist(), cols.tolist())) == clicked
    # train_frame keeps every training row, negatives with label 0
    assert len(data.train_frame) == len(train)
    assert _pairs(data.train_frame[data.train_frame["label"] == 0]) == skipped
    assert set(data.train_frame["label"].unique()) == {0.0, 1.0}


def test_ratings_under_the_threshold_are_negatives_for_training_masks_and_truth():
    # user 0 rated items 0-5 in train (ratings 1..5, 5) and items 6, 7 in valid (2 and 5)
    frame = pd.DataFrame({
        "user": [0] * 8 + [1] * 4, "item": [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3],
        "rating": [1, 2, 3, 4, 5, 5, 2, 5, 5, 4, 1, 5],
        "split": ["train"] * 6 + ["valid", "valid"] + ["train", "train", "train", "valid"],
    })
    ds = Dataset("rated", [0, 1], range(8), frame)
    data = ds.train_data(positive_rating=4)
    assert sorted(data.train[0].indices.tolist()) == [3, 4, 5]
    assert sorted(data.train[1].indices.tolist()) == [0, 1]
    assert data.train_frame.loc[data.train_frame["rating"] < 4, "label"].eq(0).all()
    assert ds.train_data().train[0].nnz == 6  # without a threshold every rating is a positive

    rated = ds.with_positive_rating(4)
    assert ds.with_positive_rating(None) is ds
    truth = Evaluator(rated, ks=(5,)).split_truth("valid")
    # only item 7 (rated 5) is a valid positive of user 0; low-rated train items stay rankable
    row = int(np.flatnonzero(truth.users == 0)[0])
    assert truth.truth[row].indices.tolist() == [7]
    assert sorted(truth.mask[row].indices.tolist()) == [3, 4, 5]


def test_pointwise_sampler_takes_explicit_negatives_from_train_frame():
    ds = shown_world(n_users=20, n_items=40)
    data = ds.train_data()
    # one skip of a clicked pair (shown once, clicked another time) must not become a negative
    u, i = map(int, data.train_frame.loc[data.train_frame["label"] == 1, ["user", "item"]].iloc[0])
    data.train_frame = pd.concat([data.train_frame, pd.DataFrame(
        {"user": [u], "item": [i], "label": [0.0], "split": ["train"]})], ignore_index=True)
    sampler = PointwiseSampler(data, batch_size=64, num_negatives=2)
    batches = list(sampler.epoch(np.random.default_rng(0)))
    users = torch.cat([b["user"] for b in batches]).numpy()
    items = torch.cat([b["item"] for b in batches]).numpy()
    labels = torch.cat([b["label"] for b in batches]).numpy()
    skipped = data.train_frame[(data.train_frame["label"] == 0)]
    n_skips = len(skipped) - 1
    assert (labels == 1).sum() == data.train.nnz
    assert (labels == 0).sum() == n_skips + 2 * data.train.nnz
    assert len(sampler) == int(np.ceil((3 * data.train.nnz + n_skips) / 64))
    negatives = set(zip(users[labels == 0].tolist(), items[labels == 0].tolist()))
    assert _pairs(skipped) - {(u, i)} <= negatives
    assert (u, i) not in negatives
    dense = data.train.toarray() > 0
    assert not dense[users[labels == 0], items[labels == 0]].any()


def test_dcn_learns_from_skips_and_early_stops_on_auc():
    ds = shown_world()
    data = ds.train_data()
    seed_everything(0)
    model = build_model("dcn", data, DCN)
    ev = Evaluator(ds, ks=(10,))
    cfg = TrainConfig(epochs=12, lr=0.02, batch_size=128, patience=4, valid_metric="auc", checkpoint=False,
                      progress=False, num_threads=1)
    result = Trainer(model, data, cfg, ev, seed=0).fit()
    assert ev.pointwise_rows("valid").source == "explicit"
    assert ev.pointwise_rows("valid").n_negative == ds.n_users  # one skip per user in valid
    assert {"auc", "logloss", "recall@10"} <= set(result.best_valid)
    aucs = [h["valid"]["auc"] for h in result.history if "valid" in h]
    assert result.best_score == pytest.approx(max(aucs))
    assert result.best_valid["auc"] == pytest.approx(max(aucs))
    # skipped items come from other taste clusters: a model that learned from them ranks clicks first
    assert result.best_valid["auc"] > 0.8, result.best_valid
    test = ev.evaluate(model, "test")
    assert test["auc"] > 0.8 and 0 < test["logloss"] < 0.69


@pytest.mark.parametrize("metric,model,message", [
    ("recall@30", "bpr", "eval.ks"),          # K not evaluated: the fix adds it
    ("auc", "bpr", "dcn"),                    # bpr predicts no probabilities
    ("recal@20", "bpr", "closest: recall@20"),
    ("logloss", "ease", "dcn"),
    ("foo", "bpr", "choose one of ['recall@10', 'recall@20', 'ndcg@10'"),
])
def test_wrong_valid_metric_fails_before_the_first_epoch(metric, model, message, monkeypatch):
    ds = shown_world(n_users=20, n_items=40)
    data = ds.train_data()
    built = build_model(model, data, {"embedding_size": 8} if model == "bpr" else None)
    epochs: list[int] = []
    monkeypatch.setattr(Trainer, "_train_epoch", lambda self, *a: epochs.append(1) or 0.0)
    monkeypatch.setattr(type(built), "fit", lambda self, d: epochs.append(1))
    cfg = TrainConfig(epochs=3, valid_metric=metric, checkpoint=False, progress=False)
    with pytest.raises(UserError, match="valid_metric") as err:
        Trainer(built, data, cfg, Evaluator(ds, ks=(10, 20))).fit()
    assert message in err.value.message
    assert epochs == []


def test_logloss_as_valid_metric_keeps_the_lowest():
    ds = shown_world(n_users=40)
    data = ds.train_data()
    seed_everything(0)
    model = build_model("dcn", data, DCN)
    cfg = TrainConfig(epochs=6, lr=0.02, batch_size=128, patience=10, valid_metric="logloss", checkpoint=False,
                      progress=False, num_threads=1)
    result = Trainer(model, data, cfg, Evaluator(ds, ks=(10,)), seed=0).fit()
    losses = [h["valid"]["logloss"] for h in result.history]
    assert result.best_score == pytest.approx(min(losses))
    assert result.best_epoch == int(np.argmin(losses)) + 1
