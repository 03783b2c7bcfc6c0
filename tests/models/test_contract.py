"""The model contract, checked for every registered model from its typed defaults.

For each model: the parameters built from Python (``build_model`` with no params)
and from the CLI configuration path (``resolve_config(model=NAME)``) are the same;
one epoch of training (or ``fit`` for closed-form models) runs on a tiny world with
text and image modalities (some images missing); ``full_sort_predict`` has shape
``[n_users_batch, n_items]``; a save/load round trip gives identical scores.
"""
from __future__ import annotations

import pytest
import torch

from fusionrec.config import RunConfig, TrainConfig, resolve_config
from fusionrec.models.io import load_model, save_model
from fusionrec.models.registry import (
    available_models,
    build_model,
    default_params,
    model_class,
    model_entry,
)
from fusionrec.train import Trainer, seed_everything
from tests.models.worlds import typed_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ONE_EPOCH = TrainConfig(epochs=1, batch_size=64, lr=0.01, checkpoint=False, progress=False, num_threads=1)


@pytest.fixture(scope="module")
def world():
    # 36 users x 30 items, 3 item types; text reveals the type, a third of the images are missing,
    # a fifth of the items are cold (test only)
    ds = typed_world(5, n_users=36, n_items=30, k=3, text_dim=8, image_dim=6, image_missing=0.3)
    # ratings 1-5 on every event (implicit models ignore them; rating models need them)
    ds.interactions["rating"] = (1 + (ds.interactions["user"] + ds.interactions["item"]) % 5).astype("float32")
    return ds


@pytest.mark.parametrize("name", available_models())
def test_python_and_cli_build_the_same_parameters(name, world):
    from_cli = resolve_config(model=name).model.params
    assert from_cli == default_params(name)
    model = build_model(name, world.train_data(), {})
    assert model.params == from_cli
    # the typed values the model reads are the ones it reports (and saves)
    assert model.hp.model_dump(mode="json") == model.params


@pytest.mark.parametrize("name", available_models())
def test_kind_matches_what_the_model_reads(name):
    cls = model_class(name)
    kind = model_entry(name).kind
    if kind == "multimodal":
        assert cls.uses_content, f"{name} is listed as multimodal but does not declare uses_content"
    if kind == "ID-only":
        assert not cls.uses_content, f"{name} is listed as ID-only but declares uses_content"
    for field, info in cls.Params.model_fields.items():
        assert info.description, f"{name}.{field} has no description"


def _changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> bool:
    after = model.state_dict()
    return any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", available_models())
def test_contract_train_predict_save_load(name, world, tmp_path):
    seed_everything(0)
    data = world.train_data()
    model = build_model(name, data, {})
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    Trainer(model, data, ONE_EPOCH, evaluator=None, seed=0).fit()
    if type(model).trainable:
        assert _changed(before, model), f"one epoch of {name} changed no weight"

    model.eval()
    users = torch.tensor([0, 3, 7, 11, 35])
    scores = model.full_sort_predict(users).detach().clone()
    assert tuple(scores.shape) == (len(users), world.n_items)
    assert not torch.isnan(scores).any()

    cfg = RunConfig.model_validate({"model": {"name": name, "params": model.params}})
    save_model(model, cfg, world, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.model.params == model.params
    torch.testing.assert_close(loaded.model.full_sort_predict(users), scores, rtol=0, atol=1e-6)
