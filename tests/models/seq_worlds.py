"""A synthetic world where order is everything, shared by the sequential model tests.

Items have one of ``k`` types arranged on a cycle; every user walks the cycle from a random
type, one item of the current type per step, so the next item's type is the type after the
latest one, whatever else the user saw. The "text" feature reveals the type (plus noise).
The last event of every user is the test event, the one before the valid event
(``leave_last_out`` by timestamp). A share of the items (``cold``) occur only as test events:
no training interaction, only content can rank them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset, FeatureModality


def cycle_world(seed: int = 0, n_users: int = 120, n_items: int = 60, k: int = 6, steps: int = 12,
                text_dim: int = 16, cold_share: float = 0.15) -> Dataset:
    rng = np.random.default_rng(seed)
    item_type = np.arange(n_items) % k
    cold = np.zeros(n_items, dtype=bool)
    cold[rng.choice(n_items, int(n_items * cold_share), replace=False)] = True
    text = np.eye(k)[item_type] @ rng.normal(size=(k, text_dim)) + 0.2 * rng.normal(size=(n_items, text_dim))
    rows = []
    for u in range(n_users):
        t = int(rng.integers(0, k))
        seen: set[int] = set()
        for step in range(steps):
            last = step == steps - 1
            kind = np.flatnonzero((item_type == (t + step) % k) & ~np.isin(np.arange(n_items), list(seen)))
            pool = kind[cold[kind] == last] if (cold[kind] == last).any() else kind
            item = int(rng.choice(pool))
            seen.add(item)
            rows.append((u, item, float(1000 * u + step)))
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    mods = {"text": FeatureModality("text", "text", text)}
    ds = Dataset("cycle", range(n_users), range(n_items), inter, modalities=mods)
    ds.cold = cold  # test-only attribute
    return ds
