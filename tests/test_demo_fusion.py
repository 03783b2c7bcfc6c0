"""On the demo shop, fusing text and image beats either modality alone.

The demo's users care about traits that only the text shows (category, material)
and traits that only the image shows (colour, shape), plus an interaction term
that needs both (see fusionrec.data.demo). The multimodal pipeline is run for
real: demo shop -> MiniLM text + EfficientNet-Lite0 image features (through the
feature store cache) -> the same two-tower model with text only, image only and
text+image. Content-only item towers (``use_id: false``) are used so that the
comparison measures the modalities, not the collaborative ID embeddings.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.config import TrainConfig
from fusionrec.evaluate import Evaluator
from fusionrec.experiments.multimodal_demo import multimodal_demo_dataset
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer, seed_everything

SEEDS = (0, 1)
PARAMS = {"use_id": False, "embedding_size": 32, "fusion": "attention", "align": "infonce",
          "align_weight": 0.1, "history": "mean", "modality_dropout": 0.1}


@pytest.fixture(scope="module")
def demo():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    ds = multimodal_demo_dataset(n_users=600, n_items=300, seed=0)
    yield ds
    torch.set_num_threads(previous)


def _test_recall(ds, modalities: list[str], seed: int) -> float:
    seed_everything(seed)
    data = ds.train_data(modalities)
    model = build_model("two_tower", data, PARAMS)
    ev = Evaluator(ds, ks=(20,), protocol="full")
    cfg = TrainConfig(epochs=20, patience=3, lr=0.005, batch_size=512, checkpoint=False, progress=False,
                      valid_metric="recall@20")
    Trainer(model, data, cfg, evaluator=ev, seed=seed).fit()       # early stopping on valid
    return ev.evaluate(model, "test")["recall@20"]


def test_demo_has_both_modalities(demo):
    assert {"text", "image"} <= set(demo.modalities)
    assert demo.modalities["text"].coverage > 0.95 and demo.modalities["image"].coverage > 0.95


def test_text_plus_image_fusion_beats_each_modality_alone(demo):
    scores = {name: float(np.mean([_test_recall(demo, mods, s) for s in SEEDS]))
              for name, mods in {"text": ["text"], "image": ["image"], "text+image": ["text", "image"]}.items()}
    best_single = max(scores["text"], scores["image"])
    assert scores["text+image"] > best_single * 1.05, scores
