"""The evaluator on the real shared datasets (skipped when ../shared/data is absent).

Datasets are built straight from the files with pandas so that these checks
depend only on :class:`~fusionrec.data.dataset.Dataset`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.evaluate import Evaluator

SPLIT_NAMES = {0: "train", 1: "valid", 2: "test"}


def _mmrec(path: Path, name: str) -> Dataset:
    frame = pd.read_csv(path, sep="\t")
    inter = pd.DataFrame({"user": frame["userID"].to_numpy(np.int64), "item": frame["itemID"].to_numpy(np.int64),
                          "split": frame["x_label"].map(SPLIT_NAMES).to_numpy(object)})
    return Dataset(name, range(int(inter.user.max()) + 1), range(int(inter.item.max()) + 1), inter)


@pytest.fixture(scope="module")
def lastfm(shared_data: Path) -> Dataset:
    return _mmrec(shared_data / "lastfm2k" / "lfm2k.inter", "lastfm2k")


def _popularity_scorer(ds: Dataset):
    pop = np.asarray(ds.interaction_matrix("train").sum(axis=0)).ravel().astype(np.float32)
    # a tiny deterministic jitter breaks popularity ties, so the ranking is unique
    pop += np.random.default_rng(0).random(ds.n_items).astype(np.float32) * 1e-3
    return lambda users: np.tile(pop, (len(users), 1))


def test_lastfm_popularity_beats_random_and_batches_agree(lastfm: Dataset) -> None:
    pop = _popularity_scorer(lastfm)
    rand = np.random.default_rng(1).random((lastfm.n_users, lastfm.n_items)).astype(np.float32)
    ev = Evaluator(lastfm, ks=(10, 20))
    p = ev.evaluate_scores(pop, "test")
    r = ev.evaluate_scores(lambda u: rand[u], "test")
    assert p["n_users"] == 1858  # every lastfm2k user has a test positive (README)
    # random ranking: expected recall@20 ~ 20 / 1425 = 0.014; popularity is far above it
    assert r["recall@20"] < 0.03
    assert p["recall@20"] > 5 * r["recall@20"]
    small = Evaluator(lastfm, ks=(10, 20), batch_users=97).evaluate_scores(pop, "test")
    assert small == p


def test_lastfm_full_protocol_never_ranks_truth_lower_than_mmrec(lastfm: Dataset) -> None:
    # lastfm2k has no repeated (user, item) pairs, so both protocols share the ground truth;
    # masking valid items as well can only move test items up -> per-user recall is >= mmrec's
    pop = _popularity_scorer(lastfm)
    full = Evaluator(lastfm, ks=(20,), protocol="full").evaluate_per_user(pop, "test")
    mmrec = Evaluator(lastfm, ks=(20,), protocol="mmrec").evaluate_per_user(pop, "test")
    assert (full["n_pos"].to_numpy() == mmrec["n_pos"].to_numpy()).all()
    assert (full["recall@20"].to_numpy() >= mmrec["recall@20"].to_numpy() - 1e-12).all()
    assert full["recall@20"].mean() > mmrec["recall@20"].mean()  # valid items do get in the way


def test_lastfm_matches_naive_loop_on_sample(lastfm: Dataset) -> None:
    scores = np.random.default_rng(2).normal(size=(lastfm.n_users, lastfm.n_items)).astype(np.float32)
    frame = Evaluator(lastfm, ks=(20,), protocol="mmrec").evaluate_per_user(lambda u: scores[u], "test")
    inter = lastfm.interactions
    for row in frame.sample(60, random_state=0).to_dict(orient="records"):
        mine = inter[inter.user == row["user"]]
        train = set(mine[mine.split == "train"].item)
        test = set(mine[mine.split == "test"].item)
        order = [i for i in np.argsort(-scores[row["user"]], kind="stable") if i not in train][:20]
        hits = [i in test for i in order]
        assert row["n_pos"] == len(test)
        assert row["recall@20"] == pytest.approx(sum(hits) / len(test))
        ndcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits)) / sum(
            1 / math.log2(j + 2) for j in range(min(len(test), 20)))
        assert row["ndcg@20"] == pytest.approx(ndcg)


def test_ml1m_cold_start_ranks_only_test_items(shared_data: Path) -> None:
    raw = pd.read_csv(shared_data / "ml1m" / "interactions.csv")
    ds = Dataset.from_frames("ml1m", raw, user_col="user_id", item_col="item_id", split_col="split")
    test_items = set(ds.split_frame("test")["item"])
    assert not test_items & set(ds.split_frame("train")["item"])  # the split is item cold-start
    rng = np.random.default_rng(3)
    scores = rng.random((ds.n_users, ds.n_items)).astype(np.float32)
    ev = Evaluator(ds, ks=(20,), candidates="test_items", beyond_accuracy=True)
    users = ev.eval_users("test")[:300]
    lists = ev.topk(lambda u: scores[u], users, 20, "test")
    assert (lists >= 0).all() and set(np.unique(lists)) <= test_items
    # coverage is a share of the candidate items (the 905 test items), so it can reach 1
    res = ev.evaluate_scores(lambda u: scores[u], "test")
    assert 0.9 < res["coverage@20"] <= 1.0
    # random ranking of 905 candidates: recall@20 ~ 20/905 = 0.022
    assert 0.01 < res["recall@20"] < 0.04
