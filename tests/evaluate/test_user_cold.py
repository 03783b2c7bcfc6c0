"""New-user protocol: ordered first events, a truth shared by every N, and the eval.new_user_events keys."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.config import EvalConfig
from fusionrec.data.dataset import Dataset
from fusionrec.data.split import random_split
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.evaluate.user_cold import evaluate_new_users, new_user_cases


def _dataset() -> Dataset:
    # user 0, 1 train; user 2 valid; user 3 test with events out of time order (and a repeat)
    rows = [(0, 0, 1.0), (0, 1, 2.0), (1, 2, 1.0), (1, 3, 2.0), (2, 4, 1.0), (2, 5, 2.0),
            (3, 6, 5.0), (3, 7, 1.0), (3, 8, 3.0), (3, 7, 4.0), (3, 9, 2.0), (3, 0, 9.0)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    frame["split"] = ["train"] * 4 + ["valid"] * 2 + ["test"] * 6
    return Dataset("t", range(4), range(10), frame)


def test_cases_order_events_by_time_and_share_one_truth():
    cases = new_user_cases(_dataset(), "test", (0, 1, 3))
    assert cases.users.tolist() == [3]
    assert cases.first == [[7, 9, 8]]                       # by time; the repeat of 7 counts once
    assert sorted(cases.truth[0].tolist()) == [0, 6]


def test_given_events_reach_the_scorer_and_the_pool_is_never_recommended():
    cases = new_user_cases(_dataset(), "test", (0, 1, 3))
    seen = {}

    def scorer(users, histories):
        seen[len(histories[0])] = histories[0]
        s = torch.zeros(len(users), 10)
        s[:, [7, 9, 8]] = 10.0                              # would win if not masked
        s[:, 6] = 5.0
        return s

    res = evaluate_new_users(scorer, cases, 10, (0, 1, 3), ks=(1,))
    assert seen == {0: [], 1: [7], 3: [7, 9, 8]}
    assert res[0]["recall@1"] == pytest.approx(0.5) and res[3]["hit@1"] == 1.0


def test_a_split_without_new_users_is_a_user_error():
    ds = random_split(_dataset(), seed=0, min_interactions=2)
    with pytest.raises(UserError, match="user_cold_start"):
        new_user_cases(ds, "test")


def test_eval_config_adds_new_user_keys_to_test_results():
    ds = _dataset()
    ev = Evaluator.from_config(ds, EvalConfig(ks=[1, 2], new_user_events=[0, 1], beyond_accuracy=False))
    from fusionrec.models.registry import build_model

    pop = build_model("pop", ds.train_data(), {})
    pop.fit(ds.train_data())
    out = ev.evaluate(pop, "test")
    assert {"new_users@0/recall@2", "new_users@1/recall@2", "recall@2"} <= set(out)
    assert "new_users@0/recall@2" not in ev.evaluate(pop, "valid")
    assert np.isfinite(out["new_users@1/ndcg@2"])


def test_arrival_is_the_first_event_and_reaches_a_model_that_reads_it():
    cases = new_user_cases(_dataset(), "test", (0, 1, 3))
    assert cases.arrival.tolist() == [1.0]                  # user 3's earliest event, not the file's first row
    from fusionrec.evaluate.user_cold import model_scorer

    class Reads(torch.nn.Module):
        user_attr = None

        def new_user_scores(self, codes, histories, times=None):
            self.times = times
            return torch.zeros(len(histories), 10)

    model = Reads()
    model_scorer(model, cases)(cases.users, [[]])
    assert model.times == [1.0]
    model_scorer(model)(cases.users, [[]])
    assert model.times is None                               # no cases: "now", after training
