"""Serving a trained multimodal model: new items are encoded by the model's recorded encoders and
placed by its own content path; items without interactions answer /similar."""
from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from fusionrec.config import RunConfig
from fusionrec.data.dataset import Dataset
from fusionrec.encoders import register
from fusionrec.encoders.base import Encoder, ItemInput, content_hash
from fusionrec.encoders.ensure import ensure_features, write_features_json
from fusionrec.encoders.text import TextTemplate, prepare_text_items
from fusionrec.serve.app import create_app
from fusionrec.serve.config import ServeConfig
from fusionrec.serve.security import KeyChecker

from .conftest import API_KEY

pytestmark = pytest.mark.usefixtures("one_torch_thread")
AUTH = {"X-API-Key": API_KEY}
COLOURS = {"red": (200, 30, 30), "green": (30, 170, 40), "blue": (30, 40, 200)}


class WordText(Encoder):
    """A cheap deterministic text model (hashed word counts), so the test needs no network weights."""

    name = "serve-word-text"
    kind = "text"

    def __init__(self, template: str = "{text}", dim: int = 12, modality: str | None = None) -> None:
        super().__init__(modality)
        self.template, self._dim = TextTemplate(template), dim

    def _id_parts(self) -> dict[str, Any]:
        return {"dim": self._dim}

    @property
    def dim(self) -> int:
        return self._dim

    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        return prepare_text_items(self.template, items, root)

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(batch), self._dim), np.float32)
        for r, text in enumerate(batch):
            for word in text.lower().split():
                out[r, int(content_hash(word)[:6], 16) % self._dim] += 1.0
        return out


class MeanColour(Encoder):
    """Mean colour and its spread of the preprocessed image (real Pillow path handling)."""

    name = "serve-mean-colour"
    kind = "image"

    def __init__(self, modality: str | None = None) -> None:
        from fusionrec.encoders.image import ImagePreprocessor

        super().__init__(modality)
        self.preprocess = ImagePreprocessor(resize=20, crop=16)

    def _id_parts(self) -> dict[str, Any]:
        return self.preprocess.id_parts()

    @property
    def dim(self) -> int:
        return 6

    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        from fusionrec.encoders.image import prepare_image_items

        return prepare_image_items(items, root, None)

    def load(self, payload: str) -> np.ndarray:
        return self.preprocess(payload)

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        x = np.stack(list(batch))
        return np.concatenate([x.mean(axis=(2, 3)), x.std(axis=(2, 3))], axis=1).astype(np.float32)


register("serve-word-text", f"{__name__}:WordText")
register("serve-mean-colour", f"{__name__}:MeanColour")


