"""Features flow: ensure_features reuses the store, `fusionrec encode` writes what training reads."""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from fusionrec.config import DataConfig
from fusionrec.data.dataset import Dataset
from fusionrec.encoders import register
from fusionrec.encoders.ensure import (
    default_encoder_spec,
    ensure_features,
    feature_records,
    features_hash,
    normalise_encoder_spec,
)
from fusionrec.errors import UserError

from .conftest import CountingTextEncoder, PixelStatsEncoder


def make_dataset(items: pd.DataFrame, root: Path) -> Dataset:
    """A Dataset around an already standard item frame, as validation leaves it (no re-validation)."""
    inter = pd.DataFrame({"user": np.zeros(len(items), np.int64), "item": np.arange(len(items))})
    return Dataset("tiny", ["u0"], items["item_id"].tolist(), inter, items, root=root)


class CountedText(CountingTextEncoder):
    """The counting text encoder with the default template; counts model calls over all instances."""

    name = "counted-text"
    total_calls: ClassVar[int] = 0
    total_items: ClassVar[int] = 0
    seen: ClassVar[list[str]] = []

    def __init__(self, template: str = "{text}", dim: int = 8, modality: str | None = None) -> None:
        super().__init__(template=template, dim=dim, modality=modality)

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        type(self).total_calls += 1
        type(self).total_items += len(batch)
        type(self).seen.extend(batch)
        return super().encode(batch)


class CountedPixels(PixelStatsEncoder):
    name = "counted-pixels"
    total_items: ClassVar[int] = 0

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        type(self).total_items += len(batch)
        return super().encode(batch)


register("counted-text", f"{__name__}:CountedText")
register("counted-pixels", f"{__name__}:CountedPixels")


