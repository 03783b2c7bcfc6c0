"""Every fusion and alignment option of two_tower is selectable from config and trains (acceptance 4)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.align.aligner import ALIGN_METHODS
from fusionrec.config import TrainConfig, resolve_config
from fusionrec.fuse import borda_fusion, reciprocal_rank_fusion
from fusionrec.models.registry import build_model
from fusionrec.models.two_tower_params import LOSSES, TWO_TOWER_FUSIONS
from fusionrec.train.trainer import Trainer, seed_everything
from tests.models.worlds import typed_world

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world():
    return typed_world(1, 120, 150, 10, text_dim=12, image_dim=8, image_missing=0.3)


def _one_epoch(world, overrides: list[str]):
    cfg = resolve_config(model="two_tower", overrides=["model.params.embedding_size=16"] + overrides)
    seed_everything(0)
    model = build_model(cfg.model.name, world.train_data(), cfg.model.params)
    train = TrainConfig(epochs=1, lr=0.01, batch_size=128, checkpoint=False, progress=False)
    result = Trainer(model, world.train_data(), train, evaluator=None, seed=0).fit()
    model.eval()
    return model, result


@pytest.mark.parametrize("fusion", TWO_TOWER_FUSIONS)
def test_each_fusion_trains_one_epoch_from_config(world, fusion):
    model, result = _one_epoch(world, [f"model.params.fusion={fusion}"])
    assert model.hp.fusion == fusion and np.isfinite(result.history[0]["loss"])
    scores = model.full_sort_predict(torch.arange(6))
    assert scores.shape == (6, world.n_items) and torch.isfinite(scores).all()
    # inner-product fusions export embeddings for ANN serving; the others say they cannot
    assert (model.item_embeddings() is None) == (fusion in ("rrf", "borda", "user_attention"))


@pytest.mark.parametrize("align", ALIGN_METHODS)
def test_each_alignment_trains_one_epoch_from_config(world, align):
    model, result = _one_epoch(world, [f"model.params.align={align}", "model.params.align_weight=0.5"])
    assert model.hp.align == align and np.isfinite(result.history[0]["loss"])
    assert model.aligner.method == align


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("fusion", ["attention", "rrf", "user_attention"])
def test_each_loss_trains_with_item_level_and_decision_level_fusion(world, loss, fusion):
    model, result = _one_epoch(world, [f"model.params.loss={loss}", f"model.params.fusion={fusion}"])
    assert np.isfinite(result.history[0]["loss"])
    assert torch.isfinite(model.full_sort_predict(torch.arange(3))).all()


def test_rank_fusion_fuses_the_scorers_rankings(world):
    for fusion in ("rrf", "borda"):
        model, _ = _one_epoch(world, [f"model.params.fusion={fusion}"])
        item_vecs, extras = model._item_vectors(training=False)
        users = torch.arange(5)
        mats = model._score_matrices(model._user_vectors(users, item_vecs), None, item_vecs, extras)
        assert len(mats) == 3                                   # ID, text, image scorers
        masks = [world.train_data().item_popularity > 0, world.modalities["text"].mask,
                 world.modalities["image"].mask]
        expect = (reciprocal_rank_fusion(mats, k=60.0, item_masks=masks) if fusion == "rrf"
                  else borda_fusion(mats, item_masks=masks))
        assert np.allclose(model.full_sort_predict(users).numpy(), expect, atol=1e-6)


def test_user_attention_weighs_modalities_per_user(world):
    model, _ = _one_epoch(world, ["model.params.fusion=user_attention"])
    with torch.no_grad():
        torch.nn.init.normal_(model.fusion.query.weight)       # a visible user term
        item_vecs, extras = model._item_vectors(training=False)
        u = model._user_vectors(torch.arange(4), item_vecs)
        w = model.fusion.pair_weights(u, extras["views"], extras["masks"])
        assert w.shape == (4, world.n_items, 2)
        assert not torch.allclose(w[0], w[1])
        # no image: all weight on the text view, whoever asks
        no_img = ~torch.from_numpy(world.modalities["image"].mask)
        assert torch.allclose(w[:, no_img, 0], torch.ones(1))
        # the factorised cosine equals the explicit one for a (user, item) pair
        i = 7
        v = extras["id_vec"][i] + (w[2, i, :, None] * torch.stack([extras["views"][n][i] * extras["masks"][n][i]
                                                                  for n in ("text", "image")])).sum(0)
        explicit = torch.nn.functional.cosine_similarity(u[2], v, dim=0)
        assert torch.allclose(model.full_sort_predict(torch.tensor([2]))[0, i], explicit, atol=1e-5)


def test_item_bias_is_served_as_an_extra_column(world):
    model, _ = _one_epoch(world, ["model.params.item_bias=true"])
    with torch.no_grad():
        model.bias.add_(torch.randn(world.n_items))              # a visible bias
    users = torch.arange(4)
    scores = model.full_sort_predict(users)
    assert torch.allclose(model.user_embeddings()[users] @ model.item_embeddings().T, scores, atol=1e-5)
    cold = torch.from_numpy(world.cold)
    # items never trained on carry the mean warm bias, exactly what a newly placed item gets
    col = model.item_embeddings()[:, -1]
    assert torch.allclose(col[cold], col[~cold].mean().expand(int(cold.sum())), atol=1e-6)
    feats, masks = model.inputs.gather(torch.nonzero(cold)[:3, 0])
    assert torch.allclose(model.place_content(feats, masks), model.item_embeddings()[cold][:3], atol=1e-5)
