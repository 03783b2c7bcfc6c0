"""Every tensor a model holds moves with ``model.to(device)`` (train.device, docs/guide/device.md).

``nn.Module.to`` moves parameters and buffers only; a tensor kept as a plain attribute -- a sparse
graph, a history matrix, a lookup table, a cached vector, a sampler's CDF -- would stay on the CPU
and break the first GPU step. No GPU is needed to prove it: after one epoch of training and one
scoring pass (which fill the caches), the model is moved to the ``meta`` device and every tensor
reachable from it (attributes of every submodule, tuples / lists / dicts of them, and helper objects
of fusionrec) must be there too; only names a model declares in ``host_tensors`` may stay.
"""
from __future__ import annotations

from typing import Any

import pytest
import torch

from fusionrec.config import TrainConfig
from fusionrec.models.registry import available_models, build_model
from fusionrec.train import Trainer, seed_everything
from tests.encoders.conftest import tiny_text_model  # noqa: F401  (a fixture: a 2-layer BERT on disk)
from tests.encoders.test_finetune_image import tiny_images  # noqa: F401  (a fixture: random EfficientNet, images)
from tests.models.worlds import typed_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ONE_EPOCH = TrainConfig(epochs=1, batch_size=64, lr=0.01, checkpoint=False, progress=False, num_threads=1,
                        device="cpu")

# defaults of every model, plus the options that keep more derived tensors (samplers, graphs, heads)
CASES: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in available_models()] + [
    ("mmgraph", {"loss": "sampled_softmax", "negative_sampler": "popularity", "edge_dropout": 0.2,
                 "cold_dropout": 0.3, "head_detach": True, "cold_neighbours": 0.5, "cold_gate": 0.1,
                 "cold_margin": 0.1}),
    ("two_tower", {"full_softmax_max_items": 0, "sampled_negatives": 8, "negative_sampler": "popularity"}),
    ("two_tower", {"history": "transformer"}),
    ("multitask", {"shared_fields": False}),
    ("sasrec", {"loss": "sampled"}),
]


@pytest.fixture(scope="module")
def world():
    ds = typed_world(5, n_users=36, n_items=30, k=3, text_dim=8, image_dim=6, image_missing=0.3)
    ds.interactions["rating"] = (1 + (ds.interactions["user"] + ds.interactions["item"]) % 5).astype("float32")
    return ds


def left_behind(root: torch.nn.Module, device: str) -> list[str]:
    """Paths of the tensors reachable from ``root`` that are not on ``device`` (``host_tensors`` excepted)."""
    found: list[str] = []
    seen: set[int] = set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            if obj.device.type != device:
                found.append(f"{path} ({obj.device.type}, {tuple(obj.shape)}, {obj.layout})")
            return
        if isinstance(obj, torch.nn.Module):
            host = set(getattr(obj, "host_tensors", ()))
            for key, value in vars(obj).items():
                if key not in host:
                    walk(value, f"{path}.{key}", depth + 1)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                walk(value, f"{path}[{key!r}]", depth + 1)
        elif isinstance(obj, (list, tuple, set)):
            for i, value in enumerate(obj):
                walk(value, f"{path}[{i}]", depth + 1)
        elif type(obj).__module__.startswith("fusionrec") and hasattr(obj, "__dict__"):
            for key, value in vars(obj).items():
                walk(value, f"{path}.{key}", depth + 1)

    walk(root, root.name if hasattr(root, "name") else "model", 0)
    return found


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_every_tensor_follows_the_model(name, params, world):
    seed_everything(0)
    data = world.train_data()
    model = build_model(name, data, params)
    Trainer(model, data, ONE_EPOCH, evaluator=None, seed=0).fit()
    model.eval()
    with torch.no_grad():
        model.full_sort_predict(torch.tensor([0, 3, 7]))   # fills inference caches
        if hasattr(model, "item_embeddings"):
            model.item_embeddings()
    model.to("meta")
    assert left_behind(model, "meta") == []
    for module in model.modules():   # what a model keeps on the host on purpose stays there
        for key in getattr(module, "host_tensors", ()):
            value = getattr(module, key, None)
            assert value is None or value.device.type == "cpu", f"{name}: {key} left the host"


