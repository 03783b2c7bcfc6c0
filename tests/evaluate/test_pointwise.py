"""AUC / log loss of pointwise models: the split's explicit negatives, or sampled ones when it has none."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.evaluate.evaluator import validation_metric_keys
from fusionrec.evaluate.pointwise import supports_pointwise
from tests.train.shown import shown_world


class TableModel:
    """Pair probabilities read from a fixed users x items table (and full-ranking scores from it)."""

    name = "table"

    def __init__(self, probs: np.ndarray) -> None:
        self.probs = torch.as_tensor(probs, dtype=torch.float32)

    def predict_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.probs[users, items]

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        return self.probs[users].clone()


def _tiny() -> Dataset:
    # valid and test alike: user 0 clicked item 2, skipped 3; user 1 clicked 0, skipped 1 and 3
    held_out = [(0, 2, 1), (0, 3, 0), (1, 0, 1), (1, 1, 0), (1, 3, 0)]
    rows = [(0, 0, 1, "train"), (0, 1, 1, "train"), (1, 2, 1, "train")]
    rows += [(*r, "valid") for r in held_out] + [(*r, "test") for r in held_out]
    frame = pd.DataFrame(rows, columns=["user", "item", "label", "split"])
    return Dataset("tiny", [0, 1], range(4), frame)


def test_auc_and_logloss_on_explicit_negatives_match_hand_computation():
    ds = _tiny()
    probs = np.array([[0.1, 0.1, 0.8, 0.3], [0.6, 0.7, 0.1, 0.2]])
    ev = Evaluator(ds, ks=(2,))
    rows = ev.pointwise_rows("valid")
    assert rows.source == "explicit" and (rows.n_positive, rows.n_negative) == (2, 3)
    assert rows.describe() == "2 positives vs 3 explicit negatives"
    result = ev.evaluate(TableModel(probs), "valid")
    # positives 0.8 (u0,i2), 0.6 (u1,i0); negatives 0.3, 0.7, 0.2 -> pairs won: 3 + 2 = 5 of 6
    assert result["auc"] == pytest.approx(5 / 6)
    expected = -np.mean(np.log([0.8, 0.6, 0.7, 0.3, 0.8]))
    assert result["logloss"] == pytest.approx(expected, rel=1e-6)


def test_sampled_negatives_when_the_split_has_none():
    ds = shown_world(n_users=30, n_items=40, negatives_in=("train",))
    ev = Evaluator(ds, ks=(10,), pointwise_negatives=2)
    rows = ev.pointwise_rows("valid")
    assert rows.source == "sampled" and "sampled negatives" in rows.describe()
    assert rows.n_positive == 30 and rows.n_negative == 60
    seen = set(zip(ds.interactions["user"].tolist(), ds.interactions["item"].tolist()))
    neg = rows.labels == 0
    assert not set(zip(rows.users[neg].tolist(), rows.items[neg].tolist())) & seen
    # the same rows for every evaluator (and so every validation epoch)
    again = Evaluator(ds, ks=(10,), pointwise_negatives=2).pointwise_rows("valid")
    np.testing.assert_array_equal(rows.items, again.items)


def test_pointwise_metrics_only_for_models_with_probabilities():
    ds = _tiny()
    ev = Evaluator(ds, ks=(2,))

    class Ranker:
        def full_sort_predict(self, users):
            return torch.zeros(len(users), 4)

    assert "auc" not in ev.evaluate(Ranker(), "valid")
    assert not supports_pointwise(Ranker) and supports_pointwise(TableModel)
    with pytest.raises(UserError, match="AUC"):
        ev.evaluate_pointwise(Ranker(), "valid")
    assert ev.metric_keys(Ranker()) == ["recall@2", "ndcg@2", "precision@2", "map@2", "mrr@2", "hit@2"]
    assert ev.metric_keys(TableModel(np.zeros((2, 4))))[-2:] == ["auc", "logloss"]
    assert validation_metric_keys([20, 10], ["ndcg"], True) == ["ndcg@10", "ndcg@20", "auc", "logloss"]


def test_one_class_split_gives_nan_not_an_error():
    ds = shown_world(n_users=10, n_items=40)
    only_pos = ds.subset_interactions(~((ds.interactions["split"] == "test") & (ds.interactions["label"] == 0)))
    ev = Evaluator(only_pos, ks=(5,), pointwise_negatives=0)
    result = ev.evaluate_pointwise(TableModel(np.full((10, 40), 0.5)), "test")
    assert np.isnan(result["auc"]) and np.isnan(result["logloss"])
