"""Multi-task ranker: one checkpoint per task (task_checkpoints) and the conversion loss's gradient
into the shared representation (conversion_shared_gradient)."""
from __future__ import annotations

import pytest
import torch

from fusionrec.config import RunConfig, TrainConfig
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.models.io import load_model, save_model
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer, seed_everything
from tests.models.test_multitask import event_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = {"embedding_size": 8, "mlp_layers": [16], "tower_layers": [8], "ctcvr_click_gradient": False}


@pytest.fixture(scope="module")
def world():
    return event_world(n_users=100, n_items=40)


def test_task_checkpoints_serve_each_task_from_its_own_valid_best_state(world, tmp_path):
    data = world.train_data()
    torch.manual_seed(0)
    model = build_model("multitask", data, {**SMALL, "task_checkpoints": True})
    ev = Evaluator(world, ks=(10,))
    cfg = TrainConfig(epochs=12, lr=0.01, batch_size=256, patience=2, valid_metric="auc_tasks",
                      checkpoint=False, progress=False)
    result = Trainer(model, data, cfg, ev, seed=0).fit()
    # each task stopped on its own patience; training went on until both had
    finished = [t for h in result.history for t in h.get("tasks_finished", [])]
    assert sorted(finished) == ["click", "conversion"] or len(result.history) == cfg.epochs
    assert bool(model.click_state_used)
    # pCTR comes from the frozen click-best copy, pCVR from this network, pCTCVR is their product
    users, items = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7])
    probs = model.predict_tasks(users, items)
    assert torch.allclose(probs["click"], model.click_state.predict_tasks(users, items)["click"])
    assert torch.allclose(probs["conversion"], probs["click"] * probs["cvr"], atol=1e-6)
    scores = model.score_candidates(users[:1], items)[0]   # score_weights: log pCTR
    assert torch.allclose(scores, model.predict_tasks(users[:1].repeat(4), items)["click"].log(), atol=1e-5)
    valid = ev.evaluate(model, "valid")
    assert result.best_valid["auc_conversion"] == pytest.approx(valid["auc_conversion"])   # the served model's
    assert valid["auc_click"] == pytest.approx(max(h["valid"]["auc_click"] for h in result.history if "valid" in h))
    # a saved model keeps both states
    save_model(model, RunConfig(), world, tmp_path / "model")
    loaded = load_model(tmp_path / "model").model
    assert torch.allclose(loaded.predict_tasks(users, items)["click"], probs["click"], atol=1e-6)


@pytest.mark.parametrize("architecture", ["esmm", "shared_bottom", "mmoe"])
def test_conversion_shared_gradient_zero_keeps_the_conversion_loss_off_the_shared_representation(world,
                                                                                                architecture):
    data = world.train_data()
    batch = {"user": torch.tensor([0, 1, 2, 3, 4, 5]), "item": torch.tensor([1, 2, 3, 4, 5, 6]),
             "label": torch.tensor([1.0, 2.0, 0.0, 2.0, 0.0, 1.0])}
    grads = {}
    for scale in (0.0, 1.0):
        torch.manual_seed(0)
        model = build_model("multitask", data, {**SMALL, "architecture": architecture, "n_experts": 2,
                                                "conversion_shared_gradient": scale})
        model.eval()
        model.finish_task("click")   # the conversion loss alone
        model.zero_grad()
        model.calculate_loss(batch).backward()
        shared = [p for n, p in model.named_parameters() if not n.startswith(("towers", "gates", "bodies.1"))]
        if architecture != "esmm":   # the bodies are the shared networks
            shared = [p for n, p in model.named_parameters() if not n.startswith(("towers", "gates"))]
        grads[scale] = sum(float(p.grad.abs().sum()) for p in shared if p.grad is not None)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.towers["cvr"].parameters())
    assert grads[0.0] == 0.0 and grads[1.0] > 0.0


def test_fields_of_its_own_let_the_click_side_train_exactly_as_a_click_only_model(world):
    data = world.train_data()
    ev = Evaluator(world, ks=(10,))
    cfg = TrainConfig(epochs=4, lr=0.01, batch_size=256, patience=2, valid_metric="auc_click",
                      checkpoint=False, progress=False)
    clicks = {}
    for name, params in (("click only", {"objective": "click"}), ("multitask", {"shared_fields": False})):
        seed_everything(0)
        model = build_model("multitask", data, {**SMALL, **params})
        Trainer(model, data, cfg, ev, seed=0).fit()
        clicks[name] = model.predict_tasks(torch.arange(20), torch.arange(20))
    # same initial weights, batches and dropout draws on the click side: the conversion side has its own
    assert torch.equal(clicks["click only"]["click"], clicks["multitask"]["click"])
    probs = clicks["multitask"]
    assert torch.allclose(probs["conversion"], probs["click"] * probs["cvr"], atol=1e-6)
    with pytest.raises(UserError, match="shared_fields"):
        build_model("multitask", data, {**SMALL, "shared_fields": False, "architecture": "mmoe"})