def test_the_walker_finds_a_plain_tensor_left_behind(world):
    """The check above can fail: a tensor attribute of a plain nn.Module is not moved by torch."""
    holder = torch.nn.Module()
    holder.table = torch.zeros(3)
    holder.inner = torch.nn.Linear(2, 2)
    holder.to("meta")
    assert left_behind(holder, "meta") == ["model.table (cpu, (3,), torch.strided)"]


@pytest.mark.parametrize("name", ["bpr", "vbpr"])
def test_a_step_and_a_scoring_pass_run_on_another_device(name, world):
    """The trainer's path end to end on the ``meta`` device (a stand-in for a GPU: it mixes with no CPU
    tensor): a host-drawn batch moved with ``to_device``, the loss and the scores made under
    ``compute_on``. Models whose steps read values back (``.item()``, sparse products) stop at meta's
    own limits; for them the test above and ``bench/gpu_check.py`` on a GPU are the check."""
    import numpy as np

    from fusionrec.train.device import compute_on, to_device
    from fusionrec.train.sampling import make_sampler

    seed_everything(0)
    data = world.train_data()
    model = build_model(name, data, {}).to("meta")
    meta = torch.device("meta")
    batch = next(iter(make_sampler(type(model).batch_kind, data, 64, model.num_negatives).epoch(
        np.random.default_rng(0))))
    with compute_on(meta):
        loss = model.calculate_loss(to_device(batch, meta))
        model.eval()
        scores = model.full_sort_predict(torch.tensor([0, 3]).to(meta))
    assert loss.device == meta and scores.device == meta and tuple(scores.shape) == (2, world.n_items)


@pytest.mark.parametrize("mode", ["full", "lora", "side_adapter"])
def test_a_fine_tuned_text_tower_follows_the_model(tiny_text_model, tmp_path, mode):  # noqa: F811 (the fixture)
    """two_tower with its text encoder fine-tuned (the bench/gpu_check.py model): the trainable layers,
    the LoRA matrices, the cached token states, the bank and the item -> row map all move."""
    if mode == "lora":
        pytest.importorskip("peft", reason="the finetune extra (peft) is not installed")
    from fusionrec.models.two_tower import TwoTower
    from tests.encoders.test_finetune import one_step, tiny_data

    torch.manual_seed(0)
    model = TwoTower(tiny_data(), {"embedding_size": 8, "text_tuning": {
        "mode": mode, "layers": 1, "grad_items": 4, "model_path": str(tiny_text_model), "max_seq_length": 16,
        "cache_dir": str(tmp_path)}})
    one_step(model)
    model.eval()
    with torch.no_grad():
        model.full_sort_predict(torch.arange(3))   # refreshes the bank
    model.to("meta")
    # the frozen encoder below the trainable layers is not part of the model (its outputs are cached
    # in the tower's buffers), so it stays on the host; everything else must move
    left = [p for p in left_behind(model, "meta") if "['text_tower'].backbone." not in p]
    assert left == []
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.device.type == "meta" for p in trainable)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_a_fine_tuned_image_tower_follows_the_model(tiny_images, tmp_path, mode):  # noqa: F811 (the fixture)
    """The image side: the trainable blocks and head, the cached feature maps, the bank all move."""
    if mode == "lora":
        pytest.importorskip("peft", reason="the finetune extra (peft) is not installed")
    from tests.encoders.test_finetune_image import build, one_step

    model = build(tiny_images, tmp_path, mode=mode, blocks=1)
    one_step(model)
    model.eval()
    with torch.no_grad():
        model.full_sort_predict(torch.arange(3))
    model.to("meta")
    assert [p for p in left_behind(model, "meta") if "['image_tower'].backbone." not in p] == []