def _png(colour: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    base = np.array(COLOURS[colour], dtype=np.int64)
    pixels = np.clip(base + rng.integers(-25, 26, (24, 24, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _shop(root: Path) -> Dataset:
    """30 items in three colour themes; the last item of each theme has no interactions."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(3)
    names = list(COLOURS)
    rows = []
    for j in range(30):
        colour = names[j % 3]
        (root / "images" / f"{j}.png").write_bytes(_png(colour, j))
        rows.append({"item_id": f"sku{j:02d}", "text": f"{colour} {colour} item number {j}",
                     "image_path": f"images/{j}.png", "theme": colour})
    items = pd.DataFrame(rows)
    cold = {27, 28, 29}
    inter = []
    for u in range(24):
        theme_items = [j for j in range(30) if j % 3 == u % 3 and j not in cold]
        inter += [(u, j) for j in rng.choice(theme_items, 5, replace=False)]
    frame = pd.DataFrame(inter, columns=["user", "item"])
    frame["split"] = "train"
    return Dataset("shop", [f"u{u}" for u in range(24)], items["item_id"], frame, items, root=root)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[Path, Dataset]:
    from fusionrec.config import DataConfig
    from fusionrec.models.io import save_model
    from fusionrec.models.registry import build_model
    from fusionrec.train.trainer import Trainer

    root = tmp_path_factory.mktemp("content-path")
    ds = _shop(root / "data")
    cfg_data = DataConfig(encoders={"text": "serve-word-text", "image": "serve-mean-colour"})
    ds, records = ensure_features(ds, cfg_data, store_dir=root / "store", progress=False)
    assert set(records) == {"text", "image"}
    cfg = RunConfig.model_validate({
        "data": {"name": "shop", "format": "csv"},
        "model": {"name": "two_tower", "params": {"embedding_size": 8, "feature_norm": "standard", "fusion": "attention"}},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "progress": False, "checkpoint": False},
    })
    torch.manual_seed(0)
    data = ds.train_data()
    model = build_model("two_tower", data, cfg.model.params)
    Trainer(model, data, cfg.train).fit()
    out = root / "model"
    save_model(model, cfg, ds, out)
    write_features_json(records, out)
    return out, ds


def test_posted_item_gets_the_vector_of_the_models_content_path(served, tmp_path, monkeypatch):
    from fusionrec.serve.loader import load_service

    model_dir, ds = served
    assert json.loads((model_dir / "features.json").read_text())["modalities"]["image"]["encoder"] == \
        "serve-mean-colour"
    svc = load_service(model_dir, ServeConfig(db_path=str(tmp_path / "s.sqlite3")))
    assert svc.encoder is not None and set(svc.encoder.modalities) == {"text", "image"}
    assert svc.state.placement == "model content path"
    client = TestClient(create_app(svc, KeyChecker([API_KEY])), headers=AUTH)
    image = _png("blue", 99)
    r = client.post("/items", headers=AUTH, json={"items": [{
        "item_id": "new-blue", "text": "blue blue item number 77",
        "image_base64": base64.b64encode(image).decode()}]})
    assert r.status_code == 200, r.text

    # what the model's content path computes for those features, by hand: the recorded encoders'
    # vectors, normalised as the model's inputs were, through its projector and fusion
    (tmp_path / "img.png").write_bytes(image)
    text_vec = WordText().encode(["blue blue item number 77"])[0]
    image_vec = MeanColour().encode([MeanColour().load(str(tmp_path / "img.png"))])[0]
    model = svc.state.model
    feats = {}
    for name, raw in (("text", text_vec), ("image", image_vec)):
        ref = ds.modalities[name]
        present = ref.features[ref.mask]
        std = present.std(0)
        feats[name] = torch.from_numpy(((raw - present.mean(0)) / np.where(std > 1e-8, std, 1.0))[None, :])
    masks = {n: torch.tensor([True]) for n in feats}
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.fusion(model.projector(feats), masks), dim=-1)[0].numpy()
    row = svc.state.catalogue.index_of["new-blue"]
    np.testing.assert_allclose(svc.state.item_vectors[row], expected, atol=1e-4)

    # an item without interactions (trained catalogue, and the posted one) answers /similar
    for item in ("sku29", "new-blue"):
        sim = client.get(f"/items/{item}/similar", params={"k": 5})
        assert sim.status_code == 200, sim.text
        assert len(sim.json()["items"]) == 5
    # a blue fan (users u2, u5, ...) finds the new blue item among the blue ones
    recs = client.get("/recommendations/u2", params={"k": 12}).json()["items"]
    assert "new-blue" in [e["item_id"] for e in recs]
    # a free-text query is placed by the same item tower (text only): the answer is the exact top-5
    # of the catalogue against that vector
    found = client.post("/recommendations", json={"text": "blue blue", "k": 5})
    assert found.status_code == 200, found.text
    query = svc.state.placer.place({"text": WordText().encode(["blue blue"])[0]})
    top = np.argsort(-(svc.state.item_vectors @ query), kind="stable")[:5]
    assert [e["item_id"] for e in found.json()["items"]] == [svc.state.catalogue.item_ids[j] for j in top]


def test_recorded_audio_and_attribute_encoders_are_rebuilt_for_new_items(tmp_path):
    """features.json names the encoders; serving rebuilds them (attributes fitted on the training
    catalogue) and a catalogue item's content encodes to exactly its stored vector."""
    import soundfile as sf

    from fusionrec.config import DataConfig
    from fusionrec.serve.loader import build_content_encoder

    (tmp_path / "audio").mkdir()
    rng = np.random.default_rng(0)
    for j in range(6):
        t = np.arange(11025) / 22050
        sf.write(tmp_path / "audio" / f"{j}.wav", np.sin(2 * np.pi * (200 + 90 * j) * t) * 0.3
                 + rng.normal(0, 0.01, t.size), 22050)
    items = pd.DataFrame({"item_id": [f"t{j}" for j in range(6)], "brand": ["acme", "acme", "zeta", "zeta", "acme", "x"],
                          "price": [1.0, 2.5, 3.0, None, 4.0, 9.0],
                          "audio_path": [f"audio/{j}.wav" for j in range(6)]})
    inter = pd.DataFrame({"user": np.zeros(6, np.int64), "item": np.arange(6)})
    ds = Dataset("tracks", ["u0"], items["item_id"], inter, items, root=tmp_path)
    encoders = {"audio": {"name": "logmel", "params": {"n_mels": 16, "n_mfcc": 8, "max_seconds": 1.0}},
                "attribute": {"name": "attributes", "params": {"categorical": ["brand"], "numeric": ["price"],
                                                                "min_count": 1}}}
    ds, records = ensure_features(ds, DataConfig(encoders=encoders), store_dir=tmp_path / "store", progress=False)
    assert records["audio"]["params"]["n_mels"] == 16

    enc = build_content_encoder(ds, ServeConfig(), records)
    assert enc is not None and set(enc.modalities) == {"audio", "attribute"}
    row = items.iloc[3].to_dict()
    row["audio_path"] = str(tmp_path / row["audio_path"])
    vecs = enc.encode_item(row, None)
    for name in ("audio", "attribute"):
        np.testing.assert_allclose(vecs[name], ds.modalities[name].features[3], atol=1e-5)
    # a brand no training item has carries nothing (not the rare brands' <other> column of the
    # vocabulary fitted on the training catalogue); the price still counts
    new = enc.encode_item({"item_id": "new", "brand": "newco", "price": 2.0, "audio_path": None}, None)
    names = enc.encoders["attribute"].feature_names()
    brand = [i for i, n in enumerate(names) if n.startswith("brand=")]
    assert "audio" not in new and not new["attribute"][brand].any() and new["attribute"][names.index("price")] != 0

    # a recorded encoder id that no longer matches (other weights) leaves the modality out
    records["audio"]["encoder_id"] = "logmel:v1:not-the-same"
    assert set(build_content_encoder(ds, ServeConfig(), records).modalities) == {"attribute"}
