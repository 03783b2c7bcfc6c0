"""Warm/cold slice metrics on a tiny hand-made dataset with fixed scores.

Dataset (3 users, 6 items; items 4 and 5 have no training interaction, so they are cold)::

    user  train   valid  test
    u0    {0,1}   {}     {2,4}    <- one warm and one cold test item
    u1    {2}     {3}    {5}      <- only a cold test item: left out of the warm slice
    u2    {3}     {}     {0}      <- only a warm test item: left out of the cold slice

Fixed scores, one row per user (higher is better)::

    u0: [6,5,4,3,2,1]  -> after masking train {0,1}:        ranking 2, 3, 4, 5
    u1: [1,2,3,4,5,6]  -> after masking train {2}, valid {3}: ranking 5, 4, 1, 0
    u2: [3,6,1,2,5,4]  -> after masking train {3}:           ranking 1, 4, 5, 0, 2

Hand-computed, ks = (1, 3):

* warm (u0, u2): u0 finds item 2 at rank 1 (recall@1 = recall@3 = 1, ndcg@3 = 1);
  u2's item 0 is at rank 4 (all 0). Means: recall@1 0.5, recall@3 0.5, ndcg@3 0.5.
* cold (u0, u1): u0's item 4 is at rank 3 of the whole catalogue, although it is the
  best-ranked cold item (recall@1 0, recall@3 1, ndcg@3 = 1/log2(4) = 0.5); u1's item 5
  is at rank 1 (all 1). Means: recall@1 0.5, recall@3 1.0, ndcg@3 0.75.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.evaluate.slices import cold_item_mask, slice_key, slice_metrics

ROWS = [
    (0, 0, "train"), (0, 1, "train"), (0, 2, "test"), (0, 4, "test"),
    (1, 2, "train"), (1, 3, "valid"), (1, 5, "test"),
    (2, 3, "train"), (2, 0, "test"),
]
SCORES = np.array([
    [6, 5, 4, 3, 2, 1],
    [1, 2, 3, 4, 5, 6],
    [3, 6, 1, 2, 5, 4],
], dtype=np.float32)


def _evaluator(rows=ROWS) -> Evaluator:
    frame = pd.DataFrame([(u, i, s, 1.0) for u, i, s in rows], columns=["user", "item", "split", "label"])
    ds = Dataset("tiny", [f"u{i}" for i in range(3)], [f"i{j}" for j in range(6)], frame)
    return Evaluator(ds, ks=(1, 3), metrics=("recall", "ndcg"), protocol="full")


def _scores(users: np.ndarray) -> np.ndarray:
    return SCORES[users]


def test_cold_items_are_those_without_training_positives() -> None:
    assert cold_item_mask(_evaluator()).tolist() == [False, False, False, False, True, True]


def test_slice_metrics_match_hand_computed_values() -> None:
    out = slice_metrics(_evaluator(), _scores, split="test")
    expected = {
        "warm:recall@1": 0.5, "warm:recall@3": 0.5, "warm:ndcg@1": 0.5, "warm:ndcg@3": 0.5,
        "cold:recall@1": 0.5, "cold:recall@3": 1.0, "cold:ndcg@1": 0.5, "cold:ndcg@3": 0.75,
        "warm:n_users": 2.0, "cold:n_users": 2.0, "warm:n_items": 4.0, "cold:n_items": 2.0,
    }
    assert out.keys() == expected.keys()
    for key, value in expected.items():
        assert out[key] == pytest.approx(value), key


def test_a_cold_item_counts_only_on_the_cold_slice() -> None:
    # u0 gets a second cold item (5) ranked last: its cold truth is {4, 5}, warm truth still {2}
    ev = _evaluator(ROWS + [(0, 5, "test")])
    out = slice_metrics(ev, _scores, split="test")
    # u0 cold: item 4 at rank 3 -> recall@3 = 1/2; ndcg@3 = 0.5 / (1 + 1/log2(3)); u1 unchanged (1, 1)
    assert out["cold:recall@3"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["cold:ndcg@3"] == pytest.approx((0.5 / (1 + 1 / math.log2(3)) + 1.0) / 2)
    assert out["warm:recall@3"] == pytest.approx(0.5)


def test_warm_slice_with_no_cold_items_equals_the_plain_evaluation() -> None:
    ev = _evaluator()
    out = slice_metrics(ev, _scores, split="test", cold=np.zeros(6, dtype=bool))
    plain = ev.evaluate_scores(_scores, split="test")
    for key in ("recall@1", "recall@3", "ndcg@1", "ndcg@3"):
        assert out[slice_key("warm", key)] == pytest.approx(plain[key])
        assert math.isnan(out[slice_key("cold", key)])
    assert out["warm:n_users"] == plain["n_users"] == 3.0 and out["cold:n_users"] == 0.0


def test_valid_split_uses_its_own_truth() -> None:
    # valid: only u1 -> item 3 (warm); mask = train only, so u1 ranks 5, 4, 3 -> rank 3
    out = slice_metrics(_evaluator(), _scores, split="valid")
    assert out["warm:recall@1"] == 0.0 and out["warm:recall@3"] == 1.0
    assert out["warm:n_users"] == 1.0 and out["cold:n_users"] == 0.0


def test_wrong_cold_mask_shape_is_a_user_error() -> None:
    with pytest.raises(UserError) as err:
        slice_metrics(_evaluator(), _scores, cold=np.zeros(5, dtype=bool))
    assert "6 items" in str(err.value)
