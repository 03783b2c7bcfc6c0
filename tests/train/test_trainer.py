"""Trainer: early stopping on valid with best-weight restore, checkpoint/resume, closed-form models."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from pydantic import Field
from torch import nn

from fusionrec.config import TrainConfig
from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.models.base import RecModel
from fusionrec.models.registry import build_model
from fusionrec.train import CHECKPOINT_NAME, Trainer
from tests.train.synthetic import clustered_dataset


def _tiny_data() -> TrainData:
    dense = np.zeros((4, 5), dtype=np.float32)
    dense[[0, 1, 2, 3], [0, 1, 2, 3]] = 1.0
    m = sp.csr_matrix(dense)
    coo = m.tocoo()
    return TrainData(4, 5, m, pd.DataFrame({"user": coo.row, "item": coo.col}))


class Climber(RecModel):
    """One scalar that every optimizer step pushes up by ~lr (Adam): a predictable trajectory."""

    name = "climber"
    batch_kind = "pairwise"

    def __init__(self, data, params=None):
        super().__init__(data, params)
        self.w = nn.Parameter(torch.zeros(()))
        self.pre_epoch_calls = 0

    def pre_epoch(self):
        self.pre_epoch_calls += 1

    def calculate_loss(self, batch):
        return -self.w  # gradient -1: Adam moves w by +lr per step

    def full_sort_predict(self, users):
        return self.w.expand(len(users), self.n_items)


class PeakEvaluator:
    """Valid metric = -|w - peak|: rises while w climbs towards ``peak``, then drops."""

    def __init__(self, peak: float):
        self.peak = peak
        self.calls: list[tuple[str, float]] = []

    def evaluate(self, model, split="valid"):
        w = float(model.w.detach())
        self.calls.append((split, w))
        return {"recall@20": -abs(w - self.peak), "ndcg@20": 0.0}


def _cfg(**kw) -> TrainConfig:
    base = {"epochs": 30, "batch_size": 1024, "lr": 1.0, "patience": 3, "progress": False, "num_threads": 1,
                "checkpoint": False, "seeds": [1]}
    base.update(kw)
    return TrainConfig(**base)


def test_early_stops_and_restores_the_best_weights():
    model = Climber(_tiny_data())
    ev = PeakEvaluator(peak=5.0)
    result = Trainer(model, _tiny_data(), _cfg(), ev).fit()
    # one step per epoch, w ~ epoch after epoch e, so the peak is at epoch 5
    assert result.best_epoch == 5
    assert result.stopped_early
    assert len(result.history) == 5 + 3  # three evaluations without improvement, then stop
    assert all(split == "valid" for split, _ in ev.calls), "the trainer must never look at test"
    best_w = ev.calls[4][1]
    assert float(model.w.detach()) == pytest.approx(best_w)
    assert float(model.w.detach()) != pytest.approx(ev.calls[-1][1])  # the last weights were discarded
    assert result.best_score == pytest.approx(-abs(best_w - 5.0))
    assert model.pre_epoch_calls == len(result.history)
    assert result.seconds_per_epoch > 0 and result.total_seconds >= result.seconds_per_epoch


def test_eval_every_and_patience_count_evaluations():
    model = Climber(_tiny_data())
    ev = PeakEvaluator(peak=10.0)
    result = Trainer(model, _tiny_data(), _cfg(eval_every=2, patience=2), ev).fit()
    assert [h["epoch"] for h in result.history if "valid" in h] == list(range(2, len(result.history) + 1, 2))
    assert result.best_epoch == 10
    assert len(result.history) == 14


def test_missing_valid_metric_is_a_user_error():
    class NoRecall(PeakEvaluator):
        def evaluate(self, model, split="valid"):
            return {"ndcg@10": 0.1}

    with pytest.raises(UserError, match="recall@20"):
        Trainer(Climber(_tiny_data()), _tiny_data(), _cfg(), NoRecall(1.0)).fit()


def test_checkpoint_resume_continues_from_saved_epoch(tmp_path):
    ds = clustered_dataset(n_users=80, n_items=50, per_user=10, seed=4)
    data = ds.train_data()
    params = {"embedding_size": 8, "reg_weight": 1e-3}

    def fresh():
        torch.manual_seed(0)
        return build_model("bpr", data, params)

    cfg_full = _cfg(epochs=6, lr=0.01, batch_size=128)
    full = fresh()
    Trainer(full, data, cfg_full, None, seed=3).fit()

    first = fresh()
    Trainer(first, data, _cfg(epochs=3, lr=0.01, batch_size=128, checkpoint=True), None,
            out_dir=tmp_path, seed=3).fit()
    assert (tmp_path / CHECKPOINT_NAME).is_file()
    payload = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert payload["epoch"] == 3

    resumed = fresh()  # different object, same init: weights must come from the checkpoint
    with torch.no_grad():
        resumed.user_embedding.weight.add_(1.0)
    result = Trainer(resumed, data, _cfg(epochs=6, lr=0.01, batch_size=128, checkpoint=True, resume=True), None,
                     out_dir=tmp_path, seed=3).fit()
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5, 6]
    # sampling depends on (seed, epoch) and Adam state is restored: identical to an uninterrupted run
    for name, tensor in full.state_dict().items():
        assert torch.allclose(tensor, resumed.state_dict()[name], atol=1e-6), name


def test_resume_without_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        Trainer(Climber(_tiny_data()), _tiny_data(), _cfg(resume=True), None, out_dir=tmp_path).fit()


def test_closed_form_model_is_fit_once_and_validated():
    ds = clustered_dataset(n_users=50, n_items=30, per_user=8, seed=1)
    data = ds.train_data()
    model = build_model("pop", data, {})

    class Spy:
        def __init__(self):
            self.calls = []

        def evaluate(self, m, split="valid"):
            self.calls.append(split)
            return {"recall@20": float(m.item_scores.sum())}

    spy = Spy()
    result = Trainer(model, data, _cfg(), spy).fit()
    assert spy.calls == ["valid"]
    assert result.best_epoch == 0 and not result.stopped_early
    assert result.best_score == pytest.approx(float(data.train.sum()))


def test_diverging_loss_stops_and_keeps_best_weights():
    class Exploder(Climber):
        def calculate_loss(self, batch):
            return -self.w if float(self.w.detach()) < 3.5 else self.w * float("nan")

    model = Exploder(_tiny_data())
    result = Trainer(model, _tiny_data(), _cfg(), PeakEvaluator(peak=100.0)).fit()
    assert result.stopped_early
    assert result.history[-1].get("diverged")
    assert np.isfinite(float(model.w.detach()))


class LogisticMF(RecModel):
    """Pointwise MF (sigmoid + BCE) to exercise the pointwise sampler through the trainer."""

    name = "logistic_mf"
    batch_kind = "pointwise"

    class Params(RecModel.Params):
        num_negatives: int = Field(4, ge=0, description="sampled negatives per positive (read by the trainer)")

    def __init__(self, data, params=None):
        super().__init__(data, params)
        self.u = nn.Embedding(self.n_users, 16)
        self.i = nn.Embedding(self.n_items, 16)
        nn.init.normal_(self.u.weight, std=0.1)
        nn.init.normal_(self.i.weight, std=0.1)
        self.seen_labels: set[float] = set()

    def calculate_loss(self, batch):
        self.seen_labels.update(batch["label"].unique().tolist())
        logits = (self.u(batch["user"]) * self.i(batch["item"])).sum(-1)
        return nn.functional.binary_cross_entropy_with_logits(logits, batch["label"])

    def full_sort_predict(self, users):
        return self.u(users) @ self.i.weight.T


def test_pointwise_model_trains_with_sampled_negatives():
    from fusionrec.evaluate import Evaluator

    ds = clustered_dataset(n_users=150, n_items=80, per_user=12, seed=7)
    data = ds.train_data()
    torch.manual_seed(0)
    model = LogisticMF(data, {"num_negatives": 2})
    ev = Evaluator(ds, ks=(20,), metrics=("recall",))
    untrained = ev.evaluate(model, "valid")["recall@20"]
    result = Trainer(model, data, _cfg(epochs=15, lr=0.02, batch_size=256, patience=5), ev).fit()
    assert model.seen_labels == {0.0, 1.0}
    assert result.best_score > untrained + 0.2
