"""A small impression log: users click items of their own taste cluster and skip the items of
other clusters they were shown (label 0). Used by the label / pointwise tests."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset


def shown_world(n_users: int = 80, n_items: int = 60, n_clusters: int = 4, clicks: int = 8, skips: int = 6,
                negatives_in: tuple[str, ...] = ("train", "valid", "test"), seed: int = 0) -> Dataset:
    """Per user: ``clicks`` label-1 rows in their cluster (all but two in train, one valid, one
    test) and ``skips`` label-0 rows from other clusters (all but two in train, one valid, one
    test; kept only for the splits in ``negatives_in``)."""
    rng = np.random.default_rng(seed)
    item_c = np.arange(n_items) % n_clusters
    rows = []
    for u in range(n_users):
        c = u % n_clusters
        liked = rng.choice(np.flatnonzero(item_c == c), size=clicks, replace=False)
        skipped = rng.choice(np.flatnonzero(item_c != c), size=skips, replace=False)
        for items, label in ((liked, 1.0), (skipped, 0.0)):
            splits = ["valid", "test"] + ["train"] * (len(items) - 2)
            for it, split in zip(items, splits):
                if label == 0.0 and split not in negatives_in:
                    continue
                rows.append((u, int(it), label, split))
    frame = pd.DataFrame(rows, columns=["user", "item", "label", "split"])
    return Dataset("shown", np.arange(n_users), np.arange(n_items), frame)
