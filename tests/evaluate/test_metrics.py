"""Every metric against values worked out by hand (arithmetic written in the comments)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fusionrec.errors import UserError
from fusionrec.evaluate import metrics as M

# Two users, ranked lists of 4 items:
#   A: hits at ranks 1 and 3, has m = 3 held-out positives
#   B: hit at rank 2,         has m = 1 held-out positive
HITS = np.array([[1, 0, 1, 0], [0, 1, 0, 0]], dtype=bool)
N_POS = np.array([3, 1])
# rank discounts 1/log2(j+1): rank 1 -> 1, rank 2 -> 0.6309298, rank 3 -> 0.5


def test_ranking_metrics_by_hand() -> None:
    got = M.ranking_metrics(HITS, N_POS, ks=[2, 4])
    expected = {
        # recall = hits in top K / m
        "recall@2": (1 / 3 + 1 / 1) / 2,          # A 1/3, B 1/1
        "recall@4": (2 / 3 + 1 / 1) / 2,
        # precision = hits in top K / K
        "precision@2": (1 / 2 + 1 / 2) / 2,
        "precision@4": (2 / 4 + 1 / 4) / 2,
        # hit = any hit in top K
        "hit@2": 1.0,
        "hit@4": 1.0,
        # ndcg: A@2 DCG = 1, IDCG over min(3,2)=2 ranks = 1 + 0.63093; B@2 DCG = 0.63093, IDCG = 1
        "ndcg@2": (1 / (1 + 0.6309298) + 0.6309298 / 1) / 2,
        # A@4 DCG = 1 + 0.5, IDCG over 3 ranks = 1 + 0.63093 + 0.5; B@4 as at 2
        "ndcg@4": (1.5 / 2.1309298 + 0.6309298) / 2,
        # map: A@2 = P@1 / min(3,2) = 1/2; B@2 = P@2 / 1 = 1/2
        "map@2": (0.5 + 0.5) / 2,
        # A@4 = (P@1 + P@3) / min(3,4) = (1 + 2/3) / 3; B@4 = 1/2
        "map@4": ((1 + 2 / 3) / 3 + 0.5) / 2,
        # mrr: first hit at rank 1 for A, rank 2 for B
        "mrr@2": (1 + 0.5) / 2,
        "mrr@4": (1 + 0.5) / 2,
    }
    assert set(got) == set(expected)
    for key, val in expected.items():
        assert got[key] == pytest.approx(val, abs=1e-6), key


def test_ndcg_ideal_uses_min_of_positives_and_k() -> None:
    # one user, 5 positives, hits at ranks 1,2: at K=2 the ideal list is full -> NDCG = 1
    got = M.ranking_metrics(np.array([[1, 1, 0]], bool), np.array([5]), ks=[2, 3])
    assert got["ndcg@2"] == pytest.approx(1.0)
    # K=3: DCG = 1 + 0.63093, IDCG = 1 + 0.63093 + 0.5
    assert got["ndcg@3"] == pytest.approx(1.6309298 / 2.1309298, abs=1e-6)
    # recall keeps the full denominator (MMRec): 2 / 5, not 2 / min(5, 2)
    assert got["recall@2"] == pytest.approx(0.4)


def test_no_hits_and_late_hits() -> None:
    got = M.ranking_metrics(np.array([[0, 0, 0, 1]], bool), np.array([1]), ks=[3, 4],
                            metrics=["mrr", "hit", "ndcg", "map"])
    assert got["mrr@3"] == 0.0 and got["hit@3"] == 0.0 and got["ndcg@3"] == 0.0 and got["map@3"] == 0.0
    assert got["mrr@4"] == pytest.approx(0.25)
    # rank j is discounted by 1/log2(j+1): rank 4 -> 1/log2(5) = 0.4306766; IDCG = 1
    assert got["ndcg@4"] == pytest.approx(0.4306766, abs=1e-6)
    assert got["map@4"] == pytest.approx(0.25)          # P@4 = 1/4, / min(1, 4)


def test_metric_names_and_ks_are_checked() -> None:
    assert M.canonical_metrics(["NDCG", "HitRate", "recall"]) == ("ndcg", "hit", "recall")
    with pytest.raises(UserError, match="auc@"):
        M.canonical_metrics(["auc@10"])
    with pytest.raises(UserError):
        M.check_ks([10, 0])
    assert M.check_ks([20, 10, 20]) == (10, 20)
    with pytest.raises(ValueError, match="n_pos"):
        M.ranking_metrics(HITS, np.array([1, 0]), ks=[2])


def test_hits_from_lists() -> None:
    got = M.hits_from_lists(np.array([[3, 1, -1]]), [[1, 7]])
    assert got.tolist() == [[False, True, False]]


# ---------------------------------------------------------------------------- beyond accuracy
def test_catalogue_coverage_by_hand() -> None:
    lists = np.array([[0, 1], [1, 2], [2, -1]])
    assert M.catalogue_coverage(lists, n_items=5) == pytest.approx(3 / 5)   # {0,1,2}
    assert M.catalogue_coverage(lists, n_items=5, k=1) == pytest.approx(3 / 5)  # {0,1,2}
    assert M.catalogue_coverage(np.array([[0, 1], [0, 2]]), n_items=4, k=1) == pytest.approx(1 / 4)


def test_intra_list_diversity_by_hand() -> None:
    s = 1 / math.sqrt(2)
    feats = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=np.float32)  # item 3 has no features
    # list [0,1,2]: cos(0,1)=0, cos(0,2)=s, cos(1,2)=s -> mean(1-cos) = (1 + 2(1-s)) / 3
    # list [0,2]:   1 - s
    lists = np.array([[0, 1, 2], [0, 2, -1]])
    expected = ((1 + 2 * (1 - s)) / 3 + (1 - s)) / 2
    assert M.intra_list_diversity(lists, feats) == pytest.approx(expected, abs=1e-6)
    # item 3 has no feature vector: list [0,3] has no pair with features -> left out entirely
    lists2 = np.array([[0, 1], [0, 3]])
    assert M.intra_list_diversity(lists2, feats) == pytest.approx(1.0)
    # identical items -> 0 diversity; cosine ignores vector length
    assert M.intra_list_diversity(np.array([[0, 1]]), np.array([[2.0, 0.0], [5.0, 0.0]])) == pytest.approx(0.0)


def test_novelty_by_hand() -> None:
    pop = np.array([3, 1, 0, 4])          # total 8; item 2 is cold -> counted as 1
    # self-information: -log2(3/8)=1.415037, -log2(1/8)=3, -log2(1/8)=3, -log2(4/8)=1
    lists = np.array([[0, 1], [3, 2]])
    expected = ((1.4150375 + 3) / 2 + (1 + 3) / 2) / 2
    assert M.novelty(lists, pop) == pytest.approx(expected, abs=1e-6)
    assert M.novelty(lists, pop, k=1) == pytest.approx((1.4150375 + 1) / 2, abs=1e-6)
    np.testing.assert_allclose(M.self_information(pop), [1.4150375, 3, 3, 1], atol=1e-6)


def test_ild_per_user_matches_explicit_pairs_on_random_lists() -> None:
    # the sum-of-vectors identity must equal averaging 1 - cos over explicit pairs
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(30, 8)).astype(np.float32)
    lists = np.stack([rng.choice(30, 6, replace=False) for _ in range(5)])
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    explicit = []
    for row in lists:
        d = [1 - unit[a] @ unit[b] for i, a in enumerate(row) for b in row[i + 1:]]
        explicit.append(np.mean(d))
    assert M.intra_list_diversity(lists, feats) == pytest.approx(np.mean(explicit), abs=1e-5)


# ---------------------------------------------------------------------------- pointwise
def test_auc_by_hand_with_ties() -> None:
    labels = [1, 0, 1, 0, 1]
    scores = [0.9, 0.3, 0.3, 0.1, 0.5]
    # 3 positives x 2 negatives = 6 pairs; wins: 0.9 -> 2, 0.3 -> 0.5 (tie) + 1, 0.5 -> 2 => 5.5
    assert M.auc(labels, scores) == pytest.approx(5.5 / 6)
    assert M.auc([0, 1], [0.2, 0.2]) == pytest.approx(0.5)
    assert M.auc([1, 0], [0.1, 0.9]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="both classes"):
        M.auc([1, 1], [0.1, 0.2])


def test_log_loss_by_hand_and_clipping() -> None:
    # -(ln 0.8 + ln 0.6) / 2 = (0.2231436 + 0.5108256) / 2
    assert M.log_loss([1, 0], [0.8, 0.4]) == pytest.approx(0.3669846, abs=1e-6)
    # a certain wrong prediction is clipped to eps = 1e-7: -ln(1e-7) = 16.1180957
    assert M.log_loss([1], [0.0]) == pytest.approx(16.1180957, abs=1e-5)
    with pytest.raises(ValueError, match="logits=True"):
        M.log_loss([1], [2.0])


def test_mae_rmse_by_hand() -> None:
    # errors 1, 0, 2 -> MAE 1, RMSE sqrt(5/3)
    assert M.mae([3, 5, 2], [4, 5, 4]) == pytest.approx(1.0)
    assert M.rmse([3, 5, 2], [4, 5, 4]) == pytest.approx(1.2909944)
    assert M.evaluate_ratings([3, 5, 2], [4, 5, 4]) == {"mae": 1.0, "rmse": pytest.approx(1.2909944), "n": 3.0}
    with pytest.raises(ValueError, match="align"):
        M.mae([1, 2], [1])
    with pytest.raises(ValueError, match="not finite"):
        M.rmse([1, float("nan")], [1, 2])


def test_evaluate_pointwise_with_logits() -> None:
    # logits 0 -> p = 0.5: logloss = ln 2 = 0.6931472 for both rows; AUC: 1 of 1 pair is tied -> 0.5
    got = M.evaluate_pointwise([1, 0], [0.0, 0.0], logits=True)
    assert got["logloss"] == pytest.approx(0.6931472) and got["auc"] == pytest.approx(0.5)
    # logit ln(4) -> p = 0.8 for the positive; logit -ln(1.5) -> p = 0.4 for the negative
    got = M.evaluate_pointwise([1, 0], [math.log(4), -math.log(1.5)], logits=True)
    assert got["logloss"] == pytest.approx(0.3669846, abs=1e-6) and got["auc"] == 1.0


def test_per_user_tensor_api_shapes() -> None:
    out = M.ranking_metrics_per_user(torch.tensor(HITS), torch.tensor(N_POS), ks=[1], metrics=["hit"])
    assert out["hit@1"].tolist() == [1.0, 0.0]
