"""New items are placed by the served model's own content path (two_tower, content_cf, mmgraph)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.models.registry import build_model
from fusionrec.serve.placement import content_placer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_ITEMS, N_USERS, COLD = 40, 24, (36, 37, 38, 39)


def tiny_world(seed: int = 0) -> Dataset:
    """Two modalities (text 8-d, image 6-d, some images missing); the last four items have no interactions."""
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(N_USERS) for i in rng.choice(N_ITEMS - len(COLD), 6, replace=False)]
    inter = pd.DataFrame(rows, columns=["user", "item"])
    inter["split"] = "train"
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(N_ITEMS)]})
    ds = Dataset("tiny", [f"u{u}" for u in range(N_USERS)], items["item_id"], inter, items)
    image_mask = np.ones(N_ITEMS, bool)
    image_mask[[3, 11, 37]] = False  # one cold item without an image
    ds.add_modality(FeatureModality("text", "text", rng.normal(size=(N_ITEMS, 8)) + 0.5))
    ds.add_modality(FeatureModality("image", "image", rng.gamma(2.0, size=(N_ITEMS, 6)), image_mask))
    return ds


MODELS = {
    "two_tower": ("two_tower", {"embedding_size": 8, "fusion": "attention"}),
    "two_tower_late": ("two_tower", {"embedding_size": 8, "fusion": "late"}),
    "content_cf": ("content_cf", {"embedding_size": 8, "hidden": 16, "feature_norm": "standard"}),
    "mmgraph": ("mmgraph", {"embedding_size": 8, "knn_k": 5, "item_bias": True}),
    "mmgraph_two_layers": ("mmgraph", {"embedding_size": 8, "knn_k": 4, "n_mm_layers": 2,
                                       "feature_norm": "center_l2"}),
    # new items' margin and the users' activity gate are serving columns: a posted item carries them too
    "mmgraph_margin_gate": ("mmgraph", {"embedding_size": 8, "knn_k": 5, "item_bias": True, "cold_margin": 0.1,
                                        "cold_gate": 0.2}),
    # the content head scores new items; with cold_neighbours mixed with their warm content neighbours
    "mmgraph_head": ("mmgraph", {"embedding_size": 8, "knn_k": 5, "cold_dropout": 0.3}),
    "mmgraph_adaptive": ("mmgraph", {"embedding_size": 8, "knn_k": 5, "item_bias": True, "cold_dropout": 0.3,
                                     "head_detach": True, "cold_margin": 0.125, "cold_gate": 0.16,
                                     "cold_neighbours": 2.0}),
    "mmgraph_adaptive_no_graph": ("mmgraph", {"embedding_size": 8, "knn_k": 3, "modality_graph": False,
                                              "cold_dropout": 0.3, "cold_neighbours": 1.0,
                                              "modality_weights": {"text": 0.7, "image": 0.3}}),
}


@pytest.mark.parametrize("case", list(MODELS))
def test_cold_catalogue_items_get_the_models_own_vectors(case):
    ds = tiny_world()
    torch.manual_seed(0)
    name, params = MODELS[case]
    model = build_model(name, ds.train_data(), params)
    model.eval()
    placer = content_placer(model, ds)
    assert placer is not None
    with torch.no_grad():
        expected = model.item_embeddings().numpy()
    for j in COLD:
        vectors = {n: m.features[j] for n, m in ds.modalities.items() if m.mask[j]}
        np.testing.assert_allclose(placer.place(vectors, row=j), expected[j], atol=1e-5, rtol=1e-4)
    # a new item (not in the catalogue) with only a text vector still gets a vector of the right width
    new = placer.place({"text": np.ones(8, np.float32)})
    assert new.shape == expected[0].shape and np.isfinite(new).all()


def test_id_only_models_have_no_content_path():
    ds = tiny_world()
    assert content_placer(build_model("bpr", ds.train_data(), {"embedding_size": 8}), ds) is None
