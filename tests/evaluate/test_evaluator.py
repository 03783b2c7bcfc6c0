"""End-to-end checks of the Evaluator on a tiny hand-made dataset with fixed scores.

Dataset (4 users, 6 items)::

    user  train   valid  test
    u0    {0,1}   {2}    {3,4}
    u1    {2}     {3}    {}       <- no test positive: skipped on test
    u2    {5}     {}     {0}      <- no valid positive: skipped on valid
    u3    {1}     {4}    {4,2}    <- item 4 in valid AND test

Fixed scores (higher is better), one row per user::

    u0: [6,5,4,3,2,1]   u1: [1,2,3,4,5,6]   u2: [3,6,1,2,5,4]   u3: [1,3,6,2,5,4]

Every expected number below is worked out by hand in the comments.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.data.dataset import Dataset, FeatureModality, TrainData
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.models.base import RecModel

ROWS = [
    (0, 0, "train"), (0, 1, "train"), (0, 2, "valid"), (0, 3, "test"), (0, 4, "test"),
    (1, 2, "train"), (1, 3, "valid"),
    (2, 5, "train"), (2, 0, "test"),
    (3, 1, "train"), (3, 4, "valid"), (3, 4, "test"), (3, 2, "test"),
]
SCORES = np.array([
    [6, 5, 4, 3, 2, 1],
    [1, 2, 3, 4, 5, 6],
    [3, 6, 1, 2, 5, 4],
    [1, 3, 6, 2, 5, 4],
], dtype=np.float32)
D2 = 1 / math.log2(3)   # discount at rank 2 = 0.6309298
D3 = 0.5                # discount at rank 3 = 1/log2(4)


def make_dataset(extra_rows: list[tuple[int, int, str, float]] | None = None) -> Dataset:
    rows = [(u, i, s, 1.0) for u, i, s in ROWS] + list(extra_rows or [])
    frame = pd.DataFrame(rows, columns=["user", "item", "split", "label"])
    return Dataset("tiny", [f"u{i}" for i in range(4)], [f"i{j}" for j in range(6)], frame)


def score_fn(users: np.ndarray) -> np.ndarray:
    return SCORES[users]


class FixedModel(RecModel):
    """A model whose full_sort_predict returns the fixed table (as a view of a buffer)."""

    name = "fixed"

    def __init__(self, data: TrainData) -> None:
        super().__init__(data, {})
        self.register_buffer("table", torch.from_numpy(SCORES.copy()))
        self.dropout = torch.nn.Dropout(0.5)
        self.seen_training_flags: list[bool] = []

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        self.seen_training_flags.append(self.training)
        if users.numel() == self.table.shape[0] and bool((users == torch.arange(len(users))).all()):
            return self.table                                  # the buffer itself
        if bool((users.diff() == 1).all()):
            return self.table[int(users[0]):int(users[-1]) + 1]  # a view into the buffer
        return self.table[users]                               # a fresh copy


@pytest.fixture()
def ds() -> Dataset:
    return make_dataset()


def test_full_protocol_test_split(ds: Dataset) -> None:
    ev = Evaluator(ds, ks=(1, 2, 3), protocol="full")
    got = ev.evaluate_scores(score_fn, "test")
    # u0: mask train {0,1} + valid {2} -> ranking 3,4,5 -> hits [1,1,0], m=2
    # u2: mask {5}                     -> ranking 1,4,0 -> hits [0,0,1], m=1
    # u3: mask {1} + valid {4}; truth {2} (4 is masked so it leaves the truth) -> 2,5,3 -> [1,0,0], m=1
    # u1 has no test positive -> not evaluated
    assert got["n_users"] == 3
    assert ev.eval_users("test").tolist() == [0, 2, 3]
    expected = {
        "recall@1": (1 / 2 + 0 + 1) / 3,
        "recall@2": (1 + 0 + 1) / 3,
        "recall@3": 1.0,
        "precision@1": 2 / 3,
        "precision@2": (1 + 0 + 0.5) / 3,
        "precision@3": (2 / 3 + 1 / 3 + 1 / 3) / 3,
        "hit@1": 2 / 3, "hit@2": 2 / 3, "hit@3": 1.0,
        "mrr@3": (1 + 1 / 3 + 1) / 3,
        # u0@2: DCG = IDCG = 1 + D2 -> 1; u2: 0; u3: 1
        "ndcg@2": 2 / 3,
        # u2@3: DCG = D3 = 0.5, IDCG = 1
        "ndcg@3": (1 + 0.5 + 1) / 3,
        # u0: (P@1 + P@2)/2 = 1; u2: P@3 / 1 = 1/3; u3: 1
        "map@3": (1 + 1 / 3 + 1) / 3,
    }
    for key, val in expected.items():
        assert got[key] == pytest.approx(val), key


def test_mmrec_protocol_masks_only_train(ds: Dataset) -> None:
    ev = Evaluator(ds, ks=(1, 2, 3), protocol="mmrec")
    got = ev.evaluate_scores(score_fn, "test")
    # u0: mask {0,1} only -> ranking 2,3,4 -> hits [0,1,1], m=2 (valid item 2 is ranked first)
    # u2: ranking 1,4,0 -> [0,0,1], m=1
    # u3: mask {1}; truth {4,2} -> ranking 2,4,5 -> [1,1,0], m=2
    assert got["n_users"] == 3
    assert got["recall@1"] == pytest.approx((0 + 0 + 1 / 2) / 3)
    assert got["recall@2"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert got["recall@3"] == pytest.approx(1.0)
    # u0@3: DCG = D2 + D3, IDCG = 1 + D2; u2: 0.5; u3: 1
    assert got["ndcg@3"] == pytest.approx(((D2 + D3) / (1 + D2) + 0.5 + 1) / 3)
    assert got["mrr@3"] == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)


def test_valid_split_same_under_both_protocols(ds: Dataset) -> None:
    # valid: users u0 {2}, u1 {3}, u3 {4}; mask = train only
    # u0: ranking 2,3,4 -> rank 1; u1: mask {2}: 5,4,3 -> rank 3; u3: mask {1}: 2,4,5 -> rank 2
    full = Evaluator(ds, ks=(1, 2, 3), protocol="full").evaluate_scores(score_fn, "valid")
    mmrec = Evaluator(ds, ks=(1, 2, 3), protocol="mmrec").evaluate_scores(score_fn, "valid")
    assert full == mmrec
    assert full["n_users"] == 3
    assert full["recall@1"] == pytest.approx(1 / 3)
    assert full["recall@2"] == pytest.approx(2 / 3)
    assert full["mrr@3"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)


def test_candidates_test_items(ds: Dataset) -> None:
    ev = Evaluator(ds, ks=(1, 2, 3), candidates="test_items")
    got = ev.evaluate_scores(score_fn, "test")
    # test items {0,2,3,4}; items 1 and 5 are never ranked
    # u0: mask {0,1,2} -> only 3,4 rankable -> [3,4,-] hits [1,1,0]
    # u2: mask {5} -> 4,0,3 -> [0,1,0]
    # u3: mask {1,4} -> 2,3,0 -> [1,0,0]
    assert got["recall@1"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert got["recall@2"] == pytest.approx(1.0)
    assert got["precision@3"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) / 3)  # still / K with an empty slot
    assert got["mrr@3"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert ev.topk(score_fn, [0, 2, 3], 3, "test").tolist() == [[3, 4, -1], [4, 0, 3], [2, 3, 0]]


def test_batching_gives_identical_numbers(ds: Dataset) -> None:
    feats = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    one = Evaluator(ds, ks=(1, 2, 5), batch_users=1, beyond_accuracy=True, item_features=feats)
    many = Evaluator(ds, ks=(1, 2, 5), batch_users=1000, beyond_accuracy=True, item_features=feats)
    for split in ("valid", "test"):
        a, b = one.evaluate_scores(score_fn, split), many.evaluate_scores(score_fn, split)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-12, nan_ok=True), (split, key)
        assert "diversity@1" not in a  # undefined for one-item lists


def test_beyond_accuracy_by_hand(ds: Dataset) -> None:
    # features: items 0,1 along x; 2,3 along y; 4 diagonal; 5 missing (mask False)
    feats = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [0, 0]], dtype=np.float32)
    modality = FeatureModality("toy", "other", feats, mask=np.array([1, 1, 1, 1, 1, 0], bool))
    ev = Evaluator(ds, ks=(1, 2, 3), beyond_accuracy=True, item_features=modality)
    got = ev.evaluate_scores(score_fn, "test")
    # lists (full protocol): u0 [3,4,5], u2 [1,4,0], u3 [2,5,3]
    assert got["coverage@1"] == pytest.approx(3 / 6)      # {3,1,2}
    assert got["coverage@2"] == pytest.approx(5 / 6)      # + {4,5}
    assert got["coverage@3"] == pytest.approx(1.0)        # + {0}
    # train popularity: item0 1, item1 2, item2 1, item3 0->1, item4 0->1, item5 1; total 5
    # self-info: item1 -log2(2/5) = 1.3219281, every other item -log2(1/5) = 2.3219281
    assert got["novelty@1"] == pytest.approx((2.3219281 + 1.3219281 + 2.3219281) / 3, abs=1e-6)
    assert got["novelty@3"] == pytest.approx((3 * 2.3219281 + (1.3219281 + 2 * 2.3219281) + 3 * 2.3219281) / 9,
                                             abs=1e-6)
    # diversity@2: u0 [3,4]: 1 - cos(y, diag) = 1 - 1/sqrt2; u2 [1,4] the same; u3 [2,5]: item 5 has
    # no features -> no pair -> left out
    s = 1 - 1 / math.sqrt(2)
    assert got["diversity@2"] == pytest.approx(s, abs=1e-6)
    # diversity@3: u0 [3,4,(5)] -> s; u2 [1,4,0]: pairs s, 0 (1 and 0 identical), s -> 2s/3;
    # u3 [2,(5),3]: 2 and 3 identical -> 0
    assert got["diversity@3"] == pytest.approx((s + 2 * s / 3 + 0) / 3, abs=1e-6)
    # the modality can also be named
    ds.add_modality(modality)
    named = Evaluator(ds, ks=(1, 2, 3), beyond_accuracy=True, item_features="toy").evaluate_scores(score_fn, "test")
    assert named["diversity@3"] == pytest.approx(got["diversity@3"])


def test_model_path_restores_mode_and_does_not_touch_buffers(ds: Dataset) -> None:
    model = FixedModel(ds.train_data())
    model.train()
    ev = Evaluator(ds, ks=(1, 2, 3), batch_users=1)
    got = ev.evaluate(model, "test")
    assert got == ev.evaluate_scores(score_fn, "test")
    assert model.seen_training_flags and not any(model.seen_training_flags)  # scored in eval mode
    assert model.training                                                     # and put back
    np.testing.assert_array_equal(model.table.numpy(), SCORES)                # masking wrote a copy
    # the whole buffer returned as is (all users in one batch) must not be written either
    ev_all = Evaluator(ds, ks=(1, 2, 3), batch_users=100)
    assert ev_all.topk(model, [0, 1, 2, 3], 2, "all").tolist() == [[5, -1], [5, 4], [1, 4], [5, 3]]
    np.testing.assert_array_equal(model.table.numpy(), SCORES)
    # a numpy scorer returning its own array is not written to either
    table = SCORES.copy()
    ev_all.topk(lambda u: table if len(u) == 4 else table[u], [0, 1, 2, 3], 2, "all")
    np.testing.assert_array_equal(table, SCORES)


def test_topk_masks_per_split(ds: Dataset) -> None:
    ev = Evaluator(ds, ks=(3,))
    assert ev.topk(score_fn, [0], 3, "valid").tolist() == [[2, 3, 4]]       # train masked
    assert ev.topk(score_fn, [0], 3, "test").tolist() == [[3, 4, 5]]        # + valid masked
    assert ev.topk(score_fn, [0], 3, "all").tolist() == [[5, -1, -1]]       # every known item masked
    ids, scores = ev.topk(score_fn, [1, 3], 2, "all", return_scores=True)
    assert ids.tolist() == [[5, 4], [5, 3]]
    assert scores.tolist() == [[6.0, 5.0], [4.0, 2.0]]
    mm = Evaluator(ds, ks=(3,), protocol="mmrec")
    assert mm.topk(score_fn, [0], 3, "test").tolist() == [[2, 3, 4]]
    with pytest.raises(UserError, match="out of range"):
        ev.topk(score_fn, [7], 3)


def test_negative_labels_are_not_positives() -> None:
    # u1 gets a test row with label 0 (an explicit negative): still no test positive
    ds = make_dataset([(1, 0, "test", 0.0)])
    ev = Evaluator(ds, ks=(1,))
    assert ev.eval_users("test").tolist() == [0, 2, 3]


def test_per_user_frame(ds: Dataset) -> None:
    frame = Evaluator(ds, ks=(1, 3)).evaluate_per_user(score_fn, "test")
    assert frame["user"].tolist() == [0, 2, 3]
    assert frame["n_pos"].tolist() == [2, 1, 1]
    assert frame["recall@1"].tolist() == pytest.approx([0.5, 0.0, 1.0])
    assert frame["mrr@3"].tolist() == pytest.approx([1.0, 1 / 3, 1.0])


def test_errors_are_clear(ds: Dataset) -> None:
    with pytest.raises(UserError, match="protocol"):
        Evaluator(ds, protocol="loo")
    with pytest.raises(UserError, match="candidate"):
        Evaluator(ds, candidates="cold")
    with pytest.raises(UserError, match="no train/valid/test split"):
        Evaluator(Dataset("nosplit", ["a"], ["x"], pd.DataFrame({"user": [0], "item": [0]})))
    ev = Evaluator(ds, ks=(1,))
    with pytest.raises(UserError, match="split"):
        ev.evaluate_scores(score_fn, "train")
    with pytest.raises(ValueError, match=r"expected \(3, 6\)"):
        ev.evaluate_scores(lambda u: SCORES[u][:, :5], "test")
    with pytest.raises(ValueError, match="NaN"):
        ev.evaluate_scores(lambda u: np.full((len(u), 6), np.nan, np.float32), "test")
    with pytest.raises(UserError, match="shape"):
        Evaluator(ds, item_features=np.zeros((5, 2)))
    with pytest.raises(UserError, match="modality"):
        Evaluator(ds, item_features="nope")


def test_k_larger_than_catalogue(ds: Dataset) -> None:
    got = Evaluator(ds, ks=(10,)).evaluate_scores(score_fn, "test")
    # every rankable item is in the list: recall 1 for all, precision = hits / 10
    assert got["recall@10"] == pytest.approx(1.0)
    assert got["precision@10"] == pytest.approx((2 + 1 + 1) / 3 / 10)


def test_matches_naive_reference_on_random_data() -> None:
    """An independent per-user loop (sets + sorting) agrees on random data under both protocols."""
    rng = np.random.default_rng(7)
    n_users, n_items = 40, 30
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=rng.integers(3, 12), replace=False)
        for i in items:
            rows.append((u, int(i), rng.choice(["train", "train", "train", "valid", "test"])))
        rows.append((u, int(items[0]), "test"))  # a repeat: train-or-other item again in test
    frame = pd.DataFrame(rows, columns=["user", "item", "split"])
    ds = Dataset("rand", range(n_users), range(n_items), frame)
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    for protocol in ("full", "mmrec"):
        ev = Evaluator(ds, ks=(5, 10), protocol=protocol, batch_users=7)
        got = ev.evaluate_scores(lambda u: scores[u], "test")
        tr = {u: set(frame[(frame.user == u) & (frame.split == "train")].item) for u in range(n_users)}
        va = {u: set(frame[(frame.user == u) & (frame.split == "valid")].item) for u in range(n_users)}
        te = {u: set(frame[(frame.user == u) & (frame.split == "test")].item) for u in range(n_users)}
        recall, ndcg, count = 0.0, 0.0, 0
        for u in range(n_users):
            masked = tr[u] | (va[u] if protocol == "full" else set())
            truth = te[u] - masked if protocol == "full" else te[u]
            if not truth:
                continue
            order = [i for i in np.argsort(-scores[u], kind="stable") if i not in masked][:10]
            hits = [i in truth for i in order]
            recall += sum(hits) / len(truth)
            ndcg += sum(h / math.log2(r + 2) for r, h in enumerate(hits)) / sum(
                1 / math.log2(r + 2) for r in range(min(len(truth), 10)))
            count += 1
        assert got["n_users"] == count
        assert got["recall@10"] == pytest.approx(recall / count)
        assert got["ndcg@10"] == pytest.approx(ndcg / count)


def test_torch_masking_path_agrees_with_numpy_path(ds: Dataset) -> None:
    # accelerators mask with torch.index_fill_ instead of numpy; exercise that branch on CPU
    ref = Evaluator(ds, ks=(1, 2, 3), candidates="test_items", batch_users=1)
    alt = Evaluator(ds, ks=(1, 2, 3), candidates="test_items", batch_users=1)
    alt._numpy_mask = False
    for split in ("valid", "test"):
        assert alt.evaluate_scores(score_fn, split) == ref.evaluate_scores(score_fn, split)
    assert alt.topk(score_fn, [0, 1, 2, 3], 3, "all").tolist() == ref.topk(score_fn, [0, 1, 2, 3], 3, "all").tolist()


def test_from_config_limits_beyond_accuracy_to_test(ds: Dataset) -> None:
    from fusionrec.config import EvalConfig

    cfg = EvalConfig(ks=[1, 3], protocol="mmrec", metrics=["Recall", "NDCG"], beyond_accuracy=True, batch_users=2)
    ev = Evaluator.from_config(ds, cfg)
    assert (ev.ks, ev.protocol, ev.metrics, ev.batch_users) == ((1, 3), "mmrec", ("recall", "ndcg"), 2)
    valid, test = ev.evaluate_scores(score_fn, "valid"), ev.evaluate_scores(score_fn, "test")
    assert "coverage@3" not in valid and "coverage@3" in test and "novelty@3" in test
    assert set(valid) == {"recall@1", "recall@3", "ndcg@1", "ndcg@3", "n_users"}


def test_max_users_ranks_all_items_for_a_seeded_sample_of_users():
    from fusionrec.data.synthetic import make_synthetic_dataset
    from fusionrec.data.split import random_split
    from fusionrec.models.popularity import Popularity

    ds = random_split(make_synthetic_dataset(n_items=600, seed=5), (0.8, 0.1, 0.1), seed=1)
    model = Popularity(ds.train_data())
    model.fit(ds.train_data())
    full = Evaluator(ds, ks=(20,))
    sampled = Evaluator(ds, ks=(20,), max_users=50)
    res_full, res = full.evaluate(model, "test"), sampled.evaluate(model, "test")
    assert res["n_users"] == 50 and res["n_users_total"] == res_full["n_users"] > 50
    assert "n_users_total" not in res_full
    # the same users every time, and a subset of the full set
    again = Evaluator(ds, ks=(20,), max_users=50)
    assert np.array_equal(again.eval_users("test"), sampled.eval_users("test"))
    assert set(sampled.eval_users("test")) <= set(full.eval_users("test"))
    per_user = full.evaluate_per_user(model, "test").set_index("user")
    expect = per_user.loc[sampled.eval_users("test"), "recall@20"].mean()
    assert abs(res["recall@20"] - expect) < 1e-9
    with pytest.raises(UserError, match="max_users"):
        Evaluator(ds, max_users=-1)
