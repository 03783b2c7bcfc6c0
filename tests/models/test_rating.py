"""Rating models: biased MF and the content regression head, MSE training, MAE/RMSE evaluation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.config import TrainConfig, resolve_config
from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.evaluate.metrics import rmse
from fusionrec.evaluate.rating import rating_rows, rating_slices
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rated_world(seed: int = 0, n_users: int = 120, n_items: int = 80, cold_share: float = 0.2) -> Dataset:
    """Ratings 1-5 from user/item biases and factors; the item's bias and factors are readable
    from its "text" feature; a share of the items are rated only in test (held out of training)."""
    rng = np.random.default_rng(seed)
    item_bias = rng.normal(0, 0.8, n_items)
    q = rng.normal(0, 0.7, (n_items, 3))
    p = rng.normal(0, 0.7, (n_users, 3))
    user_bias = rng.normal(0, 0.4, n_users)
    text = np.hstack([item_bias[:, None], q]) @ rng.normal(size=(4, 12)) + 0.05 * rng.normal(size=(n_items, 12))
    cold = np.zeros(n_items, dtype=bool)
    cold[rng.choice(n_items, int(cold_share * n_items), replace=False)] = True
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, 30, replace=False):
            r = np.clip(np.round(3.4 + user_bias[u] + item_bias[i] + p[u] @ q[i] + rng.normal(0, 0.4)), 1, 5)
            split = "test" if cold[i] else rng.choice(["train", "valid", "test"], p=[0.8, 0.1, 0.1])
            rows.append((u, int(i), float(r), split))
    inter = pd.DataFrame(rows, columns=["user", "item", "rating", "split"])
    ds = Dataset("rated", range(n_users), range(n_items), inter,
                 modalities={"text": FeatureModality("text", "text", text)})
    ds.cold = cold  # test-only attribute
    return ds


def fit(name: str, ds: Dataset, epochs: int = 40, **params) -> tuple:
    data = ds.train_data()
    torch.manual_seed(0)
    model = build_model(name, data, params)
    ev = Evaluator(ds, ks=(10,))
    cfg = TrainConfig(epochs=epochs, lr=0.01, batch_size=512, patience=5, valid_metric="rmse", checkpoint=False,
                      progress=False)
    Trainer(model, data, cfg, ev, seed=0).fit()
    return model, ev


@pytest.fixture(scope="module")
def world() -> Dataset:
    return rated_world()


def test_biased_mf_beats_the_means_and_reports_mae_rmse(world):
    model, ev = fit("biased_mf", world, embedding_size=8, reg_weight=0.02)
    result = ev.evaluate(model, "test")
    assert {"rmse", "mae", "recall@10"} <= set(result)
    rows = rating_rows(world, "test")
    warm = ~world.cold[rows.items]
    pred = model.predict_ratings(torch.from_numpy(rows.users), torch.from_numpy(rows.items)).numpy()
    mean = rating_rows(world, "train").ratings.mean()
    assert rmse(pred[warm], rows.ratings[warm]) < 0.85 * rmse(np.full(warm.sum(), mean), rows.ratings[warm])
    # predictions are ratings: inside the training scale, and the same through full_sort_predict
    assert pred.min() >= 1.0 and pred.max() <= 5.0
    full = model.full_sort_predict(torch.tensor([3, 7]))
    pairs = model.predict_ratings(torch.tensor([3, 3, 7]), torch.tensor([0, 5, 9]))
    assert torch.allclose(full[[0, 0, 1], [0, 5, 9]], pairs, atol=1e-5)


def test_content_head_rates_items_held_out_of_training(world):
    model, _ = fit("content_rating", world, embedding_size=8, reg_weight=0.02, projection="linear",
                   projection_dropout=0.0)
    cold = rating_slices(model, world, "test")["cold"]
    assert cold["n_rows"] > 100
    # the held-out items are rated from their content, far better than any mean could
    assert cold["model:rmse"] < 0.85 * min(cold["global_mean:rmse"], cold["item_mean:rmse"],
                                           cold["user_mean:rmse"])


def test_rating_models_need_ratings_and_select_on_rmse():
    inter = pd.DataFrame({"user": [0, 1, 1], "item": [0, 1, 0], "split": ["train", "train", "test"]})
    ds = Dataset("implicit", range(2), range(2), inter)
    with pytest.raises(UserError, match="explicit ratings"):
        build_model("biased_mf", ds.train_data())
    assert resolve_config(dataset="ml100k", model="biased_mf").train.valid_metric == "rmse"
    chosen = resolve_config(dataset="ml100k", model="biased_mf", overrides=["train.valid_metric=mae"])
    assert chosen.train.valid_metric == "mae"
    assert resolve_config(dataset="ml100k", model="bpr").train.valid_metric == "recall@20"
