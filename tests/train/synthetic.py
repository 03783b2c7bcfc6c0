"""A small clustered implicit-feedback dataset with a per-user random split, for training tests.

Users and items belong to one of ``n_clusters`` taste clusters; a user draws most
of their items from their own cluster, the rest from a popularity-skewed
background. Collaborative models can learn the clusters; popularity cannot,
so "recall well above popularity" is a meaningful check.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset


def clustered_dataset(n_users: int = 300, n_items: int = 200, n_clusters: int = 6, per_user: int = 20,
                      in_cluster: float = 0.85, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    user_c = rng.integers(0, n_clusters, n_users)
    item_c = rng.integers(0, n_clusters, n_items)
    pop = rng.zipf(1.6, n_items).astype(float)
    pop = np.minimum(pop, 50.0)
    rows = []
    for u in range(n_users):
        own = np.flatnonzero(item_c == user_c[u])
        n_own = min(round(per_user * in_cluster), len(own))
        chosen = set(rng.choice(own, size=n_own, replace=False).tolist())
        p = pop / pop.sum()
        while len(chosen) < per_user:
            chosen.add(int(rng.choice(n_items, p=p)))
        items = np.array(sorted(chosen))
        rng.shuffle(items)
        n = len(items)
        n_test = n_valid = max(1, int(0.1 * n))
        split = ["test"] * n_test + ["valid"] * n_valid + ["train"] * (n - n_test - n_valid)
        for it, sp_ in zip(items, split):
            rows.append((u, int(it), sp_))
    frame = pd.DataFrame(rows, columns=["user", "item", "split"])
    return Dataset("synthetic", np.arange(n_users), np.arange(n_items), frame)