@pytest.fixture
def shop(tmp_path) -> tuple[pd.DataFrame, Path]:
    """Standard item columns (as validation writes them): text, image_path; one item of each kind of gap."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
    (tmp_path / "images" / "5.png").write_bytes(b"not a png at all")  # corrupt
    items = pd.DataFrame({
        "item_id": [f"sku{i}" for i in range(7)],
        "text": ["red lamp", "blue mug", None, "wood chair", "metal desk", "soft toy", "hard toy"],
        "image_path": [f"images/{i}.png" for i in range(6)] + ["images/missing.png"],
    })
    return items, tmp_path


def test_defaults_follow_the_standard_columns():
    assert default_encoder_spec(pd.DataFrame({"text": ["a"], "image_path": ["x.jpg"]})) == {
        "text": {"name": "minilm", "params": {}}, "image": {"name": "efficientnet-lite0", "params": {}}}
    assert default_encoder_spec(pd.DataFrame({"text": [None], "price": [1]})) == {}
    assert normalise_encoder_spec({"text": "minilm", "img": {"name": "clip-image", "params": {"model_path": "m"}},
                                   "image": {"name": "efficientnet-lite0", "crop": 200}}) == {
        "text": {"name": "minilm", "params": {}}, "img": {"name": "clip-image", "params": {"model_path": "m"}},
        "image": {"name": "efficientnet-lite0", "params": {"crop": 200}}}
    with pytest.raises(UserError, match="no encoder named for modality 'colour'"):
        normalise_encoder_spec({"colour": None})


def test_missing_content_is_a_mask_and_the_second_call_encodes_nothing(shop):
    items, root = shop
    cfg = DataConfig(encoders={"text": "counted-text", "image": "counted-pixels"})
    store = root / "store"
    CountedText.total_items = CountedPixels.total_items = 0
    ds, records = ensure_features(make_dataset(items, root), cfg, store_dir=store, progress=False)
    text, image = ds.modalities["text"], ds.modalities["image"]
    assert text.mask.tolist() == [True, True, False, True, True, True, True]
    assert image.mask.tolist() == [True, True, True, True, True, False, False]  # corrupt + missing file
    assert (CountedText.total_items, CountedPixels.total_items) == (6, 5)
    rec = records["image"]
    assert rec["encoder"] == "counted-pixels" and rec["encoder_id"].startswith("counted-pixels:v1:")
    assert rec["n_missing"] == 2 and rec["content_hash"] == features_hash(image)
    assert set(rec["missing_reasons"]) == {"image file not found", "not a readable image"}, rec

    # a new run (new dataset object, same content): everything comes from the store
    again, records2 = ensure_features(make_dataset(items, root), cfg, store_dir=store, progress=False)
    assert (CountedText.total_items, CountedPixels.total_items) == (6, 5)
    assert records2["text"]["n_cached"] == 6 and records2["text"]["n_encoded"] == 0
    assert records2["text"]["content_hash"] == records["text"]["content_hash"]
    np.testing.assert_array_equal(again.modalities["image"].features, image.features)

    # only what is asked for; modalities already attached are not re-encoded
    only, rec3 = ensure_features(make_dataset(items, root), cfg, modalities=["text"], store_dir=store,
                                 progress=False)
    assert list(only.modalities) == ["text"] and list(rec3) == ["text"]


def test_precomputed_modalities_are_used_as_they_are(shop):
    from fusionrec.data.dataset import FeatureModality

    items, root = shop
    ds = make_dataset(items, root)
    feats = np.arange(14, dtype=np.float32).reshape(7, 2)
    ds.add_modality(FeatureModality("text", "text", feats, source="precomputed text.npy"))
    CountedText.total_items = 0
    out, records = ensure_features(ds, DataConfig(encoders={"text": "counted-text"}), store_dir=root / "s",
                                   progress=False)
    assert CountedText.total_items == 0
    np.testing.assert_array_equal(out.modalities["text"].features, feats)
    assert records["text"]["encoder"] == "precomputed" and records["text"]["source"] == "precomputed text.npy"
    assert feature_records(out)["text"]["content_hash"] == features_hash(out.modalities["text"])


def _describe_folder(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    rows = [(f"u{u}", f"i{i}") for u in range(12) for i in rng.choice(8, 4, replace=False)]
    pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(folder / "interactions.csv", index=False)
    pd.DataFrame({"item_id": [f"i{i}" for i in range(8)], "name": [f"red lamp {i}" for i in range(8)],
                  "blurb": ["soft wood"] * 7 + [""]}).to_csv(folder / "items.csv", index=False)
    data = {"name": "shop", "format": "csv", "path": "interactions.csv", "items_path": "items.csv",
            "columns": {"user": "user_id", "item": "item_id"},
            "item_columns": {"item": "item_id", "text": "name,blurb"},
            "encoders": {"text": "counted-text"},
            "split": {"method": "random", "ratios": [0.6, 0.2, 0.2], "seed": 1, "min_interactions": 3}}
    (folder / "fusionrec.yaml").write_text(yaml.safe_dump({"data": data}))
    return folder


def test_encode_writes_exactly_what_training_reads(tmp_path, monkeypatch):
    from fusionrec.cli import main
    from fusionrec.cli_args import run_config_from_args
    from fusionrec.pipeline import run_experiment

    monkeypatch.setenv("FUSIONREC_CACHE", str(tmp_path / "cache"))
    folder = _describe_folder(tmp_path)
    CountedText.total_calls = CountedText.total_items = 0
    CountedText.seen.clear()
    assert main(["encode", "--data", str(folder), "--no-progress", "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())["modalities"]["text"]
    assert (report["n_items"], report["n_encoded"]) == (8, 8)
    calls = CountedText.total_calls
    assert calls > 0

    args = argparse.Namespace(data=str(folder), dataset=None, config=None,
                              overrides=["train.progress=false", f"output_dir={tmp_path / 'runs'}"])
    cfg = run_config_from_args(args, model="content_knn")
    results = run_experiment(cfg)
    assert CountedText.total_calls == calls  # training found every vector in the store: no model call
    rec = results["features"]["text"]
    assert rec["encoder"] == "counted-text" and rec["n_cached"] == 8 and rec["n_encoded"] == 0
    saved = json.loads((Path(results["run_dir"]) / "model" / "features.json").read_text())["modalities"]
    assert saved["text"]["content_hash"] == rec["content_hash"]
    # the text the encoder saw is the description's text role: name + blurb (blurb empty for i7)
    assert "red lamp 0. soft wood" in CountedText.seen and "red lamp 7" in CountedText.seen

    # the folder can be named the other ways too (the issue: both used to fail), and all is cached
    for way in (["--set", f"data.path={folder}"], ["--dataset", str(folder)]):
        assert main(["encode", *way, "--no-progress", "--report", str(tmp_path / "w.json")]) == 0
        again = json.loads((tmp_path / "w.json").read_text())["modalities"]["text"]
        assert (again["n_cached"], again["n_encoded"]) == (8, 0)
    assert CountedText.total_calls == calls


def test_clip_from_a_local_folder_is_recorded_and_rebuilt_for_serving(shop, tiny_clip):
    """A modality named unlike its kind (clip_image) with a CLIP model path: the record lets
    serving rebuild the same encoder, which reproduces the stored vectors."""
    from fusionrec.serve.config import ServeConfig
    from fusionrec.serve.loader import build_content_encoder

    items, root = shop
    cfg = DataConfig(encoders={"clip_image": {"name": "clip-image", "params": {"model_path": str(tiny_clip)}}})
    ds, records = ensure_features(make_dataset(items, root), cfg, store_dir=root / "store", progress=False)
    rec = records["clip_image"]
    assert (rec["kind"], rec["encoder"], rec["params"]["model_path"]) == ("image", "clip-image", str(tiny_clip))
    assert ds.modalities["clip_image"].mask.tolist() == [True] * 5 + [False, False]

    enc = build_content_encoder(ds, ServeConfig(), records)
    assert enc is not None and enc.modalities == ["clip_image"]
    vec = enc.encode_item({"item_id": "x", "text": None, "image_path": str(root / "images" / "1.png")}, None)
    np.testing.assert_allclose(vec["clip_image"], ds.modalities["clip_image"].features[1], atol=1e-5)


def test_a_modality_asked_for_by_name_gets_its_default_encoder_or_a_clear_error(shop):
    items, root = shop
    items = items.assign(brand=["a", "b", "a", "b", "a", "c", "c"])
    ds, records = ensure_features(make_dataset(items, root), DataConfig(encoders={"text": "counted-text"}),
                                  modalities=["text", "attribute"], store_dir=root / "store", progress=False)
    assert records["attribute"]["encoder"] == "attributes" and ds.modalities["attribute"].mask.all()
    with pytest.raises(UserError, match="modality 'colour' is asked for") as err:
        ensure_features(make_dataset(items, root), DataConfig(encoders={"text": "counted-text"}),
                        modalities=["colour"], store_dir=root / "store", progress=False)
    assert "encoders: {colour: {name: <one of" in err.value.fix


def test_missing_items_with_one_reason_name_it_once(caplog: pytest.LogCaptureFixture) -> None:
    from fusionrec.encoders.base import ItemIssue
    from fusionrec.encoders.ensure import _log_missing

    same = [ItemIssue(f"{i:03d}", "image", None, "no usable image") for i in range(7)]
    with caplog.at_level("WARNING", logger="fusionrec.encoders"):
        _log_missing("image", same)
    text = caplog.text
    assert text.count("no usable image") == 1 and "000, 001, 002" in text and "(and 2 more)" in text
    caplog.clear()
    mixed = [ItemIssue("a", "text", None, "empty text"), ItemIssue("b", "text", None, "too long")]
    with caplog.at_level("WARNING", logger="fusionrec.encoders"):
        _log_missing("text", mixed)
    assert "a: empty text; b: too long" in caplog.text
