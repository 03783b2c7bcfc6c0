"""content_cf's knn_weight: a decision-level blend with content-kNN that stays one inner product."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.data.dataset import Dataset
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import seed_everything
from tests.models.test_ranker import make_world

PARAMS = {"embedding_size": 16, "projection": "linear", "feature_dropout": 0.0, "modality_dropout": 0.0}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world() -> Dataset:
    return make_world(5)


def _z(s: torch.Tensor) -> torch.Tensor:
    return (s - s.mean(1, keepdim=True)) / s.std(1, keepdim=True)


def test_blend_ranks_like_per_user_z_scores_and_serving_vectors_reproduce_it(world):
    data = world.train_data()
    seed_everything(0)
    plain = build_model("content_cf", data, PARAMS)
    seed_everything(0)
    blend = build_model("content_cf", data, {**PARAMS, "knn_weight": 0.5})
    blend.load_state_dict(plain.state_dict())           # same trained part; the kNN has no weights
    plain.eval(), blend.eval()
    users = torch.arange(30)
    knn = build_model("content_knn", data, {})
    expected = _z(plain.full_sort_predict(users)) + 0.5 * _z(knn.full_sort_predict(users))
    got = blend.full_sort_predict(users)
    # equal up to a per-user constant, so the same ranking
    torch.testing.assert_close(got - got.mean(1, keepdim=True), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(blend.user_embeddings()[:30] @ blend.item_embeddings().T, got, rtol=1e-4, atol=1e-4)


def test_blend_weight_zero_is_the_plain_model_and_kNN_changes_the_scores(world):
    data = world.train_data()
    seed_everything(0)
    plain = build_model("content_cf", data, PARAMS)
    assert plain.knn is None
    seed_everything(0)
    blend = build_model("content_cf", data, {**PARAMS, "knn_weight": 2.0})
    blend.load_state_dict(plain.state_dict())
    plain.eval(), blend.eval()
    users = torch.arange(30)
    a, b = plain.full_sort_predict(users).numpy(), blend.full_sort_predict(users).numpy()
    assert not np.allclose(np.argsort(-a, 1)[:, :5], np.argsort(-b, 1)[:, :5])
    # serving the plain model: the content bias is the last dimension
    torch.testing.assert_close(plain.user_embeddings()[:30] @ plain.item_embeddings().T, plain.full_sort_predict(users),
                               rtol=1e-5, atol=1e-5)


def test_content_knn_score_vectors_reproduce_its_scores(world):
    knn = build_model("content_knn", world.train_data(), {})
    users = torch.arange(30)
    u, items = knn.score_vectors(users)
    torch.testing.assert_close(u @ items.T, knn.full_sort_predict(users), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="k null"):
        build_model("content_knn", world.train_data(), {"k": 3}).score_vectors(users)
