"""The synthetic catalogue: sizes, power laws, content that carries signal, seeds, config access."""
from __future__ import annotations

import numpy as np
import pytest

from fusionrec.config import DataConfig
from fusionrec.data.loading import load_dataset
from fusionrec.data.synthetic import make_synthetic_dataset
from fusionrec.errors import UserError


def test_sizes_and_power_law():
    d = make_synthetic_dataset(n_items=4000, seed=1)
    assert d.n_items == 4000 and d.n_users == 2000
    assert abs(len(d.interactions) - 20_000) < 2100  # 5 x items, plus one for any user left without
    counts = np.bincount(d.interactions["item"], minlength=d.n_items)
    top = np.sort(counts)[::-1]
    assert top[:40].sum() / counts.sum() > 0.10  # top 1% of items: far above a uniform 1%
    assert set(np.unique(d.interactions["user"])) == set(range(d.n_users))
    assert d.modalities["content"].features.shape == (4000, 64)
    assert d.modalities["content"].mask.all()


def test_content_carries_the_users_taste():
    d = make_synthetic_dataset(n_items=3000, seed=2, in_topic=0.9)
    topic = d.items["topic"].to_numpy()[d.interactions["item"].to_numpy()]
    users = d.interactions["user"].to_numpy()
    # the most frequent topic of a user covers most of their events
    share = []
    for u in range(0, d.n_users, 7):
        t = topic[users == u]
        if len(t) >= 5:
            share.append(np.bincount(t).max() / len(t))
    assert np.mean(share) > 0.6
    # and items of one topic have close content vectors
    x = d.modalities["content"].features
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    same = d.items["topic"].to_numpy() == d.items["topic"].iloc[0]
    assert (x[same] @ x[0]).mean() > (x[~same] @ x[0]).mean() + 0.3


def test_seeded_and_reachable_from_config():
    a = make_synthetic_dataset(n_items=500, seed=3)
    b = load_dataset(DataConfig(format="synthetic", synthetic={"n_items": 500, "seed": 3}))
    np.testing.assert_array_equal(a.interactions["item"], b.interactions["item"])
    assert b.has_split  # the default split applies like on any dataset
    assert not np.array_equal(a.interactions["item"], make_synthetic_dataset(n_items=500, seed=4).interactions["item"])


def test_bad_argument_names_the_valid_keys():
    with pytest.raises(UserError, match="n_items"):
        make_synthetic_dataset(n_itemz=10)
