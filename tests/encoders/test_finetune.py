"""Fine-tuning the text encoder with the recommender's loss (issue 9, acceptance 5).

Each mode trains two_tower for one step on a tiny BERT built in the test
(``tiny_text_model``): the trainable part (top layers / LoRA matrices / side adapter)
must change and everything declared frozen must not.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from fusionrec.data.dataset import FeatureModality, TrainData
from fusionrec.encoders.finetune.tower import TextTower
from fusionrec.errors import UserError
from fusionrec.models.two_tower import TwoTower
from fusionrec.train.optim import make_adam

from .conftest import WORDS, changed, snapshot

N_USERS, N_ITEMS = 12, 10


def tiny_data(dim: int = 32, seed: int = 0) -> TrainData:
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(N_ITEMS)],
                          "text": [" ".join(rng.choice(WORDS, 5)) for _ in range(N_ITEMS)]})
    items.loc[N_ITEMS - 1, "text"] = ""  # an item without text: it stays absent
    users = np.repeat(np.arange(N_USERS), 3)
    its = rng.integers(0, N_ITEMS - 2, len(users))  # the last two items are cold
    frame = pd.DataFrame({"user": users, "item": its, "label": 1.0})
    train = sp.csr_matrix((np.ones(len(users)), (users, its)), shape=(N_USERS, N_ITEMS))
    train.data[:] = 1.0
    mask = items["text"].str.len().to_numpy() > 0
    text = FeatureModality("text", "text", rng.standard_normal((N_ITEMS, dim)).astype(np.float32), mask)
    return TrainData(N_USERS, N_ITEMS, train, frame, {"text": text}, items)


def build(tiny_text_model, tmp_path, **tuning) -> TwoTower:
    torch.manual_seed(0)
    params = {"embedding_size": 8, "text_tuning": {"model_path": str(tiny_text_model), "max_seq_length": 16,
                                                   "cache_dir": str(tmp_path), "lr_mult": 1.0, **tuning}}
    return TwoTower(tiny_data(), params)


def one_step(model: TwoTower) -> None:
    model.train()
    opt = make_adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    batch = {"user": torch.arange(8), "pos_item": torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])}
    opt.zero_grad()
    model.calculate_loss(batch).backward()
    opt.step()


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_top_layers_train_and_bottom_stays(tiny_text_model, tmp_path, mode):
    if mode == "lora":
        pytest.importorskip("peft", reason="the finetune extra (peft) is not installed")
    model = build(tiny_text_model, tmp_path, mode=mode, layers=1, grad_items=4)
    tower = model.text_tower
    backbone = tower.backbone.model
    assert tower.cut == 1  # 2-layer model, top 1 trainable
    before = snapshot(backbone)
    one_step(model)
    diff = changed(before, snapshot(backbone))
    assert diff, "no encoder weight changed"
    assert all(k.startswith("encoder.layer.1.") for k in diff), diff  # embeddings and layer 0 untouched
    if mode == "lora":
        assert all("lora_" in k for k in diff), diff  # the pretrained matrices stay frozen
    else:
        assert any(k.endswith("attention.self.query.weight") for k in diff)
    # evaluation refreshes every item with the new weights: the bank differs from the frozen vectors
    frozen = tower.bank.clone()
    assert tower.stale
    model.eval()
    with torch.no_grad():
        model.full_sort_predict(torch.arange(3))
    assert not tower.stale and not torch.allclose(frozen, tower.bank)


def test_side_adapter_trains_only_the_adapter(tiny_text_model, tmp_path):
    model = build(tiny_text_model, tmp_path, mode="side_adapter", adapter_dim=8)
    tower = model.text_tower
    assert not any(p.requires_grad for p in tower.backbone.model.parameters())
    start = tower(training=False).clone()
    bb_before, ad_before = snapshot(tower.backbone.model), snapshot(tower.adapter)
    one_step(model)
    assert not changed(bb_before, snapshot(tower.backbone.model))
    assert "up.weight" in changed(ad_before, snapshot(tower.adapter))
    assert not torch.allclose(start, tower(training=False))


def test_tower_starts_from_the_frozen_encoder_and_caches(tiny_text_model, tmp_path):
    model = build(tiny_text_model, tmp_path, mode="side_adapter")
    tower = model.text_tower
    assert tower.cache_computed == N_ITEMS - 1  # one frozen pass for the items with text
    out = tower(training=False)
    assert torch.all(out[N_ITEMS - 1] == 0)  # no text: no vector
    # the zero-initialised adapter: standardised frozen sentence vectors of sentence-transformers
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(tiny_text_model), device="cpu")
    st.max_seq_length = 16
    raw = torch.from_numpy(st.encode(list(tiny_data().item_frame["text"][: N_ITEMS - 1])))
    expected = (raw - raw.mean(0)) / raw.std(0, unbiased=False)
    assert torch.allclose(out[: N_ITEMS - 1], expected, atol=1e-4)
    again = build(tiny_text_model, tmp_path, mode="full", layers=1)  # another cut: tokens read from the cache
    assert again.text_tower.cache_computed == N_ITEMS - 1
    third = build(tiny_text_model, tmp_path, mode="full", layers=1, lr_mult=0.5)
    assert third.text_tower.cache_computed == 0  # same cut as before: nothing recomputed


def test_lr_mult_gives_the_tower_its_own_learning_rate(tiny_text_model, tmp_path):
    model = build(tiny_text_model, tmp_path, mode="side_adapter", lr_mult=0.1)
    opt = make_adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([0.001, 0.01])
    tower_ids = {id(p) for p in model.text_tower.parameters() if p.requires_grad}
    small = next(g for g in opt.param_groups if g["lr"] == pytest.approx(0.001))
    assert {id(p) for p in small["params"]} == tower_ids


def test_unknown_modality_is_a_user_error(tiny_text_model, tmp_path):
    with pytest.raises(UserError, match="modality 'words'"):
        build(tiny_text_model, tmp_path, mode="side_adapter", modality="words")


def test_tower_module_is_usable_alone(tiny_text_model, tmp_path):
    from fusionrec.encoders.finetune import TextTuneParams

    hp = TextTuneParams(mode="full", model_path=str(tiny_text_model), cache_dir=str(tmp_path), max_seq_length=16)
    tower = TextTower(tiny_data(), hp)
    tower.focus(torch.tensor([0, 1, 9]))  # item 9 has no text: not re-encoded
    assert tower._focus.tolist() == [0, 1]
    out = tower(training=True)
    assert out.shape == (N_ITEMS, 32) and out.requires_grad


@pytest.mark.parametrize("mode", ["side_adapter", "full"])
def test_sequential_model_fine_tunes_the_text_tower(tiny_text_model, tmp_path, mode):
    from fusionrec.models.registry import build_model
    from fusionrec.train.sampling import make_sampler

    data = tiny_data()
    torch.manual_seed(0)
    model = build_model("mm_sasrec", data, {
        "embedding_size": 8, "n_heads": 1, "max_len": 5, "item_repr": "content",
        "text_tuning": {"mode": mode, "model_path": str(tiny_text_model), "max_seq_length": 16,
                        "cache_dir": str(tmp_path), "layers": 1, "lr_mult": 1.0}})
    tower = model.items.text_tower
    trainable = {k for k, p in tower.named_parameters() if p.requires_grad}
    before = snapshot(tower)
    batch = next(iter(make_sampler("sequence", data, 64, **model.sampler_options()).epoch(np.random.default_rng(0))))
    model.train()
    opt = make_adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    opt.zero_grad()
    model.calculate_loss(batch).backward()
    opt.step()
    diff = changed(before, snapshot(tower))
    assert diff and diff <= trainable | {"bank"}, diff  # only trainable weights (and the bank) moved


def test_cache_writers_keep_each_others_rows(tmp_path):
    from fusionrec.encoders.finetune.cache import _append, _load

    path = tmp_path / "pooled.pt"
    _append(path, ["a", "b"], {"pooled": torch.ones(2, 3)})
    # a second process that read the file before "a"/"b" existed adds "c" (and "b" again): nothing is lost
    _append(path, ["b", "c"], {"pooled": torch.full((2, 3), 2.0)})
    stored = _load(path)
    assert stored["keys"] == ["a", "b", "c"]
    assert stored["pooled"][:, 0].tolist() == [1.0, 1.0, 2.0]
