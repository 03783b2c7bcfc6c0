"""A few users as a person would look at them: their last items and their top-10.

Users are drawn once (fixed seed) among those evaluated on the test split with at least
three training interactions, so every run of a report shows the same people. The top-10 is
the run's own ranking for the test split (training positives -- and, under the ``full``
protocol, validation positives -- masked, as in evaluation); a recommended item the user
really chose in the test split is marked as a hit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusionrec.data.dataset import positive_rows

TOP_N = 10
HISTORY_N = 5


@dataclass
class ItemCard:
    """One item as shown: its id, title, thumbnail (data URI or None), and whether it is a hit."""

    item_id: str
    title: str
    image: str | None = None
    hit: bool = False
    score: float | None = None


@dataclass
class UserExample:
    user_id: str
    n_history: int
    history: list[ItemCard] = field(default_factory=list)
    recommendations: list[ItemCard] = field(default_factory=list)
    n_test: int = 0


def choose_users(evaluator: Any, n: int = 4, min_history: int = 3, seed: int = 0) -> list[str]:
    """Original ids of ``n`` test users with at least ``min_history`` training interactions."""
    users = evaluator.split_truth("test").users
    train = evaluator.dataset.interaction_matrix("train", positives_only=True)
    length = np.diff(train.indptr)[users]
    pool = users[length >= min_history] if (length >= min_history).any() else users
    if len(pool) == 0:
        return []
    picked = np.sort(np.random.default_rng(seed).choice(pool, min(n, len(pool)), replace=False))
    return [str(evaluator.dataset.user_ids[u]) for u in picked]


def user_examples(loaded: Any, evaluator: Any, user_ids: list[str], thumb: int = 72) -> list[UserExample]:
    """Cards for ``user_ids`` (those the run's dataset does not know are skipped)."""
    from fusionrec.report.items import image_paths, item_titles, thumbnail_data_uri

    dataset = loaded.dataset
    index = {str(u): i for i, u in enumerate(dataset.user_ids)}
    rows = [index[u] for u in user_ids if u in index]
    if not rows:
        return []
    titles = item_titles(dataset.items, list(dataset.item_ids))
    cache: dict[int, str | None] = {}

    def card(item: int, hit: bool = False, score: float | None = None) -> ItemCard:
        if item not in cache:
            path = image_paths(dataset.items, dataset.root, [item])
            cache[item] = thumbnail_data_uri(path[0], thumb) if path else None
        return ItemCard(str(dataset.item_ids[item]), titles[item], cache[item], hit, score)

    top, scores = evaluator.topk(loaded.model, np.asarray(rows), TOP_N, split="test", return_scores=True)
    test = dataset.interaction_matrix("test", positives_only=True)
    train = dataset.split_frame("train")
    train = train[positive_rows(train)]
    out = []
    for j, u in enumerate(rows):
        mine = train[train["user"] == u]
        if "timestamp" in mine.columns and mine["timestamp"].notna().any():
            mine = mine.sort_values("timestamp", kind="stable")
        last = mine["item"].to_numpy()[-HISTORY_N:][::-1]   # most recent first
        truth = set(test[u].indices.tolist())
        ex = UserExample(str(dataset.user_ids[u]), len(mine), n_test=len(truth))
        ex.history = [card(int(i)) for i in last]
        ex.recommendations = [card(int(i), int(i) in truth, float(s)) for i, s in zip(top[j], scores[j]) if i >= 0]
        out.append(ex)
    return out


__all__ = ["HISTORY_N", "TOP_N", "ItemCard", "UserExample", "choose_users", "user_examples"]
