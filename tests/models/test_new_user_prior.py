"""two_tower's new-user prior: popularity within the user's segment, recency without looking ahead.

Synthetic world: light users (a few events, mostly "starter" items and their segment's hits) and
heavy users (many events over other items). Per event, popularity is the heavy users'; per user --
as a per-user metric averages over new users -- the starters matter more. The prior weighs each
training user equally and conditions on the segment; popularity and the logQ tower do neither.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.config import TrainConfig
from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.data.split import user_cold_start_split
from fusionrec.errors import UserError
from fusionrec.evaluate.user_cold import (
    evaluate_new_users,
    model_scorer,
    new_user_cases,
)
from fusionrec.models.new_user_prior import DAY, NewUserPrior
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer, seed_everything

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SEGMENTS = 4


def _world(seed: int = 0, n_users: int = 400, n_items: int = 120) -> Dataset:
    # 60% light users: 6 events, most from 12 "starter" items (plus their segment's hits); 40% heavy
    # users: 27 events, most from 30 other items. Counted per event, the heavy users' items are the
    # popular ones; counted per user -- as a per-user metric counts new users -- the starters are.
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_items)
    starters, heavy_items = perm[:12], perm[12:42]
    seg_hits = perm[42:42 + SEGMENTS * 4].reshape(SEGMENTS, 4)
    rest = perm[42 + SEGMENTS * 4:]
    segment = rng.integers(0, SEGMENTS, n_users)
    heavy = rng.random(n_users) < 0.4
    rows = []
    for u in range(n_users):
        if heavy[u]:
            mine = np.r_[rng.choice(heavy_items, 25, replace=False), rng.choice(rest, 2, replace=False)]
        else:
            mine = np.r_[rng.choice(starters, 4, replace=False), rng.choice(seg_hits[segment[u]], 2, replace=False)]
        items = rng.permutation(mine)
        rows += [(u, int(it), float(t) * DAY + u * 600.0) for t, it in enumerate(items)]
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    users = pd.DataFrame({"user_id": np.arange(n_users), "segment": [f"s{s}" for s in segment],
                          "age": rng.integers(18, 70, n_users).astype(str)})
    text = FeatureModality("text", "text", rng.normal(size=(n_items, 8)))
    ds = Dataset("prior-world", range(n_users), range(n_items), inter, modalities={"text": text}, users=users)
    return user_cold_start_split(ds, (0.7, 0.1, 0.2), seed=seed)


@pytest.fixture(scope="module")
def world() -> Dataset:
    return _world()


def _train(ds: Dataset, params: dict) -> torch.nn.Module:
    seed_everything(0)
    model = build_model("two_tower", ds.train_data(), {"embedding_size": 16, "align": "none", "use_content": False,
                                                        "user_attributes": True, "user_id_dropout": 1.0,
                                                        "temperature": 0.05, **params})
    cfg = TrainConfig(epochs=8, lr=0.01, batch_size=256, patience=50, checkpoint=False, progress=False)
    Trainer(model, ds.train_data(), cfg, evaluator=None, seed=0).fit()
    return model.eval()


def test_prior_ranks_new_users_by_popularity_within_their_segment(world):
    cases = new_user_cases(world, "test", (0,))
    pop = build_model("pop", world.train_data(), {})
    pop.fit(world.train_data())
    base = evaluate_new_users(model_scorer(pop), cases, world.n_items, (0,), (10,))[0]["recall@10"]
    plain = _train(world, {})
    with_prior = _train(world, {"new_user_prior": True, "new_user_prior_weight": 4.0})
    r_plain = evaluate_new_users(model_scorer(plain, cases), cases, world.n_items, (0,), (10,))[0]["recall@10"]
    r_prior = evaluate_new_users(model_scorer(with_prior, cases), cases, world.n_items, (0,), (10,))[0]["recall@10"]
    assert r_prior > 1.1 * max(base, r_plain), (r_prior, base, r_plain)
    # counted per event (power 0) the prior follows the heavy users again
    per_event = _train(world, {"new_user_prior": True, "new_user_prior_weight": 4.0, "new_user_prior_power": 0.0})
    r_event = evaluate_new_users(model_scorer(per_event, cases), cases, world.n_items, (0,), (10,))[0]["recall@10"]
    assert r_prior > 1.1 * r_event, (r_prior, r_event)
    # the standard evaluator sees the same thing: users without training events get the prior
    users = torch.as_tensor(cases.users[:5])
    full = with_prior.full_sort_predict(users)
    assert torch.allclose(full, with_prior.new_user_scores(with_prior.user_codes[users], [[]] * 5,
                                                           times=[np.nan] * 5), atol=1e-5)


def test_prior_is_served_by_the_same_inner_product(world):
    model = _train(world, {"new_user_prior": True, "new_user_recency_days": 3.0})
    attrs = {"segment": "s1", "age": 30}
    v = model.user_vector_from_attributes(attrs, items=[3])
    exact = model.new_user_scores([attrs], [[3]])[0]            # times None: now, after training
    served = model.item_embeddings() @ v
    # equal up to the per-user log-softmax normalisers, i.e. the same ranking
    diff = exact - served
    assert float(diff.std()) < 1e-4 and exact.topk(10).indices.tolist() == served.topk(10).indices.tolist()
    # with decay the prior fades with the first events, on both paths alike
    model.hp = model.hp.model_copy(update={"new_user_prior_decay": 3.0})
    faded = model.new_user_scores([attrs], [[3]])[0]
    assert float((faded - model.item_embeddings() @ model.user_vector_from_attributes(attrs, items=[3])).std()) < 1e-4
    assert float(model._prior_weight([0, 1])[1]) == pytest.approx(0.25)
    assert not torch.allclose(faded, exact)
    # a trained user's exported vector has zero prior columns: its ranking is the tower's alone
    assert model.user_embeddings().shape[1] == v.shape[0]
    assert torch.count_nonzero(model.user_embeddings()[:, -(model.dim + 1):]) == 0


def test_recency_reads_only_events_before_the_arrival_bin():
    # item 5 is rated only in days 14..20 (the third 7-day bin); everything else spread over 6 weeks
    rng = np.random.default_rng(0)
    rows = [(int(u), int(rng.integers(0, 5)), float(rng.uniform(0, 42)) * DAY) for u in range(200)]
    rows += [(200 + k, 5, (14 + k * 0.1) * DAY) for k in range(60)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    users = pd.DataFrame({"user_id": np.arange(260), "g": ["a", "b"] * 130})
    prior = NewUserPrior(users, frame, 6, 8, recency_days=7.0)
    origin = frame["timestamp"].min()
    t = lambda day: origin + day * DAY
    boost = lambda day: float(prior.recent_log[prior.recency_rows([t(day)], 1)][0, 5])
    # arriving inside the bin of item 5's events: the window is the bin before, without them
    assert boost(15) < boost(22) - 2.0
    # the first bin has no earlier bin, an unknown time no window: no recency term at all
    assert np.count_nonzero(prior.recent_log[prior.recency_rows([t(1), np.nan], 2)].numpy()) == 0
    # events at or after a user's arrival bin never change its term
    later = pd.concat([frame, pd.DataFrame({"user": [0] * 50, "item": [4] * 50, "timestamp": [t(30)] * 50})])
    again = NewUserPrior(users, later, 6, 8, recency_days=7.0)
    row = prior.recency_rows([t(23)], 1)
    assert torch.equal(prior.recent_log[row], again.recent_log[again.recency_rows([t(23)], 1)])


def test_prior_settings_that_cannot_work_are_user_errors(world):
    with pytest.raises(UserError, match="user_attributes"):
        build_model("two_tower", world.train_data(), {"use_content": False, "new_user_prior": True})
    with pytest.raises(UserError, match="fusion"):
        build_model("two_tower", world.train_data(), {"use_content": True, "fusion": "late",
                                                       "user_attributes": True, "new_user_prior": True})
