"""Cascade: retrieval-only equivalence, candidate restriction, re-ranking with an oracle, registry + io."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from fusionrec.config import RunConfig
from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.models.base import RecModel
from fusionrec.models.cascade import Cascade
from fusionrec.models.io import load_model, save_model
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import seed_everything
from tests.models.test_ranker import N_ITEMS, N_USERS, make_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world():
    return make_world(3)


class FixedScores(RecModel):
    """A stand-in model that returns a given score matrix (retriever or ranker)."""

    name = "fixed"
    trainable = False

    def __init__(self, data: TrainData, scores: np.ndarray) -> None:
        super().__init__(data, {})
        self.scores = torch.as_tensor(scores, dtype=torch.float32)

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores[users].clone()


def truth_matrix(ds, split: str) -> np.ndarray:
    return ds.interaction_matrix(split).toarray()


def test_blend_one_reproduces_the_retriever(world):
    data = world.train_data()
    rng = np.random.default_rng(0)
    retriever = FixedScores(data, rng.normal(size=(N_USERS, N_ITEMS)))
    ranker = FixedScores(data, rng.normal(size=(N_USERS, N_ITEMS)))
    ev = Evaluator(world, ks=(5, 10, 50))
    cascade = Cascade.from_models(data, retriever, ranker, top_n=10, blend=1.0)
    assert ev.evaluate(cascade, "test") == pytest.approx(ev.evaluate(retriever, "test"))


def test_only_the_top_n_are_reranked_and_training_items_never_take_slots(world):
    data = world.train_data()
    rng = np.random.default_rng(1)
    ret = rng.normal(size=(N_USERS, N_ITEMS))
    retriever = FixedScores(data, ret)
    # the ranker reverses the retriever's order
    cascade = Cascade.from_models(data, retriever, FixedScores(data, -ret), top_n=7, blend=0.0)
    users = torch.arange(N_USERS)
    scores = cascade.full_sort_predict(users)
    train = data.train.toarray() > 0
    masked = np.where(train, -np.inf, ret)
    for u in range(0, N_USERS, 7):
        top = np.argsort(-masked[u])[:7]
        order = torch.argsort(scores[u], descending=True).numpy()
        # the candidates (retriever top-7 among non-training items) fill the first 7 slots, reversed
        assert list(order[:7]) == list(top[::-1])
        assert not train[u, order[:7]].any()
        # beyond the candidates the retriever's order is kept
        rest = [i for i in np.argsort(-masked[u]) if i not in set(top) and not train[u, i]]
        assert list(order[7:7 + len(rest)]) == rest


def test_oracle_ranker_lifts_recall_within_the_candidates(world):
    data = world.train_data()
    rng = np.random.default_rng(2)
    truth = truth_matrix(world, "test")
    retriever = FixedScores(data, truth * 0.8 + rng.normal(size=truth.shape))   # noisy retriever
    oracle = FixedScores(data, truth + 0.01 * rng.normal(size=truth.shape))
    ev = Evaluator(world, ks=(5,), protocol="mmrec")
    base = ev.evaluate(retriever, "test")
    cascade = Cascade.from_models(data, retriever, oracle, top_n=40)
    lifted = ev.evaluate(cascade, "test")
    assert lifted["recall@5"] > base["recall@5"] + 0.1
    # the oracle cannot recover positives the retriever left outside its top-N
    scores = cascade.full_sort_predict(torch.arange(N_USERS)).numpy()
    cand = cascade.candidates(torch.arange(N_USERS)).numpy()
    for u in range(N_USERS):
        outside = np.setdiff1d(np.flatnonzero(truth[u]), cand[u])
        if len(outside):
            assert scores[u, outside].max() < scores[u, cand[u]].min()


def test_registry_cascade_fits_sub_models_and_round_trips(world, tmp_path):
    seed_everything(0)
    data = world.train_data()
    params: dict[str, Any] = {
        "top_n": 20, "blend": 0.3,
        "retriever": {"name": "bpr", "params": {"embedding_size": 8}, "epochs": 3, "lr": 0.01},
        "ranker": {"name": "dcn", "params": {"embedding_size": 8, "mlp_layers": [8], "cross_rank": 4,
                                             "hard_negatives": 2}, "epochs": 2, "lr": 0.01},
    }
    cascade = build_model("cascade", data, params)
    before = cascade.ranker.head.weight.detach().clone()
    cascade.fit(data)
    assert not torch.allclose(cascade.ranker.head.weight, before)          # the ranker was trained
    assert cascade.ranker.candidates.shape == (N_USERS, 20)                # on the retriever's top-N
    scores = cascade.full_sort_predict(torch.arange(10))
    cfg = RunConfig.model_validate({"model": {"name": "cascade", "params": params}})
    save_model(cascade, cfg, world, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    torch.testing.assert_close(loaded.model.full_sort_predict(torch.arange(10)), scores)


def test_cascade_configuration_errors(world):
    data = world.train_data()
    with pytest.raises(UserError, match="needs a retriever"):
        build_model("cascade", data, {"retriever": None, "ranker": {"name": "pop"}})
    with pytest.raises(UserError, match="blend"):
        build_model("cascade", data, {"retriever": {"name": "pop"}, "ranker": {"name": "pop"}, "blend": 2})
