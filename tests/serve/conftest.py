"""A small but real serving world: themed items with MiniLM text and EfficientNet image features.

Four themes; every item has a themed description and a poster-like image whose
colour and shape depend on the theme. The served model is the real BPR class
(:class:`fusionrec.models.bpr.BPRMF`) with its embeddings set to a planted
structure (theme centroid + noise for items, theme of taste for users), so
tests know which items *should* come out, without spending time on training.
The content features come from the real default encoders (engineer D's
MiniLM and EfficientNet-Lite0), so the content map is fitted on real features.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

from fusionrec.config import RunConfig
from fusionrec.data.dataset import Dataset
from fusionrec.serve.config import ServeConfig

THEMES = {
    "space": dict(colour=(30, 30, 120), shape="circle", words=[
        "starship crew", "alien planet", "galaxy war", "astronaut mission", "space station", "rocket launch",
        "distant nebula", "interstellar voyage"]),
    "cooking": dict(colour=(220, 140, 40), shape="square", words=[
        "chef recipe", "kitchen contest", "baking bread", "italian pasta", "family dinner", "spicy curry",
        "pastry shop", "restaurant critic"]),
    "football": dict(colour=(30, 150, 40), shape="triangle", words=[
        "soccer final", "goalkeeper hero", "world cup team", "stadium crowd", "striker transfer",
        "football coach", "penalty shootout", "league champions"]),
    "horror": dict(colour=(150, 10, 10), shape="cross", words=[
        "haunted house", "zombie outbreak", "vampire night", "ghost story", "serial killer", "cursed doll",
        "demon possession", "graveyard terror"]),
}
GENRE = {"space": "Sci-Fi", "cooking": "Documentary", "football": "Sport", "horror": "Horror"}
N_PER_THEME = 12
N_USERS_PER_THEME = 8
DIM = 16
API_KEY = "test-key-0123456789abcdef"


def theme_text(theme: str, rng: np.random.Generator) -> str:
    words = THEMES[theme]["words"]
    a, b = rng.choice(len(words), 2, replace=False)
    return f"A film about a {words[a]} and a {words[b]}."


def theme_image(theme: str, rng: np.random.Generator, size: int = 96) -> Image.Image:
    spec = THEMES[theme]
    jitter = rng.integers(-20, 21, 3)
    colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(spec["colour"], jitter))
    img = Image.new("RGB", (size, size), (235, 235, 235))
    d = ImageDraw.Draw(img)
    c, r = size / 2 + rng.uniform(-8, 8), size / 3
    if spec["shape"] == "circle":
        d.ellipse([c - r, c - r, c + r, c + r], fill=colour)
    elif spec["shape"] == "square":
        d.rectangle([c - r, c - r, c + r, c + r], fill=colour)
    elif spec["shape"] == "triangle":
        d.polygon([(c, c - r), (c - r, c + r), (c + r, c + r)], fill=colour)
    else:
        d.rectangle([c - r, c - r / 4, c + r, c + r / 4], fill=colour)
        d.rectangle([c - r / 4, c - r, c + r / 4, c + r], fill=colour)
    return img


@dataclass
class World:
    dataset: Dataset
    item_theme: dict[str, str]
    user_theme: dict[str, str]
    item_vectors: np.ndarray
    user_vectors: np.ndarray
    centroids: dict[str, np.ndarray]
    media_root: Path


def _build_world(root: Path) -> World:
    rng = np.random.default_rng(7)
    (root / "images").mkdir(parents=True, exist_ok=True)
    centroids = {t: rng.normal(0, 1, DIM).astype(np.float32) * 1.5 for t in THEMES}
    rows, item_vecs, item_theme = [], [], {}
    for t in THEMES:
        for n in range(N_PER_THEME):
            item_id = f"{t[:2]}{n:03d}"
            theme_image(t, rng).save(root / "images" / f"{item_id}.jpg")
            year = 1980 + int(rng.integers(0, 40))
            rows.append({"item_id": item_id, "title": f"{t.title()} film {n}", "genres": GENRE[t], "year": year,
                         "overview": theme_text(t, rng), "image_path": f"images/{item_id}.jpg"})
            item_vecs.append(centroids[t] + rng.normal(0, 0.35, DIM))
            item_theme[item_id] = t
    items = pd.DataFrame(rows)
    user_vecs, user_theme, events = [], {}, []
    themes = list(THEMES)
    for t_i, t in enumerate(themes):
        theme_items = [r["item_id"] for r in rows if item_theme[r["item_id"]] == t]
        for n in range(N_USERS_PER_THEME):
            user = f"u{t_i}{n:02d}"
            user_theme[user] = t
            user_vecs.append(centroids[t] * 0.8 + rng.normal(0, 0.3, DIM))
            for item in rng.choice(theme_items, 5, replace=False):
                events.append({"user_id": user, "item_id": item})
    inter = pd.DataFrame(events)
    ds = Dataset.from_frames("serve-world", inter, items, root=root)
    # planted model: rows in the dataset's internal order
    item_vectors = np.asarray(item_vecs, dtype=np.float32)
    order_u = [list(user_theme).index(str(u)) for u in ds.user_ids]
    user_vectors = np.asarray(user_vecs, dtype=np.float32)[order_u]
    item_pos = {r["item_id"]: j for j, r in enumerate(rows)}
    item_vectors = item_vectors[[item_pos[str(i)] for i in ds.item_ids]]

    from fusionrec.encoders.image import EfficientNetLiteEncoder
    from fusionrec.encoders.pipeline import encode_items
    from fusionrec.encoders.text import MiniLMEncoder

    for enc in (MiniLMEncoder(modality="text"), EfficientNetLiteEncoder(modality="image")):
        mod, _ = encode_items(enc, ds.items, ds.root, ds.item_ids, store_dir=root / "features", progress=False)
        ds.add_modality(mod)
    return World(ds, item_theme, user_theme, item_vectors, user_vectors, centroids, root)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _build_world(tmp_path_factory.mktemp("serve-world"))


def planted_bpr(world: World):
    """The real BPR model class with its embeddings set to the planted vectors."""
    from fusionrec.models.bpr import BPRMF

    data = world.dataset.train_data()
    model = BPRMF(data, {"embedding_size": DIM, "reg_weight": 0.0})
    with torch.no_grad():
        model.user_embedding.weight.copy_(torch.from_numpy(world.user_vectors))
        model.item_embedding.weight.copy_(torch.from_numpy(world.item_vectors))
    model.eval()
    return model


def run_config() -> RunConfig:
    return RunConfig.model_validate({"data": {"name": "serve-world", "format": "csv"},
                                     "model": {"name": "bpr", "params": {"embedding_size": DIM, "reg_weight": 0.0}},
                                     "train": {"epochs": 3, "batch_size": 256, "lr": 0.01, "progress": False,
                                               "checkpoint": False}})


@pytest.fixture(scope="session")
def model_dir(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted model saved with engineer B2's save_model (safetensors + parquet)."""
    from fusionrec.models.io import save_model

    out = tmp_path_factory.mktemp("served") / "model"
    save_model(planted_bpr(world), run_config(), world.dataset, out)
    return out


