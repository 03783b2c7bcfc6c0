"""The attribute user tower: new users (never in training) ranked from attributes and first events.

Synthetic world: items have one of K types (a text feature reveals it); a user's taste is
one type, which their ``segment`` attribute often gives away (their ``age`` is noise). Popularity
cannot know a new user's taste; attributes can, and so can a first event.
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
from fusionrec.models.registry import build_model
from fusionrec.models.user_tower import UserAttributeEncoder
from fusionrec.train.trainer import Trainer, seed_everything

pytestmark = pytest.mark.usefixtures("one_torch_thread")
K = 6


def _world(seed: int = 0, n_users: int = 300, n_items: int = 150) -> Dataset:
    rng = np.random.default_rng(seed)
    item_type = rng.integers(0, K, n_items)
    # a few items are popular with everybody, so popularity is a real (but taste-blind) baseline
    popular = rng.choice(n_items, 8, replace=False)
    taste = rng.integers(0, K, n_users)
    rows = []
    for u in range(n_users):
        liked = rng.choice(np.setdiff1d(np.flatnonzero(item_type == taste[u]), popular), 10, replace=False)
        items = rng.permutation(np.r_[liked, rng.choice(popular, 2, replace=False)])
        rows += [(u, int(it), float(t)) for t, it in enumerate(items)]
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    text = np.eye(K)[item_type] + 0.2 * rng.normal(size=(n_items, K))
    users = pd.DataFrame({"user_id": np.arange(n_users),
                          # the segment tells the taste for 80% of the users, so first events add to it
                          "segment": np.array([f"s{t if rng.random() < 0.8 else rng.integers(0, K)}"
                                               for t in taste], dtype=object),
                          "age": rng.integers(18, 70, n_users).astype(str).astype(object)})
    users.loc[::17, "segment"] = None          # some users do not say
    ds = Dataset("users-world", range(n_users), range(n_items), inter,
                 modalities={"text": FeatureModality("text", "text", text)}, users=users)
    return user_cold_start_split(ds, (0.7, 0.1, 0.2), seed=seed)


@pytest.fixture(scope="module")
def world() -> Dataset:
    return _world()


def _train(ds: Dataset, params: dict) -> torch.nn.Module:
    seed_everything(0)
    model = build_model("two_tower", ds.train_data(), {"embedding_size": 32, "align": "none", "logq": False,
                                                        "user_id_dropout": 0.5, **params})
    cfg = TrainConfig(epochs=12, lr=0.01, batch_size=256, patience=50, checkpoint=False, progress=False)
    Trainer(model, ds.train_data(), cfg, evaluator=None, seed=0).fit()
    return model.eval()


def test_new_users_are_ranked_from_attributes_then_first_events(world):
    cases = new_user_cases(world, "test", (0, 1, 3))
    assert len(cases.users) > 40 and all(len(f) == 3 for f in cases.first)
    pop = build_model("pop", world.train_data(), {})
    pop.fit(world.train_data())
    base = evaluate_new_users(model_scorer(pop), cases, world.n_items, (0, 1, 3), (10,))
    tower = _train(world, {"user_attributes": True})
    res = evaluate_new_users(model_scorer(tower), cases, world.n_items, (0, 1, 3), (10,))
    assert res[0]["recall@10"] > 1.5 * base[0]["recall@10"], (res, base)
    assert res[3]["recall@10"] > res[0]["recall@10"]
    # without attributes the n=0 user vector is the same for everybody: no better than popularity
    plain = _train(world, {"user_attributes": False})
    res_plain = evaluate_new_users(model_scorer(plain), cases, world.n_items, (0,), (10,))
    assert res[0]["recall@10"] > 1.3 * res_plain[0]["recall@10"]


def test_attribute_vector_serves_by_inner_product(world):
    tower = _train(world, {"user_attributes": True})
    v = tower.user_vector_from_attributes({"segment": "s2", "age": 30}, items=[3])
    scores = tower.new_user_scores([{"segment": "s2", "age": 30}], [[3]])[0]
    assert torch.allclose(tower.item_embeddings() @ v, scores, atol=1e-5)
    # nothing known: a valid (constant) vector; an unknown attribute name is a user error naming the known ones
    assert torch.isfinite(tower.user_vector_from_attributes(None)).all()
    with pytest.raises(UserError, match="segment"):
        tower.user_vector_from_attributes({"segmnet": "s2"})


def test_attribute_encoder_bins_numbers_and_keeps_frequent_values():
    frame = pd.DataFrame({"age": [str(a) for a in range(20, 80)] + [None, ""],
                          "job": ["a"] * 30 + ["b"] * 29 + ["rare", None, "a"]})
    enc = UserAttributeEncoder(frame, dim=8, n_bins=4, min_count=5)
    codes = enc.encode_frame(frame).numpy()
    assert enc.fields[0].numeric and not enc.fields[1].numeric
    assert set(codes[:60, 0]) == {2, 3, 4, 5} and codes[60, 0] == 0 and codes[61, 0] == 0   # 4 bins, missing
    assert codes[59, 1] == 1 and codes[60, 1] == 0                          # rare -> <other>, None -> missing
    new = enc.encode_records([{"age": 25, "job": "never-seen"}, {}]).numpy()
    assert new[0, 0] == 2 and new[0, 1] == 1 and (new[1] == 0).all()
    out = enc(torch.from_numpy(new))
    assert torch.count_nonzero(out[1]) == 0 and torch.count_nonzero(out[0]) > 0
