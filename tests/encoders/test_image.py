"""Image preprocessing (EXIF, modes, crop), bad files reported per item, reference features."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fusionrec.encoders import build_encoder, encode_dataset
from fusionrec.encoders.base import ItemProblem
from fusionrec.encoders.image import ImagePreprocessor

from .conftest import CountingTextEncoder, PixelStatsEncoder, make_dataset


def write_bomb_png(path, width: int, height: int) -> None:
    """A valid PNG header claiming width x height pixels (a few dozen bytes on disk)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, width, height)  # IHDR payload starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def test_alpha_palette_gray_cmyk_16bit_become_rgb():
    pre = ImagePreprocessor()
    clear = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    assert pre.to_rgb(clear).getpixel((5, 5)) == (255, 255, 255)  # white, not black or red
    half = Image.new("RGBA", (10, 10), (0, 0, 0, 128))
    assert pre.to_rgb(half).getpixel((0, 0)) == pytest.approx((127, 127, 127), abs=1)
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    pal.info["transparency"] = 0
    assert pre.to_rgb(pal).getpixel((0, 0)) == (255, 255, 255)
    pal.info.pop("transparency")
    assert pre.to_rgb(pal).getpixel((0, 0)) == (0, 0, 255)
    gray = pre.to_rgb(Image.new("L", (4, 4), 77))
    assert gray.mode == "RGB" and gray.getpixel((1, 1)) == (77, 77, 77)
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    assert pre.to_rgb(cmyk).getpixel((0, 0)) == (255, 0, 0)
    deep = Image.fromarray(np.array([[0, 1000], [30000, 65535]], dtype=np.uint16))
    out = np.asarray(pre.to_rgb(deep))
    assert out[0, 0, 0] == 0 and out[1, 1, 0] == 255 and 0 < out[0, 1, 0] < out[1, 0, 0] < 255


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif.tobytes())
    assert Image.open(path).size == (40, 20)
    assert ImagePreprocessor().open_rgb(path).size == (20, 40)


def test_resize_and_centre_crop_shapes(tmp_path):
    pre = ImagePreprocessor(resize=256, crop=224)
    for size in [(300, 450), (450, 300), (92, 138), (224, 224)]:
        arr = np.zeros((size[1], size[0], 3), np.uint8)
        arr[:, size[0] // 2 :] = 255  # right half white: the crop must stay centred
        path = tmp_path / f"{size[0]}x{size[1]}.png"
        Image.fromarray(arr).save(path)
        x = pre(path)
        assert x.shape == (3, 224, 224) and x.dtype == np.float32
        left, right = x[:, :, :100].mean(), x[:, :, 124:].mean()
        assert left < 0 < right  # black left, white right after normalisation
    mean = np.asarray(pre.mean).ravel()
    flat = Image.new("RGB", (256, 256), tuple(int(round(m * 255)) for m in mean))
    assert np.abs(pre.to_array(pre.resize_crop(flat))).max() < 0.03  # ImageNet mean maps to ~0


def test_every_bad_image_is_reported_and_the_item_keeps_its_text(tmp_path):
    root = tmp_path / "shop"
    (root / "img").mkdir(parents=True)
    good = Image.new("RGB", (64, 48), (20, 120, 220))
    good.save(root / "img" / "good.jpg")
    good.save(root / "img" / "good2.png")
    (root / "img" / "corrupt.jpg").write_bytes(b"this is not an image at all" * 10)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "JPEG")
    (root / "img" / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "img" / "empty.jpg").write_bytes(b"")
    write_bomb_png(root / "img" / "bomb.png", 20000, 20000)
    items = pd.DataFrame({
        "item_id": list(range(8)),
        "title": [f"item {i}" for i in range(8)],
        "description": ["desc"] * 8,
        "image_path": ["img/good.jpg", "img/corrupt.jpg", "img/truncated.jpg", "img/missing.jpg",
                       "img/empty.jpg", "img/bomb.png", None, "img/good2.png"],
    })
    ds = make_dataset(items, root=root)
    image = PixelStatsEncoder()
    rep = encode_dataset(ds, [CountingTextEncoder(), image], store_dir=tmp_path / "cache", batch_size=4,
                         num_workers=0, progress=False)
    assert ds.modalities["text"].mask.all()
    img = ds.modalities["image"]
    assert img.mask.tolist() == [True, False, False, False, False, False, False, True]
    assert img.dim == 6 and not img.features[~img.mask].any()
    assert rep.modalities["image"].n_encoded == 2  # failed decodes are not counted as encoded
    reasons = {i.item_id: i.reason for i in rep.modalities["image"].issues}
    files = {i.item_id: i.file for i in rep.modalities["image"].issues}
    assert reasons[1].startswith("not a readable image") and files[1].endswith("corrupt.jpg")
    assert reasons[2].startswith("corrupt image data") and "truncated" in reasons[2]
    assert reasons[3] == "image file not found" and files[3].endswith("missing.jpg")
    assert reasons[4] == "image file is empty (0 bytes)"
    assert "decompression bomb" in reasons[5] and files[5].endswith("bomb.png")
    assert reasons[6].startswith("no usable image: no path")
    # Failures are cached per content: the second run reports them again without decoding.
    again = PixelStatsEncoder()
    rep2 = encode_dataset(make_dataset(items, root=root), [again], store_dir=tmp_path / "cache", progress=False)
    assert rep2.modalities["image"].n_encoded == 0 and again.calls == 0
    assert {i.item_id: i.reason for i in rep2.issues} == reasons