@pytest.fixture(scope="session")
def encoder(world: World):
    from fusionrec.serve.loader import build_content_encoder

    enc = build_content_encoder(world.dataset, ServeConfig())
    assert enc is not None and set(enc.modalities) == {"text", "image"}
    return enc


def make_service(model_dir: Path, tmp_path: Path, encoder=None, **overrides):
    """A fresh service on the saved model with its own SQLite file."""
    from fusionrec.serve.config import ServeConfig
    from fusionrec.serve.loader import load_service

    cfg = ServeConfig(db_path=str(tmp_path / "serve.sqlite3"), **overrides)
    return load_service(model_dir, cfg, encoder=encoder)


@pytest.fixture
def keys_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FUSIONREC_API_KEYS", API_KEY)
    return API_KEY


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def png_bytes(width: int, height: int) -> bytes:
    """A blank greyscale PNG: tiny on the wire whatever its pixel size (deflate squeezes it)."""
    import io

    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def keyed_client(service, role: str = "admin", **kwargs):
    """An in-process client whose requests carry ``API_KEY`` with ``role`` (reads need a key by default)."""
    from fastapi.testclient import TestClient

    from fusionrec.serve.app import create_app
    from fusionrec.serve.security import KeyChecker

    return TestClient(create_app(service, KeyChecker({API_KEY: role})), headers={"X-API-Key": API_KEY}, **kwargs)
