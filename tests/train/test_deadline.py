"""Trainer ``deadline``: checked every step and after every validation, so a time budget is never overrun by
an epoch; the weights trained since the last validation are validated once more and the best ones kept.
``--model auto`` runs every gradient candidate under it, so its whole run ends within the budget."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from fusionrec.config import TrainConfig
from fusionrec.data.dataset import Dataset, TrainData
from fusionrec.train import Trainer, auto
from tests.models.test_mmgraph import _clustered
from tests.train.test_auto import _make_cfg
from tests.train.test_trainer import Climber, PeakEvaluator

STEP = 0.01   # seconds one training step sleeps: 200 steps make a 2 s epoch


def _rows_data(n: int = 200) -> TrainData:
    """``n`` training pairs: 20 users with n/20 items each out of 4x as many (so negatives exist)."""
    per_user, n_items = n // 20, 4 * (n // 20)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(20)])
    m = sp.csr_matrix((np.ones(n, np.float32), (users, items)), shape=(20, n_items))
    return TrainData(20, n_items, m, pd.DataFrame({"user": users, "item": items}))


@pytest.fixture(autouse=True, scope="module")
def _optimizer_imported():
    """The first Adam imports torch._dynamo (seconds): done before any deadline starts counting."""
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])


class SlowClimber(Climber):
    def calculate_loss(self, batch):
        time.sleep(STEP)
        return super().calculate_loss(batch)


class SlowEvaluator(PeakEvaluator):
    def __init__(self, peak: float, seconds: float):
        super().__init__(peak)
        self.seconds = seconds

    def evaluate(self, model, split="valid"):
        time.sleep(self.seconds)
        return super().evaluate(model, split)


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 50, "batch_size": 1, "lr": 0.01, "patience": 100, "progress": False,
                          "checkpoint": False, "seeds": [0], **kw})


def test_a_deadline_inside_an_epoch_stops_at_the_next_step_and_validates_that_state():
    data = _rows_data()
    evaluator = PeakEvaluator(peak=1e9)   # every step improves: the last weights are the best
    start = time.perf_counter()
    trainer = Trainer(SlowClimber(data), data, _cfg(eval_every=5), evaluator, deadline=start + 0.5)
    result = trainer.fit()
    elapsed = time.perf_counter() - start
    assert trainer.out_of_time
    assert elapsed < 1.2, elapsed                 # one epoch alone takes >= 2 s
    (record,) = result.history                    # stopped inside epoch 1 ...
    assert record["stopped_at_deadline"] and "valid" in record   # ... and validated it though eval_every is 5
    assert result.best_epoch == 1 and evaluator.calls and result.best_valid


def test_the_last_validation_fits_before_the_deadline_and_the_best_weights_are_kept():
    data = _rows_data(40)                         # 40 steps: a 0.4 s epoch
    evaluator = SlowEvaluator(peak=0.0, seconds=0.3)   # w climbs away from 0: the first epoch is the best
    start = time.perf_counter()
    trainer = Trainer(SlowClimber(data), data, _cfg(eval_every=1), evaluator, deadline=start + 2.0)
    result = trainer.fit()
    elapsed = time.perf_counter() - start
    assert trainer.out_of_time and result.history[-1]["stopped_at_deadline"]
    # without the reserve of one validation the run would end one validation (0.3 s) late
    assert elapsed < 2.0 + 0.15, elapsed
    assert result.best_epoch == 1 and len(result.history) >= 2
    assert float(trainer.model.w.detach()) == evaluator.calls[0][1]   # the epoch-1 weights, restored


def test_the_hint_reserves_a_validation_before_any_was_measured():
    data = _rows_data()
    evaluator = SlowEvaluator(peak=1e9, seconds=0.4)
    start = time.perf_counter()
    trainer = Trainer(SlowClimber(data), data, _cfg(eval_every=100), evaluator, deadline=start + 1.0,
                      valid_seconds_hint=0.4)
    trainer.fit()
    elapsed = time.perf_counter() - start
    assert trainer.out_of_time and elapsed < 1.0 + 0.15, elapsed


def test_no_deadline_changes_nothing():
    data = _rows_data(40)
    trainer = Trainer(Climber(data), data, _cfg(epochs=3, eval_every=1), PeakEvaluator(peak=1e9))
    result = trainer.fit()
    assert not trainer.out_of_time and len(result.history) == 3
    assert not any(r.get("stopped_at_deadline") for r in result.history)


def test_auto_whole_run_stays_within_a_few_seconds_budget(tmp_path):
    ds, _, _ = _clustered(n_users=80, n_items=40, cold_items=4, per_user=10)
    make = _make_cfg(tmp_path, epochs=100_000, patience=100_000, eval_every=5)
    budget, margin = 3.0, 1.0
    results = auto.run_auto(ds, make, budget=budget, candidates=["pop", "bpr", "lightgcn"])
    block = results["auto"]
    assert block["run_seconds"] < budget + margin, block
    statuses = {c["name"]: c["status"] for c in block["candidates"]}
    (blend_name,) = [n for n in statuses if n.startswith("blend(")]   # the two best, whichever they are
    blend = statuses.pop(blend_name)
    assert statuses == {"pop": "ok", "bpr": "stopped at budget", "lightgcn": "stopped at budget"}
    assert blend.startswith(("ok", "stopped at budget"))   # its scoring passes were kept in the budget too
    assert all(c["valid"] is not None for c in block["candidates"] if c["name"] != blend_name)
    assert "whole run" in results["candidate_table"]


def test_sequential_candidates_are_skipped_without_timestamps(tmp_path, monkeypatch):
    ds, _, _ = _clustered(n_users=60, n_items=40, cold_items=4, per_user=10)   # no timestamp column
    monkeypatch.setattr(auto, "PORTFOLIO", (auto.Candidate("pop"), auto.Candidate("sasrec", when="timestamps")))
    chosen = auto.select_model(ds, _make_cfg(tmp_path), budget=30)
    assert {c.name: c.status for c in chosen.candidates} == {
        "pop": "ok", "sasrec": "skipped: no timestamps (a sequence needs them)"}
    assert not auto._has_timestamps(ds)
    timed = ds.interactions.assign(timestamp=range(len(ds.interactions)))
    assert auto._has_timestamps(Dataset(ds.name, ds.user_ids, ds.item_ids, timed))
