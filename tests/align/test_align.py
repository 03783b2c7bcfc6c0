"""Each alignment method does what it says, on synthetic paired views with known structure."""
from __future__ import annotations

import pytest
import torch

from fusionrec.align import (
    Aligner,
    CrossAttentionMatcher,
    FeatureTokenizer,
    InfoNCE,
    ModalityProjector,
    Projection,
    canonical_correlations,
    cca_loss,
    info_nce,
    retrieval_accuracy,
)


def _paired_views(n: int, latent: int, d1: int, d2: int, noise: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, latent, generator=g)
    w1 = torch.randn(latent, d1, generator=g)
    w2 = torch.randn(latent, d2, generator=g)
    a = torch.tanh(z @ w1) + noise * torch.randn(n, d1, generator=g)
    b = z @ w2 + noise * torch.randn(n, d2, generator=g)
    return z, a, b


def test_projection_shapes_and_normalisation():
    proj = ModalityProjector({"text": 12, "image": 30}, 8, kind="mlp", normalize=True)
    out = proj({"text": torch.randn(5, 12), "image": torch.randn(5, 30)})
    assert set(out) == {"text", "image"}
    for v in out.values():
        assert v.shape == (5, 8)
        assert torch.allclose(v.norm(dim=1), torch.ones(5), atol=1e-5)
    with pytest.raises(KeyError, match="image"):
        proj({"text": torch.randn(5, 12)})
    with pytest.raises(ValueError, match="kind"):
        Projection(3, 4, kind="conv")  # type: ignore[arg-type]


