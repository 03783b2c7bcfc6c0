"""Model artifacts: safetensors + parquet + npy + JSON round trip, identical scores, no pickle."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from fusionrec.config import RunConfig
from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError
from fusionrec.models.io import (
    load_dataset_artifact,
    load_model,
    save_dataset,
    save_model,
)
from fusionrec.models.registry import build_model
from fusionrec.train import Trainer, seed_everything
from tests.train.synthetic import clustered_dataset


def _string_id_dataset() -> Dataset:
    base = clustered_dataset(n_users=40, n_items=25, per_user=8, seed=2)
    rng = np.random.default_rng(0)
    items = pd.DataFrame({"title": [f"item {j}" for j in range(25)], "price": rng.random(25),
                          "image_path": [f"images/{j}.jpg" if j % 3 else None for j in range(25)]})
    feats = rng.normal(size=(25, 6)).astype(np.float32)
    mask = np.arange(25) % 4 != 0
    mod = FeatureModality("text_minilm", "text", feats, mask, source="test")
    return Dataset("strings", [f"u{i}" for i in range(40)], [f"sku-{j}" for j in range(25)],
                   base.interactions, items, {"text_minilm": mod}, root="/data/shop")


def test_dataset_round_trip(tmp_path):
    ds = _string_id_dataset()
    save_dataset(ds, tmp_path / "ds")
    back = load_dataset_artifact(tmp_path / "ds")
    assert list(back.user_ids) == list(ds.user_ids) and list(back.item_ids) == list(ds.item_ids)
    pd.testing.assert_frame_equal(back.interactions, ds.interactions)
    pd.testing.assert_frame_equal(back.items, ds.items, check_dtype=False)
    m, m0 = back.modalities["text_minilm"], ds.modalities["text_minilm"]
    assert m.kind == "text" and np.array_equal(m.features, m0.features) and np.array_equal(m.mask, m0.mask)
    assert str(back.root) == "/data/shop"
    assert (back.interaction_matrix("train") != ds.interaction_matrix("train")).nnz == 0


@pytest.mark.parametrize("name,params", [
    ("pop", {}),
    ("itemknn", {"k": 5}),
    ("bpr", {"embedding_size": 8, "reg_weight": 1e-3}),
    ("lightgcn", {"embedding_size": 8, "n_layers": 2, "reg_weight": 1e-4}),
])
def test_model_round_trip_gives_identical_scores(tmp_path, name, params):
    ds = _string_id_dataset()
    cfg = RunConfig.model_validate({"model": {"name": name, "params": params},
                                    "train": {"epochs": 3, "progress": False, "num_threads": 1,
                                              "batch_size": 64, "lr": 0.01}})
    seed_everything(0)
    data = ds.train_data()
    model = build_model(name, data, params)
    Trainer(model, data, cfg.train, None).fit()
    model.eval()
    users = torch.arange(ds.n_users)
    before = model.full_sort_predict(users).detach().clone()
    save_model(model, cfg, ds, tmp_path / "model")

    files = {p.name for p in (tmp_path / "model").rglob("*") if p.is_file()}
    assert {"weights.safetensors", "model.yaml", "config.yaml", "dataset.json", "interactions.parquet",
            "items.parquet"} <= files
    assert not any(f.endswith((".pkl", ".pickle", ".pt", ".pth")) for f in files), files

    loaded = load_model(tmp_path / "model")
    assert type(loaded.model) is type(model) and not loaded.model.training
    assert loaded.config.model.name == name
    after = loaded.model.full_sort_predict(users).detach()
    assert torch.allclose(before, after, atol=1e-6)
    assert list(loaded.dataset.item_ids) == list(ds.item_ids)


def test_load_model_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="model.yaml"):
        load_model(tmp_path)
    ds = _string_id_dataset()
    cfg = RunConfig.model_validate({"model": {"name": "bpr"}})
    model = build_model("bpr", ds.train_data(), {"embedding_size": 4})
    save_model(model, cfg, ds, tmp_path / "m")
    meta = yaml.safe_load((tmp_path / "m" / "model.yaml").read_text())
    meta["params"]["embedding_size"] = 5  # weights no longer fit the model
    (tmp_path / "m" / "model.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises((UserError, RuntimeError)):
        load_model(tmp_path / "m")
    meta["name"] = "no-such-model"
    (tmp_path / "m" / "model.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(UserError, match="not registered"):
        load_model(tmp_path / "m")
    json.loads((tmp_path / "m" / "dataset" / "dataset.json").read_text())  # plain JSON, no pickle
