"""The benchmark presets carry the encoders their published numbers were made with."""
from __future__ import annotations

import pytest

from fusionrec.config import resolve_config
from fusionrec.encoders.ensure import build_spec_encoders, encoder_spec


def test_ml1m_preset_names_the_headline_encoders_and_settings():
    cfg = resolve_config(dataset="ml1m", model="content_cf", overrides=["data.modalities=[text]"])
    spec = encoder_spec(cfg.data, None)
    assert spec["text"] == {"name": "minilm", "params": {"template": "{title}. {genres}. {plot}"}}
    assert spec["image"]["name"] == "efficientnet-lite0"
    params = dict(cfg.model.params)
    assert {k: params[k] for k in ("projection", "fusion", "feature_dropout", "history_dropout")} == {
        "projection": "linear", "fusion": "attention", "feature_dropout": 0.5, "history_dropout": 0.5}
    assert (cfg.train.epochs, cfg.train.patience, cfg.train.batch_size, cfg.train.lr) == (40, 4, 512, 0.002)
    assert cfg.eval.candidates == "test_items" and cfg.data.modalities == ["text"]


@pytest.mark.shared_data
def test_ml100k_own_reads_no_reference_npy_and_renders_the_reference_text(shared_data):
    from fusionrec.data.loading import load_dataset, load_preset

    cfg = resolve_config(dataset="ml100k-own", model="mmgraph")
    own = load_dataset(cfg.data)
    assert own.modalities == {}  # the features come from fusionrec's encoders, not MMRec's .npy
    ref = load_preset("ml100k-mmrec")
    assert list(own.item_ids) == list(ref.item_ids) and own.n_users == ref.n_users
    assert (own.interactions["split"].value_counts().to_dict() == ref.interactions["split"].value_counts().to_dict())
    text_encoder = build_spec_encoders({"text": encoder_spec(cfg.data, own.items)["text"]})[0]
    rows = own.items[own.items["source_item_id"].astype(str).isin(["1", "1349"])].sort_values("source_item_id")
    texts = text_encoder.render_texts(rows.reset_index(drop=True), own.root)
    assert texts[0].startswith("Toy Story (1995). Animation, Children's, Comedy. ")
    assert texts[1].endswith(". ")  # item 1349 has no overview: the separator stays, as in text_feat.npy