def test_info_nce_raises_pair_retrieval_from_chance_to_near_one():
    torch.manual_seed(0)
    _, a, b = _paired_views(n=512, latent=16, d1=32, d2=48, noise=0.1, seed=1)
    train, test = slice(0, 384), slice(384, 512)
    pa, pb = Projection(32, 32, "mlp"), Projection(48, 32, "linear")
    before = retrieval_accuracy(pa(a[test]), pb(b[test]))
    opt = torch.optim.Adam(list(pa.parameters()) + list(pb.parameters()), lr=3e-3)
    loss_fn = InfoNCE(temperature=0.1)
    for step in range(300):
        idx = torch.randint(0, 384, (128,))
        loss = loss_fn(pa(a[train][idx]), pb(b[train][idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = retrieval_accuracy(pa(a[test]), pb(b[test]))  # held-out pairs, 128 candidates
    assert before < 0.15, before  # chance is 1/128
    assert after > 0.9, after


def test_info_nce_content_to_id_places_cold_items_next_to_their_id_embeddings():
    """Content is aligned to ID embeddings of warm items; unseen (cold) items' content then
    retrieves their own collaborative embedding among the cold ones."""
    torch.manual_seed(0)
    z, content, _ = _paired_views(n=400, latent=8, d1=64, d2=8, noise=0.05, seed=2)
    id_emb = z @ torch.randn(8, 16, generator=torch.Generator().manual_seed(3))  # "collaborative" space
    warm, cold = slice(0, 300), slice(300, 400)
    proj = Projection(64, 16, "mlp")
    opt = torch.optim.Adam(proj.parameters(), lr=3e-3)
    before = retrieval_accuracy(proj(content[cold]), id_emb[cold])
    for _ in range(300):
        idx = torch.randint(0, 300, (128,))
        loss = info_nce(proj(content[warm][idx]), id_emb[warm][idx], temperature=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = retrieval_accuracy(proj(content[cold]), id_emb[cold])
    assert before < 0.15 and after > 0.8, (before, after)


def test_info_nce_mask_excludes_rows_and_learnable_temperature_is_bounded():
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    mask = torch.tensor([True, True, False, True, False, True])
    assert torch.isclose(info_nce(a, b, 0.2, mask), info_nce(a[mask], b[mask], 0.2))
    # a single remaining pair has no negatives: loss 0 but still differentiable
    a.requires_grad_(True)
    single = info_nce(a, b, 0.2, torch.tensor([True] + [False] * 5))
    single.backward()
    assert float(single.detach()) == 0.0
    nce = InfoNCE(0.2, learnable=True)
    with torch.no_grad():
        nce.log_temperature.fill_(-20.0)
    assert float(nce.temperature.detach()) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="equal shape"):
        info_nce(torch.randn(3, 4), torch.randn(3, 5))


def test_cca_loss_increases_canonical_correlation_of_correlated_views():
    torch.manual_seed(0)
    _, a, b = _paired_views(n=1200, latent=4, d1=20, d2=20, noise=0.3, seed=4)
    train, test = slice(0, 900), slice(900, 1200)
    f1 = Projection(20, 4, "mlp", hidden=32)
    f2 = Projection(20, 4, "mlp", hidden=32)

    def corr(sl):
        with torch.no_grad():
            return float(canonical_correlations(f1(a[sl]), f2(b[sl])).mean())

    before = corr(test)
    opt = torch.optim.Adam(list(f1.parameters()) + list(f2.parameters()), lr=3e-3)
    for _ in range(250):
        idx = torch.randint(0, 900, (256,))
        loss = cca_loss(f1(a[train][idx]), f2(b[train][idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = corr(test)
    assert after > before + 0.15, (before, after)
    assert after > 0.85, after
    # sanity: identical views have canonical correlations of ~1
    x = torch.randn(200, 3)
    assert torch.allclose(canonical_correlations(x, x, eps=1e-6), torch.ones(3), atol=1e-3)


def test_cross_attention_matching_scores_matched_pairs_above_mismatched():
    torch.manual_seed(0)
    _, a, b = _paired_views(n=600, latent=12, d1=32, d2=40, noise=0.1, seed=5)
    train, test = slice(0, 450), slice(450, 600)
    ta, tb = FeatureTokenizer(32, 4, 16), FeatureTokenizer(40, 4, 16)
    matcher = CrossAttentionMatcher(16, temperature=0.1)
    params = list(ta.parameters()) + list(tb.parameters()) + list(matcher.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    for _ in range(250):
        idx = torch.randint(0, 450, (64,))
        loss = matcher.loss(ta(a[train][idx]), tb(b[train][idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        s = matcher.score_matrix(ta(a[test]), tb(b[test]))
        matched = s.diag()
        off = s[~torch.eye(len(s), dtype=torch.bool)]
        top1 = float((s.argmax(dim=1) == torch.arange(len(s))).float().mean())
        pair_scores = matcher.score(ta(a[test][:5]), tb(b[test][:5]))
    assert float(matched.mean()) > float(off.mean()) + 0.3
    assert top1 > 0.85, top1
    assert torch.allclose(pair_scores, matched[:5], atol=1e-5)


def test_cross_attention_ignores_masked_tokens():
    matcher = CrossAttentionMatcher(8)
    a, b = torch.randn(3, 2, 8), torch.randn(3, 3, 8)
    b_mask = torch.tensor([[True, True, False]] * 3)
    s1 = matcher.score_matrix(a, b, b_mask=b_mask)
    b2 = b.clone()
    b2[:, 2] = 100.0  # garbage in the absent token must not matter
    s2 = matcher.score_matrix(a, b2, b_mask=b_mask)
    assert torch.allclose(s1, s2, atol=1e-6)
    assert torch.allclose(s1, matcher.score_matrix(a, b[:, :2]), atol=1e-6)


@pytest.mark.parametrize("method", ["infonce", "cca", "matching"])
def test_aligner_methods_give_trainable_losses(method):
    torch.manual_seed(0)
    names = ["text", "image"]
    aligner = Aligner(method, names, dim=8, with_id=True)
    views = {n: torch.randn(16, 8, requires_grad=True) for n in names}
    masks = {"text": torch.ones(16, dtype=torch.bool), "image": torch.arange(16) % 4 != 0}
    content = (views["text"] + views["image"]) / 2
    id_emb = torch.randn(16, 8, requires_grad=True)
    loss = aligner(views, masks, content=content, id_emb=id_emb, id_mask=torch.arange(16) < 12)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert views["image"].grad is not None and id_emb.grad is not None
    # rows without an image receive no gradient from image-text terms; cold items none from the ID term
    assert torch.all(id_emb.grad[12:] == 0)


def test_aligner_none_is_zero_and_unknown_method_is_rejected():
    aligner = Aligner("none", ["text"], dim=4)
    v = {"text": torch.randn(3, 4)}
    assert float(aligner(v, {"text": torch.ones(3, dtype=torch.bool)})) == 0.0
    with pytest.raises(ValueError, match="one of"):
        Aligner("clip", ["text"], dim=4)
