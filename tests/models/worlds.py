"""A synthetic typed world shared by the multimodal model tests.

Items have one of ``k`` types; the "text" feature reveals the type (plus noise), the
"image" feature is noise and absent for a share of the items; every user likes one
type. A fifth of the items never occur in training (cold, all their interactions are in
test) -- only content can rank them. ``ds.cold`` marks them (a test-only attribute).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset, FeatureModality


def typed_world(seed: int, n_users: int, n_items: int, k: int, text_dim: int, image_dim: int,
                image_missing: float) -> Dataset:
    rng = np.random.default_rng(seed)
    item_type = rng.integers(0, k, n_items)
    cold = np.zeros(n_items, dtype=bool)
    cold[rng.choice(n_items, n_items // 5, replace=False)] = True
    text = np.eye(k)[item_type] @ rng.normal(size=(k, text_dim)) + 0.3 * rng.normal(size=(n_items, text_dim))
    image = rng.normal(size=(n_items, image_dim))
    img_mask = rng.random(n_items) >= image_missing
    rows = []
    for u in range(n_users):
        pool = np.flatnonzero(item_type == rng.integers(0, k))
        for it in rng.choice(pool, min(10, len(pool)), replace=False):
            split = "test" if cold[it] else rng.choice(["train", "valid", "test"], p=[0.8, 0.1, 0.1])
            rows.append((u, int(it), split))
    inter = pd.DataFrame(rows, columns=["user", "item", "split"])
    mods = {"text": FeatureModality("text", "text", text),
            "image": FeatureModality("image", "image", image, mask=img_mask)}
    ds = Dataset("synthetic", range(n_users), range(n_items), inter, modalities=mods)
    ds.cold = cold  # test-only attribute
    return ds
