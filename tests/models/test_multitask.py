"""Multi-task ranker: click and conversion together over the impression space (ESMM, shared-bottom, MMoE)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.config import TrainConfig, resolve_config
from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def event_world(seed: int = 0, n_users: int = 150, n_items: int = 60) -> Dataset:
    """Impressions (label 0), clicks (1) and purchases (2): a user clicks items of their liked type
    (the "text" feature shows the type); a click converts when the item is cheap for its type
    (the feature's last column), which has nothing to do with why it was clicked."""
    rng = np.random.default_rng(seed)
    k = 4
    kind = rng.integers(0, k, n_items)
    cheap = rng.random(n_items) < 0.5
    text = np.hstack([np.eye(k)[kind], cheap[:, None].astype(float)]) + 0.1 * rng.normal(size=(n_items, k + 1))
    rows = []
    for u in range(n_users):
        liked = rng.integers(0, k)
        for i in rng.choice(n_items, 25, replace=False):
            clicked = rng.random() < (0.7 if kind[i] == liked else 0.08)
            bought = clicked and rng.random() < (0.8 if cheap[i] else 0.1)
            split = rng.choice(["train", "valid", "test"], p=[0.7, 0.15, 0.15])
            rows.append((u, int(i), 2.0 if bought else float(clicked), split))
    inter = pd.DataFrame(rows, columns=["user", "item", "label", "split"])
    return Dataset("events", range(n_users), range(n_items), inter,
                   modalities={"text": FeatureModality("text", "text", text)})


def train(ds: Dataset, epochs: int = 25, **params):
    data = ds.train_data()
    torch.manual_seed(0)
    model = build_model("multitask", data, {"embedding_size": 8, "mlp_layers": [16], "tower_layers": [8], **params})
    ev = Evaluator(ds, ks=(10,))
    cfg = TrainConfig(epochs=epochs, lr=0.01, batch_size=256, patience=6, valid_metric="auc_tasks",
                      checkpoint=False, progress=False)
    Trainer(model, data, cfg, ev, seed=0).fit()
    return model, ev.evaluate(model, "test")


@pytest.fixture(scope="module")
def world() -> Dataset:
    return event_world()


def test_esmm_learns_both_tasks_and_beats_a_cvr_model_trained_on_clicks(world):
    model, result = train(world)
    assert {"auc_click", "logloss_click", "auc_conversion", "logloss_conversion", "auc_cvr", "auc_tasks"} <= set(result)
    assert result["auc_click"] > 0.75 and result["auc_cvr"] > 0.7
    # the impression space: the classic CVR model never saw unclicked rows, so its pCVR ranks them badly
    _, clicked_only = train(world, objective="cvr_clicked")
    assert result["auc_conversion"] > clicked_only["auc_conversion"] + 0.05
    # pCTCVR = pCTR * pCVR, and auc is the click task
    probs = model.predict_tasks(torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]))
    assert torch.allclose(probs["conversion"], probs["click"] * probs["cvr"], atol=1e-6)
    assert result["auc"] == result["auc_click"]


@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe"])
def test_other_architectures_train(world, architecture):
    _, result = train(world, epochs=3, architecture=architecture, n_experts=2)
    assert np.isfinite(result["auc_click"]) and np.isfinite(result["auc_conversion"])


def test_score_weights_rank_by_a_blend_of_tasks(world):
    data = world.train_data()
    model = build_model("multitask", data, {"embedding_size": 8, "score_weights": {"click": 1.0, "cvr": 1.0}})
    model.eval()
    users, items = torch.tensor([0, 0]), torch.tensor([1, 2])
    probs = model.predict_tasks(users, items)
    scores = model.score_candidates(torch.tensor([0]), items)[0]
    assert torch.allclose(scores, probs["conversion"].log(), atol=1e-5)
    with pytest.raises(UserError, match="score_weights"):
        build_model("multitask", data, {"objective": "click", "score_weights": {"conversion": 1.0}})


def test_conversion_from_a_rating_threshold_and_clear_errors(caplog):
    rng = np.random.default_rng(1)
    inter = pd.DataFrame({"user": rng.integers(0, 20, 200), "item": rng.integers(0, 30, 200),
                          "rating": rng.integers(1, 6, 200).astype(float),
                          "split": rng.choice(["train", "valid", "test"], 200, p=[0.8, 0.1, 0.1])})
    ds = Dataset("rated", range(20), range(30), inter)
    model = build_model("multitask", ds.train_data(), {"conversion_rating": 4.0, "embedding_size": 8})
    assert model.num_negatives == 4   # no logged impressions: unclicked ones are sampled
    targets = model.task_targets(np.array([1, 1, 0]), np.array([1.0, 1.0, 0.0]), np.array([5.0, 2.0, np.nan]))
    assert targets["conversion"][0].tolist() == [True, False, False]
    assert targets["cvr"][1].tolist() == [True, True, False]
    with caplog.at_level("WARNING"):
        build_model("multitask", ds.train_data(), {})   # ratings but no conversion_rating: no label 2
    assert "no training click converts" in caplog.text
    assert resolve_config(dataset="ml100k", model="multitask").train.valid_metric == "auc_tasks"


def _click_tower_grads(model, batch) -> list[torch.Tensor]:
    model.zero_grad()
    torch.manual_seed(0)
    model.calculate_loss(batch).backward()
    return [p.grad.clone() for p in model.towers["click"].parameters()]


@pytest.mark.parametrize("through_click", [True, False])
def test_ctcvr_click_gradient_decides_whether_the_conversion_loss_trains_the_click_tower(world, through_click):
    data = world.train_data()
    batch = {"user": torch.tensor([0, 1, 2, 3, 4, 5]), "item": torch.tensor([1, 2, 3, 4, 5, 6]),
             "label": torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])}
    grads = []
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = build_model("multitask", data, {"embedding_size": 8, "conversion_weight": weight,
                                                "ctcvr_click_gradient": through_click})
        model.eval()   # no dropout: the two losses differ only by the conversion term
        grads.append(_click_tower_grads(model, batch))
    same = all(torch.allclose(a, b) for a, b in zip(*grads))
    # held fixed: the click tower's gradient is the click loss's alone, whatever the conversion weight
    assert same is (not through_click)
