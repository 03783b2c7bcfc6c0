"""Fine-tuning the image encoder with the recommender's loss (issue 9, acceptance 5, image part).

Each mode trains two_tower for one step on an EfficientNet-Lite0 with random weights
saved in the test, over small generated images: the trainable part (last block and
head / their LoRA matrices) must change and everything declared frozen must not.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from fusionrec.data.dataset import FeatureModality, TrainData
from fusionrec.encoders.finetune import ImageTower, ImageTuneParams
from fusionrec.errors import UserError
from fusionrec.models.two_tower import TwoTower
from fusionrec.train.optim import make_adam

from .conftest import changed, snapshot

N_USERS, N_ITEMS, SIDE = 12, 10, 64


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory):
    """Random-weight EfficientNet-Lite0 checkpoint, 9 item images (item 9 has none) and their frozen features."""
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image

    from fusionrec.encoders.image import EfficientNetLiteEncoder

    folder = tmp_path_factory.mktemp("tiny_effnet")
    torch.manual_seed(0)
    net = EfficientNet.from_name("efficientnet-lite0", drop_connect_rate=0.0)
    # batch-norm statistics from one batch, so activations keep their scale through the random network
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = None
    with torch.no_grad():
        net.train()(torch.randn(16, 3, SIDE, SIDE))
    torch.save(net.eval().state_dict(), folder / "lite0.pth")
    rng = np.random.default_rng(0)
    (folder / "images").mkdir()
    for j in range(N_ITEMS - 1):
        pixels = rng.integers(0, 256, (SIDE + 8, SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{j}.png")
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(N_ITEMS)],
                          "image_path": [f"images/{j}.png" for j in range(N_ITEMS - 1)] + [None]})
    enc = EfficientNetLiteEncoder(weights_path=folder / "lite0.pth", resize=SIDE, crop=SIDE)
    with contextlib.redirect_stdout(io.StringIO()):
        feats = enc.encode([enc.load(str(folder / "images" / f"{j}.png")) for j in range(N_ITEMS - 1)])
    return folder, items, np.vstack([feats, np.zeros((1, feats.shape[1]), np.float32)])


def tiny_data(tiny_images) -> TrainData:
    folder, items, feats = tiny_images
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(N_USERS), 3)
    its = rng.integers(0, N_ITEMS - 2, len(users))
    frame = pd.DataFrame({"user": users, "item": its, "label": 1.0})
    train = sp.csr_matrix((np.ones(len(users)), (users, its)), shape=(N_USERS, N_ITEMS))
    train.data[:] = 1.0
    image = FeatureModality("image", "image", feats, np.arange(N_ITEMS) < N_ITEMS - 1)
    return TrainData(N_USERS, N_ITEMS, train, frame, {"image": image}, items, root=folder)


def build(tiny_images, tmp_path, **tuning) -> TwoTower:
    torch.manual_seed(0)
    folder = tiny_images[0]
    params = {"embedding_size": 8, "image_tuning": {"weights_path": str(folder / "lite0.pth"), "resize": SIDE,
                                                    "crop": SIDE, "cache_dir": str(tmp_path), "lr_mult": 1.0,
                                                    "grad_items": 4, **tuning}}
    with contextlib.redirect_stdout(io.StringIO()):  # the weights loader prints
        return TwoTower(tiny_data(tiny_images), params)


def one_step(model: TwoTower) -> None:
    model.train()
    opt = make_adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    opt.zero_grad()
    model.calculate_loss({"user": torch.arange(8), "pos_item": torch.arange(8)}).backward()
    opt.step()


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_last_block_and_head_train_and_the_rest_stays(tiny_images, tmp_path, mode):
    if mode == "lora":
        pytest.importorskip("peft", reason="the finetune extra (peft) is not installed")
    model = build(tiny_images, tmp_path, mode=mode, blocks=1)
    tower = model.image_tower
    assert tower.cut == 15  # Lite0 has 16 blocks: the last one (and the head) trainable
    backbone, maps = snapshot(tower.backbone.model), tower.maps.clone()
    top_before = snapshot(tower.top)
    trainable = {k for k, p in tower.top.named_parameters() if p.requires_grad}
    one_step(model)
    diff = changed(top_before, snapshot(tower.top))
    assert diff and diff <= trainable, diff  # only trainable weights moved
    assert any(k.startswith("_conv_head.") for k in diff) and any(k.startswith("_blocks.0.") for k in diff)
    if mode == "lora":
        assert trainable and all("lora_" in k for k in trainable)  # the pretrained convs stay frozen
    else:
        assert "_blocks.0._project_conv.weight" in diff
    assert not changed(backbone, snapshot(tower.backbone.model))  # stem, lower blocks: the pretrained network
    assert torch.equal(maps, tower.maps)  # the cached input maps are never touched
    # scoring refreshes every item with the new weights: the bank leaves the frozen features
    frozen = tower.bank.clone()
    assert tower.stale
    model.eval()
    with torch.no_grad():
        model.full_sort_predict(torch.arange(3))
    assert not tower.stale and not torch.allclose(frozen, tower.bank)


def test_tower_starts_at_the_frozen_features_and_caches(tiny_images, tmp_path):
    model = build(tiny_images, tmp_path, mode="full")
    tower = model.image_tower
    assert tower.cache_computed == N_ITEMS - 1  # one frozen pass per image
    out = tower(training=False)
    raw = torch.from_numpy(tiny_images[2][: N_ITEMS - 1])  # what the image encoder stores
    expected = (raw - raw.mean(0)) / raw.std(0, unbiased=False).clamp_min(1e-8)
    assert torch.allclose(out[: N_ITEMS - 1], expected, atol=1e-3)
    assert torch.all(out[N_ITEMS - 1] == 0)  # no image: no vector
    # the trainable part at its initial weights reproduces the frozen features from the cached float16 maps
    again = tower._encode_rows(torch.arange(N_ITEMS - 1)).detach()
    assert torch.allclose(again, raw, atol=2e-2 * float(raw.abs().max()))
    assert build(tiny_images, tmp_path, mode="lora").image_tower.cache_computed == 0  # same cut: from disk
    assert build(tiny_images, tmp_path, mode="full", blocks=2).image_tower.cache_computed == N_ITEMS - 1


def test_lora_on_a_depthwise_conv_is_a_user_error(tiny_images, tmp_path):
    pytest.importorskip("peft", reason="the finetune extra (peft) is not installed")
    with pytest.raises(UserError, match="only 1x1 convolutions"):
        build(tiny_images, tmp_path, mode="lora", lora_targets=["_depthwise_conv"])


def test_tower_alone_and_batch_local_focus(tiny_images, tmp_path):
    folder = tiny_images[0]
    hp = ImageTuneParams(mode="full", weights_path=str(folder / "lite0.pth"), resize=SIDE, crop=SIDE,
                         cache_dir=str(tmp_path), grad_items=2)
    with contextlib.redirect_stdout(io.StringIO()):
        tower = ImageTower(tiny_data(tiny_images), hp)
    feats = {"image": torch.zeros(3, 1280)}
    out = tower.replace(feats, torch.tensor([0, 1, 9]), "image", training=True)  # no focus(): items given
    assert out["image"].shape == (3, 1280) and out["image"].requires_grad
    with pytest.raises(UserError, match="modality 'poster'"):
        build(tiny_images, tmp_path, mode="full", modality="poster")
