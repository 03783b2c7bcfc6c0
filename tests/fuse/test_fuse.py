"""Fusion modules: mask handling (exclude, never impute), learning, decision-level fusion."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionrec.fuse import (
    FUSIONS,
    ConcatFusion,
    JointFusion,
    ScoreFusion,
    borda_fusion,
    build_fusion,
    modality_dropout,
    reciprocal_rank_fusion,
)

NAMES = ["text", "image", "audio"]


def _views(b=6, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(b, d, generator=g) for n in NAMES}


def _masks(b=6):
    return {
        "text": torch.ones(b, dtype=torch.bool),
        "image": torch.tensor([True, False, True, False, True, True])[:b],
        "audio": torch.tensor([True, True, False, False, True, True])[:b],
    }


@pytest.mark.parametrize("name", FUSIONS)
def test_absent_modality_values_never_matter(name):
    torch.manual_seed(0)
    fusion = build_fusion(name, NAMES, 8).eval()
    views, masks = _views(), _masks()
    user = torch.randn(6, 8)
    out = fusion(views, masks, user=user)
    garbage = {n: v.clone() for n, v in views.items()}
    for n in NAMES:
        garbage[n][~masks[n]] = 1e3  # whatever sits in an absent row must be ignored
    assert out.shape == (6, fusion.out_dim)
    assert torch.allclose(out, fusion(garbage, masks, user=user), atol=1e-5)
    # no modality at all -> zero vector (no content signal), not a bias or a mean
    none = {n: torch.zeros(6, dtype=torch.bool) for n in NAMES}
    assert torch.allclose(fusion(views, none, user=user), torch.zeros(6, fusion.out_dim), atol=1e-6)


@pytest.mark.parametrize("name", ["weighted_sum", "attention", "user_attention", "gated"])
def test_item_with_one_present_modality_gets_exactly_that_modality(name):
    torch.manual_seed(1)
    fusion = build_fusion(name, NAMES, 8)
    views = _views()
    only_text = {"text": torch.ones(6, dtype=torch.bool), "image": torch.zeros(6, dtype=torch.bool),
                 "audio": torch.zeros(6, dtype=torch.bool)}
    out = fusion(views, only_text, user=torch.randn(6, 8))
    assert torch.allclose(out, views["text"], atol=1e-5)


def test_weights_renormalise_over_present_modalities():
    fusion = build_fusion("weighted_sum", NAMES, 8)
    with torch.no_grad():
        fusion.logits.copy_(torch.tensor([0.0, 1.0, 2.0]))
    w = fusion.weights(_views(), _masks())
    assert torch.allclose(w.sum(dim=1), torch.ones(6))
    full = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    assert torch.allclose(w[0], full)
    # item 1 has text + audio: weights are those two renormalised, image gets 0
    expect = torch.tensor([full[0], 0.0, full[2]]) / (full[0] + full[2])
    assert torch.allclose(w[1], expect, atol=1e-6)


def test_concat_and_joint_equal_fusing_only_the_present_modalities():
    torch.manual_seed(2)
    views = _views()
    masks = {"text": torch.ones(6, dtype=torch.bool), "image": torch.zeros(6, dtype=torch.bool),
             "audio": torch.ones(6, dtype=torch.bool)}
    present = ["text", "audio"]
    concat = ConcatFusion(NAMES, 8)
    small = ConcatFusion(present, 8)
    with torch.no_grad():
        w = concat.linear.weight
        small.linear.weight.copy_(torch.cat([w[:, 0:8], w[:, 16:24]], dim=1))
    assert torch.allclose(concat(views, masks), small(views, {n: masks[n] for n in present}), atol=1e-5)

    joint = JointFusion(NAMES, 8).eval()
    joint_small = JointFusion(present, 8).eval()
    with torch.no_grad():
        joint_small.cls.copy_(joint.cls)
        joint_small.type_emb.copy_(joint.type_emb[[0, 2]])
        joint_small.encoder.load_state_dict(joint.encoder.state_dict())
    assert torch.allclose(joint(views, masks), joint_small(views, {n: masks[n] for n in present}), atol=1e-5)


def test_modality_dropout_keeps_one_present_and_never_revives_absent():
    g = torch.Generator().manual_seed(0)
    n = 4000
    masks = {"text": torch.rand(n, generator=g) < 0.9, "image": torch.rand(n, generator=g) < 0.8}
    masks["text"] |= ~masks["image"]  # every item has at least one modality
    out = modality_dropout(masks, p=0.3, generator=g)
    for k in masks:
        assert not (out[k] & ~masks[k]).any(), "dropout must never create a modality"
    kept_any = torch.stack(list(out.values())).any(dim=0)
    assert kept_any.all()
    both = masks["text"] & masks["image"]
    rate = 1 - out["image"][both].float().mean().item()
    assert 0.2 < rate < 0.4, rate
    assert all(torch.equal(out[k], masks[k]) for k in masks) is False
    same = modality_dropout(masks, p=0.3, training=False)
    assert all(torch.equal(same[k], masks[k]) for k in masks)


def test_weighted_sum_learns_to_trust_the_informative_modality():
    torch.manual_seed(0)
    fusion = build_fusion("weighted_sum", ["text", "image"], 8)
    opt = torch.optim.Adam(fusion.parameters(), lr=0.05)
    for _ in range(150):
        target = torch.randn(64, 8)
        views = {"text": target + 0.1 * torch.randn(64, 8), "image": torch.randn(64, 8)}
        loss = ((fusion(views, None) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = torch.softmax(fusion.logits.detach(), 0)
    assert w[0] > 0.85, w


def test_user_conditioned_attention_learns_per_user_preferences():
    """Users of type 0 care about text, of type 1 about image: the weights must follow the user."""
    torch.manual_seed(0)
    fusion = build_fusion("user_attention", ["text", "image"], 8, user_dim=2)
    opt = torch.optim.Adam(fusion.parameters(), lr=0.02)
    for _ in range(300):
        utype = torch.randint(0, 2, (128,))
        user = torch.nn.functional.one_hot(utype, 2).float()
        views = {"text": torch.randn(128, 8), "image": torch.randn(128, 8)}
        target = torch.where(utype[:, None] == 0, views["text"], views["image"])
        loss = ((fusion(views, None, user=user) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    users = torch.eye(2)
    views = {"text": torch.randn(2, 8), "image": torch.randn(2, 8)}
    w = fusion.weights(views, None, user=users).detach()
    assert w[0, 0] > 0.8 and w[1, 1] > 0.8, w
    with pytest.raises(ValueError, match="user"):
        fusion(views, None)


def test_score_fusion_renormalises_per_item():
    sf = ScoreFusion(["text", "image"])
    with torch.no_grad():
        sf.logits.copy_(torch.tensor([0.0, 0.0]))
    scores = {"text": torch.tensor([[1.0, 2.0, 3.0]]), "image": torch.tensor([[3.0, 0.0, 5.0]])}
    masks = {"text": torch.tensor([True, True, False]), "image": torch.tensor([True, False, True])}
    out = sf(scores, masks)
    assert torch.allclose(out, torch.tensor([[2.0, 2.0, 5.0]]))


def test_reciprocal_rank_and_borda_fusion():
    a = np.array([[3.0, 2.0, 1.0]])   # ranks 1,2,3
    b = np.array([[1.0, 3.0, 2.0]])   # ranks 3,1,2
    rrf = reciprocal_rank_fusion([a, b], k=0)
    assert np.allclose(rrf, [[1 + 1 / 3, 1 / 2 + 1, 1 / 3 + 1 / 2]])
    assert np.argmax(rrf) == 1
    borda = borda_fusion([a, torch.tensor(b)])
    assert np.allclose(borda, [[0.5, 0.75, 0.25]])
    # item 2 lacks the second modality: only the first ranking votes for it
    borda_m = borda_fusion([a, b], item_masks=[None, np.array([True, True, False])])
    assert np.isclose(borda_m[0, 2], 0.0)
    rrf_m = reciprocal_rank_fusion([a, b], k=0, item_masks=[None, np.array([True, True, False])])
    assert np.isclose(rrf_m[0, 2], 1 / 3)
    with pytest.raises(ValueError):
        borda_fusion([])


def test_unknown_fusion_is_rejected():
    with pytest.raises(ValueError, match="one of"):
        build_fusion("bilinear", NAMES, 8)
