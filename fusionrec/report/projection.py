"""2-D maps of item vectors: each content modality as encoded, and the model's item vectors
after alignment / fusion, projected with t-SNE (scikit-learn) or UMAP (``umap-learn``, when
installed and asked for).

All maps of a run use the same sample of items (at most ``max_items``, drawn once with a fixed
seed), so an item sits at comparable places in the legend's colours across maps. Items a
modality has no vector for (masked rows: a missing image) are left out of that map.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_ITEMS = 1000
METHODS = ("tsne", "umap")


@dataclass
class ItemMap:
    """One projected map: ``xy[j]`` is the position of item ``rows[j]``."""

    title: str
    rows: np.ndarray
    xy: np.ndarray


def sample_rows(n_items: int, max_items: int = DEFAULT_MAX_ITEMS, seed: int = 0) -> np.ndarray:
    """Sorted item rows to draw (all of them when the catalogue is small)."""
    if n_items <= max_items:
        return np.arange(n_items)
    return np.sort(np.random.default_rng(seed).choice(n_items, max_items, replace=False))


def project(vectors: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """``[n, d] -> [n, 2]``; L2-normalised first, so the map shows directions (what cosine and
    dot-product retrieval compare), not vector lengths."""
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    n = len(x)
    if method == "umap":
        import umap  # optional: umap-learn

        return umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, n - 1)).fit_transform(x)
    from sklearn.manifold import TSNE

    # perplexity must stay below the number of points; small catalogues get a small one
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                metric="cosine").fit_transform(x)


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def item_maps(modalities: dict[str, tuple[np.ndarray, np.ndarray]], fused: np.ndarray | None,
              fused_title: str, rows: np.ndarray, method: str = "tsne") -> list[ItemMap]:
    """One map per modality (``name -> (features, mask)``) and one for the fused vectors."""
    maps: list[ItemMap] = []
    for name, (features, mask) in modalities.items():
        keep = rows[np.asarray(mask, dtype=bool)[rows]]
        if len(keep) >= 5:  # fewer points make no map
            maps.append(ItemMap(f"{name} (as encoded)", keep, project(features[keep], method)))
    if fused is not None and len(rows) >= 5:
        maps.append(ItemMap(fused_title, rows, project(fused[rows], method)))
    return maps


__all__ = ["DEFAULT_MAX_ITEMS", "METHODS", "ItemMap", "item_maps", "project", "sample_rows", "umap_available"]
