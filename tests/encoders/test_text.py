"""Text template rendering and the sentence-transformers encoder on a tiny local model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.encoders import build_encoder, encode_dataset
from fusionrec.encoders.text import SentenceTransformerEncoder, TextTemplate
from fusionrec.errors import UserError

from .conftest import make_dataset

# How the ml100k reference features (ml100k/mmrec/text_feat.npy) rendered an item's text.
REFERENCE_TEMPLATE = "{title}. {genres}. {overview,plot,description,tags}"


def test_template_matches_the_reference_recipe():
    t = TextTemplate(REFERENCE_TEMPLATE)
    cols = t.check(["item_id", "title", "genres", "overview"])
    text, ok, _ = t.render({"title": "Toy Story (1995)", "genres": "Animation|Children's|Comedy",
                            "overview": "Toys come alive."}, cols, None)
    assert ok and text == "Toy Story (1995). Animation, Children's, Comedy. Toys come alive."
    # Empty overview keeps its separator (tokenises like the reference); ml1m names it "plot".
    text, ok, _ = t.render({"title": "Vermin (1998)", "genres": "Comedy", "plot": None},
                           t.check(["title", "genres", "plot"]), None)
    assert ok and text == "Vermin (1998). Comedy. "


def test_template_drops_absent_columns_and_joins_lists():
    t = TextTemplate("{title}. {genres}. {description}")
    text, ok, _ = t.render({"title": "Lamp", "description": "A desk lamp"}, t.check(["title", "description"]), None)
    assert text == "Lamp. A desk lamp"
    text, _, _ = t.render({"title": "Mug", "genres": np.array(["kitchen", "gift"]), "description": ""},
                          t.check(["title", "genres", "description"]), None)
    assert text == "Mug. kitchen, gift. "
    with pytest.raises(UserError, match="no text column"):
        t.check(["item_id", "price"])
    with pytest.raises(UserError, match="names no item field"):
        TextTemplate("no placeholders")


def test_tiny_hf_model_path_encodes_and_truncates_long_text(tmp_path, tiny_text_model):
    items = pd.DataFrame({
        "item_id": [1, 2, 3, 4],
        "title": ["red lamp", "blue mug", "wood desk chair", "toy"],
        "description": ["soft", "hard metal", "the a", "story " * 20000],  # 20k words >> 64 positions
    })
    enc = SentenceTransformerEncoder(model_path=tiny_text_model, template="{title}. {description}")
    assert enc.dim == 32
    ds = make_dataset(items)
    rep = encode_dataset(ds, [enc], store_dir=tmp_path, batch_size=2, progress=False)
    text = ds.modalities["text"]
    assert text.mask.all() and text.features.shape == (4, 32) and np.isfinite(text.features).all()
    assert rep.issues == []
    # Same vectors as calling the library directly (the pipeline adds no transformation).
    direct = enc.model.encode([f"{t}. {d}" for t, d in zip(items.title, items.description)], batch_size=4)
    np.testing.assert_allclose(text.features, direct, atol=1e-5)
    # Different texts -> different vectors; the id changes with the model's weights.
    assert not np.allclose(text.features[0], text.features[1])
    assert enc.encoder_id.startswith("sentence-transformer:v1:")


def test_encoder_id_depends_on_model_files_and_settings(tmp_path, tiny_text_model):
    a = SentenceTransformerEncoder(model_path=tiny_text_model)
    b = SentenceTransformerEncoder(model_path=tiny_text_model, normalize=True)
    c = SentenceTransformerEncoder(model_path=tiny_text_model, template="{title}")
    assert a.encoder_id != b.encoder_id
    assert a.encoder_id == c.encoder_id  # the template changes the content key, not the model
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_text_model, copy)
    with open(copy / "vocab.txt", "a") as fh:
        fh.write("extra\n")
    assert SentenceTransformerEncoder(model_path=copy).encoder_id != a.encoder_id


def test_registry_defaults_and_errors(tmp_path):
    enc = build_encoder("minilm")
    assert enc.template.template == "{text}"  # the item's standard text column
    assert enc.modality == "text" and enc.kind == "text"
    with pytest.raises(UserError, match="has no parameter"):
        build_encoder("minilm", batch_sise=3)
    with pytest.raises(UserError, match="unknown encoder"):
        build_encoder("bert-huge")
    with pytest.raises(UserError, match="does not exist"):
        SentenceTransformerEncoder(model_path=tmp_path / "nope")


def test_encoders_from_a_config_section(tiny_clip):
    from fusionrec.encoders import build_encoders

    text, image, clip = build_encoders({
        "text": {"name": "minilm", "template": "{title}. {plot}"},
        "image": None,
        "clip_image": {"name": "clip-image", "model_path": str(tiny_clip)},
    })
    assert (text.name, text.template.template) == ("minilm", "{title}. {plot}")
    assert (image.name, image.modality) == ("efficientnet-lite0", "image")
    assert (clip.name, clip.modality, clip.kind) == ("clip-image", "clip_image", "image")
    assert [e.name for e in build_encoders(["text", "attribute"])] == ["minilm", "attributes"]
    with pytest.raises(UserError, match="no encoder named"):
        build_encoders({"smell": None})


def test_micro_batches_give_the_vectors_of_one_whole_batch(tiny_text_model):
    """Slicing a batch for the model (allocator-friendly) must not change any text's vector."""
    texts = ["red lamp", "a blue mug with a long handle and a chip", "desk", "toy " * 40, "chair", "x"]
    import torch

    whole = SentenceTransformerEncoder(model_path=tiny_text_model, micro_batch=64)
    sliced = SentenceTransformerEncoder(model_path=tiny_text_model, micro_batch=2)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # the slices then run on 3 threads sharing one tokenizer
    try:
        np.testing.assert_allclose(whole.encode(texts), sliced.encode(texts), rtol=1e-4, atol=1e-5)
        assert torch.get_num_threads() == 3  # restored after the threaded call
    finally:
        torch.set_num_threads(before)
    assert whole.encoder_id == sliced.encoder_id  # same vectors, same cache entries
    with pytest.raises(UserError, match="text.micro_batch"):
        SentenceTransformerEncoder(model_path=tiny_text_model, micro_batch=0)
