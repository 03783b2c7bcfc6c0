"""The report's breakdowns agree with the evaluator's own definitions."""
from __future__ import annotations

import numpy as np
import pytest

from fusionrec.evaluate import Evaluator
from fusionrec.evaluate.slices import slice_metrics
from fusionrec.report.analysis import (
    SeedRanking,
    history_breakdown,
    item_group_breakdown,
    popularity_buckets,
    recommendation_shares,
)
from tests.report.demo_runs import demo_dataset


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    ds = demo_dataset(tmp_path_factory.mktemp("analysis") / "shop")
    ev = Evaluator(ds, ks=(10, 20))
    scores = np.random.default_rng(3).normal(size=(ds.n_users, ds.n_items)).astype(np.float32)
    scores += 0.5 * np.log1p(ev.item_popularity)[None, :]  # a popularity-leaning scorer

    def score(users):
        return scores[users]

    users, lists, hits = ev.ranked_lists(score, "test")
    return ev, score, SeedRanking(1, users, lists, hits)


def test_warm_cold_groups_match_slice_metrics(ranked):
    ev, score, ranking = ranked
    pop = ev.item_popularity
    out = item_group_breakdown("warm vs cold", [ranking], ev, {"warm": pop > 0, "cold": pop == 0}, 20)
    ref = slice_metrics(ev, score, "test")
    for group in ("warm", "cold"):
        for m in ("recall@20", "ndcg@20"):
            assert out.values[group][m] == [pytest.approx(ref[f"{group}:{m}"])]
    assert ref["cold:n_users"] > 0  # the demo's new arrivals are held out by someone


def test_popularity_buckets_partition_the_catalogue(ranked):
    ev, _, ranking = ranked
    buckets = popularity_buckets(ev.item_popularity)
    stacked = np.stack(list(buckets.values()))
    assert (stacked.sum(axis=0) == 1).all()
    names = list(buckets)
    assert names[0].startswith("cold") and names[-1].startswith("high")
    shares = recommendation_shares([ranking], ev.item_popularity, buckets, 20)
    for source in ("catalogue items", "training interactions", "recommendations"):
        assert sum(s[source] for s in shares.values()) == pytest.approx(1.0)
    # the scorer leans on popularity: the head gets more slots than its share of the catalogue
    high = next(v for k, v in shares.items() if k.startswith("high"))
    assert high["recommendations"] > high["catalogue items"]


def test_history_groups_cover_every_evaluated_user(ranked):
    ev, _, ranking = ranked
    out = history_breakdown([ranking], ev, 20)
    assert sum(int(s.split()[0]) for s in out.sizes.values()) == len(ranking.users)
    assert len(out.groups) >= 2
