"""Do the encoded features carry signal? Genre agreement of nearest neighbours on ml1m.

For every ml1m item that has the modality, take its 10 nearest other items by cosine
similarity (among items that also have it) and count the share of those neighbours
that share at least one genre with the query item. Compared side by side:

* text  -- the default MiniLM features ("<title>. <genres>. <plot>"). The text
  *contains the genre words*, so this number is an upper bound on "content" signal;
* text without genres -- MiniLM over "<title>. <plot>" (``--no-genre-text``), the
  honest text number: the genres are not handed to the encoder;
* image -- EfficientNet-Lite0 poster features (no genre information in the input);
* random -- 10 random other items (mean over 20 draws): the chance level.

Features come from ``encode_dataset`` with the feature store, so after
``fusionrec encode --dataset ml1m --modalities text,image --cache DIR`` this script
does no model work for the default encoders.

Usage::

    HF_HUB_OFFLINE=1 nice -n 5 python bench/feature_signal.py --cache /work/cache/features [--no-genre-text]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def genre_sets(items: pd.DataFrame) -> list[frozenset[str]]:
    return [frozenset(g for g in str(v).split("|") if g) if isinstance(v, str) else frozenset()
            for v in items["genres"].tolist()]


def neighbour_genre_share(features: np.ndarray, mask: np.ndarray, genres: list[frozenset[str]], k: int = 10
                          ) -> tuple[float, int]:
    """Mean over query items of (share of the k cosine-nearest neighbours sharing >= 1 genre)."""
    import faiss

    idx = np.flatnonzero(mask & np.array([bool(g) for g in genres]))
    x = np.ascontiguousarray(features[idx], dtype=np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, nn = index.search(x, k + 1)
    shares = []
    for row, query in enumerate(idx):
        neigh = [idx[j] for j in nn[row] if j != row and j >= 0][:k]
        g = genres[query]
        shares.append(np.mean([bool(g & genres[n]) for n in neigh]))
    return float(np.mean(shares)), len(idx)


def random_share(mask: np.ndarray, genres: list[frozenset[str]], k: int = 10, draws: int = 20, seed: int = 0
                 ) -> float:
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(mask & np.array([bool(g) for g in genres]))
    total = []
    for _ in range(draws):
        for q in idx:
            neigh = rng.choice(idx[idx != q], size=k, replace=False)
            total.append(np.mean([bool(genres[q] & genres[n]) for n in neigh]))
    return float(np.mean(total))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="/work/cache/features", help="feature store folder")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--no-genre-text", action="store_true", help="also encode '<title>. <plot>' (no genre words)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()

    from fusionrec.config import resolve_config
    from fusionrec.data.loading import load_dataset
    from fusionrec.encoders import build_encoder, encode_dataset

    ds = load_dataset(resolve_config(dataset="ml1m").data)
    genres = genre_sets(ds.items)
    encoders = [build_encoder("minilm"), build_encoder("efficientnet-lite0")]
    if args.no_genre_text:
        encoders.append(build_encoder("minilm", template="{title}. {plot}", modality="text_no_genres"))
    report = encode_dataset(ds, encoders, store_dir=args.cache, batch_size=args.batch_size)
    print(report.summary(), file=sys.stderr)

    rows = []
    for name, mod in ds.modalities.items():
        share, n = neighbour_genre_share(mod.features, mod.mask, genres, args.k)
        rows.append({"features": name, "dim": mod.dim, "items": n, f"genre_share@{args.k}": round(share, 4)})
    all_items = np.ones(ds.n_items, dtype=bool)
    rows.append({"features": "random", "dim": 0, "items": int(sum(bool(g) for g in genres)),
                 f"genre_share@{args.k}": round(random_share(all_items, genres, args.k), 4)})
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