def test_size_limit_is_checked_before_decoding(tmp_path):
    write_bomb_png(tmp_path / "big.png", 10000, 10000)  # 1e8 px: Pillow only warns; we refuse
    with pytest.raises(ItemProblem, match="decompression bomb"):
        ImagePreprocessor().open_rgb(tmp_path / "big.png")
    Image.new("RGB", (100, 100)).save(tmp_path / "small.png")
    with pytest.raises(ItemProblem, match="over the limit of 5,000"):
        ImagePreprocessor(max_pixels=5000).open_rgb(tmp_path / "small.png")


def test_worker_pool_gives_the_same_vectors_as_in_process(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "img").mkdir()
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (60 + i, 80, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
    items = pd.DataFrame({"item_id": range(10), "image_path": [f"img/{i}.png" for i in range(10)]})
    a, b = make_dataset(items, root=tmp_path), make_dataset(items, root=tmp_path)
    encode_dataset(a, [PixelStatsEncoder()], batch_size=3, num_workers=0, progress=False)
    encode_dataset(b, [PixelStatsEncoder()], batch_size=3, num_workers=2, progress=False)
    np.testing.assert_allclose(a.modalities["image"].features, b.modalities["image"].features, atol=1e-5)
    assert a.modalities["image"].mask.all()


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.shared_data
def test_defaults_reproduce_the_ml100k_reference_features(shared_data):
    folder = shared_data / "ml100k"
    ids = [1, 2, 50, 172, 1349, 1583]  # 1349/1583 have an empty overview
    items = pd.read_csv(folder / "items.csv")
    items = items[items["item_id"].isin(ids)].reset_index(drop=True)
    items["image_path"] = [f"images/{i}.jpg" for i in items["item_id"]]
    id_map = pd.read_csv(folder / "mmrec" / "i_id_mapping.csv", sep=None, engine="python")
    rows = id_map.set_index("item_id").loc[items["item_id"], "itemID"].to_numpy()
    ds = make_dataset(items, root=folder)
    # the reference text recipe is an explicit template (the default is the item's `text` column)
    text = build_encoder("minilm", template="{title}. {genres}. {overview}")
    encode_dataset(ds, [text, "efficientnet-lite0"], store_dir=None, progress=False)
    for name, ref_file in [("text", "text_feat.npy"), ("image", "image_feat.npy")]:
        ref = np.load(folder / "mmrec" / ref_file)[rows]
        mod = ds.modalities[name]
        assert mod.mask.all(), name
        assert _cos(mod.features, ref).min() > 0.99, name


def test_micro_batches_give_the_vectors_of_one_whole_batch(tmp_path):
    """Slicing a batch for the network (allocator-friendly) must not change any item's vector."""
    rng = np.random.default_rng(3)
    loaded = [rng.normal(size=(64, 64, 3)).astype(np.float32) for _ in range(7)]
    whole = build_encoder("efficientnet-lite0", micro_batch=64)
    sliced = build_encoder("efficientnet-lite0", micro_batch=3)
    sliced._model = whole.model  # one set of weights, loaded once
    import torch

    batch = whole.collate(loaded)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the slices then run on 2 threads
    try:
        a, b = whole.encode(batch), sliced.encode(batch)
    finally:
        torch.set_num_threads(before)
    assert a.shape == b.shape == (7, 1280)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert whole.info().encoder_id == sliced.info().encoder_id  # same vectors, same cache entries


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_micro_batch_must_be_a_positive_whole_number(bad):
    from fusionrec.errors import UserError

    with pytest.raises(UserError, match="micro_batch") as err:
        build_encoder("efficientnet-lite0", micro_batch=bad)
    assert "image.micro_batch" in str(err.value.message)
