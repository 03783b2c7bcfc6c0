"""Samplers: negatives are never training positives, epochs cover every interaction once."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.train.sampling import (
    PairwiseSampler,
    PointwiseSampler,
    UserSampler,
    make_sampler,
)


def _train_data(matrix: sp.csr_matrix) -> TrainData:
    coo = matrix.tocoo()
    frame = pd.DataFrame({"user": coo.row, "item": coo.col})
    return TrainData(matrix.shape[0], matrix.shape[1], matrix.tocsr(), frame)


def _random_train(n_users=200, n_items=60, density=0.3, seed=0) -> TrainData:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # every user has a positive
    return _train_data(sp.csr_matrix(dense))


def test_pairwise_negatives_are_never_training_positives_and_epoch_covers_all():
    # dense (30%) data forces many rejections, the hard case for the vectorised sampler
    data = _random_train()
    sampler = PairwiseSampler(data, batch_size=97)
    dense = data.train.toarray() > 0
    for epoch in range(3):
        batches = list(sampler.epoch(np.random.default_rng(epoch)))
        assert len(batches) == len(sampler)
        users = torch.cat([b["user"] for b in batches]).numpy()
        pos = torch.cat([b["pos_item"] for b in batches]).numpy()
        neg = torch.cat([b["neg_item"] for b in batches]).numpy()
        assert not dense[users, neg].any(), "a negative was a training positive"
        assert dense[users, pos].all()
        # each training interaction exactly once per epoch
        got = np.sort(users.astype(np.int64) * data.n_items + pos)
        coo = data.train.tocoo()
        assert np.array_equal(got, np.sort(coo.row.astype(np.int64) * data.n_items + coo.col))


def test_pairwise_near_saturated_user_still_gets_valid_negatives():
    # user 0 has every item but one as a positive: rejection alone would loop for long
    n_items = 50
    dense = np.zeros((3, n_items), dtype=np.float32)
    dense[0, :-1] = 1.0
    dense[1, :5] = 1.0
    dense[2, [7, 8]] = 1.0
    sampler = PairwiseSampler(_train_data(sp.csr_matrix(dense)), batch_size=1000)
    batch = next(sampler.epoch(np.random.default_rng(1)))
    mask = batch["user"] == 0
    assert (batch["neg_item"][mask] == n_items - 1).all()


def test_pairwise_skips_users_without_any_possible_negative():
    dense = np.ones((2, 4), dtype=np.float32)
    dense[1, 2:] = 0.0
    sampler = PairwiseSampler(_train_data(sp.csr_matrix(dense)), batch_size=10)
    batch = next(sampler.epoch(np.random.default_rng(0)))
    assert set(batch["user"].tolist()) == {1}


def test_sampling_is_reproducible_for_a_seed():
    data = _random_train(seed=3)
    sampler = PairwiseSampler(data, batch_size=128)
    a = [b["neg_item"] for b in sampler.epoch(np.random.default_rng([7, 1]))]
    b = [b["neg_item"] for b in sampler.epoch(np.random.default_rng([7, 1]))]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_pointwise_labels_and_negative_ratio():
    data = _random_train(density=0.1, seed=2)
    sampler = PointwiseSampler(data, batch_size=256, num_negatives=3)
    batches = list(sampler.epoch(np.random.default_rng(0)))
    users = torch.cat([b["user"] for b in batches]).numpy()
    items = torch.cat([b["item"] for b in batches]).numpy()
    labels = torch.cat([b["label"] for b in batches]).numpy()
    dense = data.train.toarray() > 0
    assert labels.dtype == np.float32
    assert (labels == 1).sum() == data.train.nnz
    assert (labels == 0).sum() == 3 * data.train.nnz
    assert dense[users[labels == 1], items[labels == 1]].all()
    assert not dense[users[labels == 0], items[labels == 0]].any()


def test_user_sampler_yields_each_active_user_once():
    dense = np.zeros((5, 4), dtype=np.float32)
    dense[[0, 2, 4], 1] = 1.0
    sampler = UserSampler(_train_data(sp.csr_matrix(dense)), batch_size=2)
    users = torch.cat([b["user"] for b in sampler.epoch(np.random.default_rng(0))])
    assert sorted(users.tolist()) == [0, 2, 4]


def test_bad_arguments_are_user_errors():
    data = _random_train()
    with pytest.raises(UserError, match="batch size"):
        PairwiseSampler(data, batch_size=0)
    with pytest.raises(ValueError, match="batch kind"):
        make_sampler("listwise", data, 10)
    empty = _train_data(sp.csr_matrix((3, 3), dtype=np.float32))
    with pytest.raises(UserError, match="no interactions"):
        make_sampler("pairwise", empty, 10)
