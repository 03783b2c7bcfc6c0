"""Cascade decision-level options: rank fusion (RRF, Borda) and re-ranking by a blend of a multi-task ranker's tasks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.errors import UserError
from fusionrec.fuse.decision import borda_fusion, reciprocal_rank_fusion
from fusionrec.models.cascade import Cascade
from fusionrec.models.registry import build_model
from tests.models.test_cascade import FixedScores
from tests.models.test_ranker import N_ITEMS, N_USERS, make_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world():
    return make_world(5)


def candidate_order(cascade: Cascade, users: torch.Tensor) -> torch.Tensor:
    scores = cascade.full_sort_predict(users)
    return torch.topk(scores, cascade.top_n, dim=1).indices


@pytest.mark.parametrize("fusion", ["rrf", "borda"])
def test_rank_fusion_of_retriever_and_ranker(world, fusion):
    data = world.train_data()
    rng = np.random.default_rng(0)
    retriever = FixedScores(data, rng.normal(size=(N_USERS, N_ITEMS)))
    ranker = FixedScores(data, rng.normal(size=(N_USERS, N_ITEMS)))
    cascade = Cascade.from_models(data, retriever, ranker, top_n=8, blend=0.3, fusion=fusion, rrf_k=10)
    users = torch.arange(6)
    ret = cascade.retriever_scores(users)
    cand = cascade.candidates(users, ret)
    mats = [torch.gather(ret, 1, cand), torch.gather(ranker.scores[users], 1, cand)]
    if fusion == "rrf":
        expected = reciprocal_rank_fusion(mats, k=10, weights=[0.3, 0.7])
    else:
        expected = (0.3 * borda_fusion(mats[:1]) + 0.7 * borda_fusion(mats[1:])) / 1.0
    order = np.take_along_axis(cand.numpy(), np.argsort(-expected, axis=1, kind="stable"), axis=1)
    got = candidate_order(cascade, users).numpy()
    assert (got[:, 0] == order[:, 0]).all()
    assert {frozenset(r) for r in got} == {frozenset(r) for r in cand.numpy()}   # the same candidates
    # one voter alone (blend 0): rank fusion keeps the ranker's own order
    alone = Cascade.from_models(data, retriever, ranker, top_n=8, blend=0.0, fusion=fusion)
    ranked = torch.gather(ranker.scores[users], 1, cand).argsort(dim=1, descending=True)
    assert (candidate_order(alone, users).numpy() == np.take_along_axis(cand.numpy(), ranked.numpy(), 1)).all()


def test_task_blend_of_a_multitask_ranker(world):
    data = world.train_data()
    retriever = build_model("pop", data)
    retriever.fit(data)
    ranker = build_model("multitask", data, {"embedding_size": 8, "conversion_label": 1.0})
    ranker.eval()
    cascade = Cascade.from_models(data, retriever, ranker, top_n=10, task_weights={"click": 1.0, "cvr": 2.0})
    users = torch.arange(4)
    cand = cascade.candidates(users)
    tasks = ranker.score_tasks(users, cand)
    blend = tasks["click"] + 2.0 * tasks["cvr"]
    expected = torch.gather(cand, 1, blend.argsort(dim=1, descending=True))
    assert (candidate_order(cascade, users) == expected).all()
    with pytest.raises(UserError, match="multi-task ranker"):
        Cascade.from_models(data, retriever, FixedScores(data, np.zeros((N_USERS, N_ITEMS))), top_n=10,
                            task_weights={"click": 1.0})
