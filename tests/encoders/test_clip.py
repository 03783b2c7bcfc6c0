"""CLIP towers loaded from a local folder (tiny random CLIP + offline byte-level tokenizer)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fusionrec.encoders import build_encoder, encode_dataset
from fusionrec.encoders.clip import CLIPImageEncoder, CLIPTextEncoder
from fusionrec.errors import UserError

from .conftest import make_dataset


def test_clip_image_and_text_share_one_space(tmp_path, tiny_clip):
    root = tmp_path / "shop"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (50, 40 + 10 * i, 3), dtype=np.uint8)).save(root / f"{i}.png")
    Image.new("RGBA", (30, 30), (0, 0, 0, 0)).save(root / "3.png")
    items = pd.DataFrame({"item_id": range(5), "title": ["red lamp", "blue mug", "chair", "x " * 500, None],
                          "description": ["soft", "hard", "wood", "long", None],
                          "image_path": [f"{i}.png" for i in range(4)] + ["missing.png"]})
    ds = make_dataset(items, root=root)
    img = build_encoder("clip-image", model_path=str(tiny_clip), modality="clip_image")
    txt = build_encoder("clip-text", model_path=str(tiny_clip), template="{title}. {description}", modality="clip_text")
    rep = encode_dataset(ds, [img, txt], store_dir=tmp_path / "cache", batch_size=2, num_workers=0, progress=False)
    im, tx = ds.modalities["clip_image"], ds.modalities["clip_text"]
    assert im.dim == tx.dim == 16  # projection_dim: the shared space
    assert im.mask.tolist() == [True, True, True, True, False] and tx.mask.tolist() == [True] * 4 + [False]
    np.testing.assert_allclose(np.linalg.norm(im.features[im.mask], axis=1), 1.0, atol=1e-5)
    # Same numbers as the transformers model called by hand on our preprocessing / tokenisation.
    model = img.model
    pixels = torch.from_numpy(np.stack([img.preprocess(root / "0.png")]))
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pixels)
        ref = out if isinstance(out, torch.Tensor) else out.pooler_output
    np.testing.assert_allclose(im.features[0], torch.nn.functional.normalize(ref, dim=-1)[0].numpy(), atol=1e-5)
    assert img.preprocess.crop == 32 and img.preprocess.resize == 36  # read from preprocessor_config.json
    # 500 words are truncated to the 24-position context instead of crashing.
    assert np.isfinite(tx.features[3]).all()
    assert {i.reason for i in rep.issues} == {"image file not found", "empty text (all template fields are empty)"}


def test_clip_needs_a_local_folder(tmp_path):
    with pytest.raises(UserError, match="need a local model folder"):
        CLIPImageEncoder()
    with pytest.raises(UserError, match="not a saved CLIP model"):
        CLIPTextEncoder(model_path=tmp_path)
