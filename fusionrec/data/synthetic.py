"""A synthetic catalogue of any size, for scaling runs: content vectors, users, power-law events.

The demo shop (:mod:`fusionrec.data.demo`) renders images and texts and stops at a
few thousand items; this generator makes the shape of a large shop in seconds and
memory linear in its size, with no media: every item has a dense ``content``
vector (a stand-in for encoded text/images), drawn around one of ``n_topics``
topic centres, and users interact mostly within their favourite topic, so
content carries real signal. Item popularity and user activity both follow
power laws (Zipf exponents ``item_zipf`` / ``user_zipf``), as in real logs.

Reached as ``data.format: synthetic`` with ``data.synthetic: {n_items: ...}``
(``fusionrec train --set data.format=synthetic --set data.synthetic.n_items=100000``)
or :func:`make_synthetic_dataset` from Python. The split is seeded random per user
(``data.split``) like any other dataset.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError


class SyntheticParams(BaseModel):
    """Arguments of the synthetic catalogue (``data.synthetic``)."""

    model_config = ConfigDict(extra="forbid")

    n_items: int = Field(10_000, ge=10, description="items in the catalogue")
    n_users: int | None = Field(None, ge=2, description="users (default: n_items / 2)")
    interactions_per_item: float = Field(5.0, gt=0, description="events = this x n_items")
    dim: int = Field(64, ge=2, description="dimension of the content vectors")
    n_topics: int | None = Field(None, ge=2, description="topics (default: about sqrt(n_items), at most 1000)")
    in_topic: float = Field(0.8, ge=0, le=1, description="share of a user's events in their favourite topic")
    noise: float = Field(0.6, ge=0, description="spread of content vectors around their topic centre")
    item_zipf: float = Field(1.0, ge=0, description="power-law exponent of item popularity")
    user_zipf: float = Field(0.8, ge=0, description="power-law exponent of user activity")
    seed: int = Field(0, description="random seed")


def make_synthetic_dataset(**params: Any) -> Dataset:
    """A :class:`Dataset` with ``n_items`` items, a ``content`` modality and power-law events."""
    try:
        p = SyntheticParams(**params)
    except Exception as err:  # pydantic's message names the field and the rule
        raise UserError(f"bad data.synthetic arguments: {err}", "data.synthetic",
                        f"valid keys: {sorted(SyntheticParams.model_fields)}") from err
    rng = np.random.default_rng(p.seed)
    n_users = p.n_users or max(2, p.n_items // 2)
    n_topics = p.n_topics or int(min(1000, max(2, round(np.sqrt(p.n_items)))))
    n_events = round(p.interactions_per_item * p.n_items)

    topic_of_item = rng.integers(0, n_topics, p.n_items)
    centres = rng.normal(size=(n_topics, p.dim)).astype(np.float32)
    content = centres[topic_of_item]
    content += p.noise * rng.standard_normal((p.n_items, p.dim), dtype=np.float32)

    popularity = _zipf_weights(p.n_items, p.item_zipf, rng)
    activity = _zipf_weights(n_users, p.user_zipf, rng)
    favourite = rng.integers(0, n_topics, n_users)

    users = rng.choice(n_users, size=n_events, p=activity)
    in_topic = rng.random(n_events) < p.in_topic
    topics = np.where(in_topic, favourite[users], rng.integers(0, n_topics, n_events))
    items = _draw_in_topics(topics, topic_of_item, popularity, n_topics, rng)

    # every user keeps at least one event: users with none in the draw get one in their topic
    missing = np.setdiff1d(np.arange(n_users), users, assume_unique=False)
    if len(missing):
        users = np.concatenate([users, missing])
        items = np.concatenate([items, _draw_in_topics(favourite[missing], topic_of_item, popularity,
                                                       n_topics, rng)])
    width = len(str(max(p.n_items, n_users) - 1))
    interactions = pd.DataFrame({
        "user": users.astype(np.int64),
        "item": items.astype(np.int64),
        "rating": np.float32(np.nan),
        "timestamp": np.arange(len(users), dtype=np.float64),
        "label": np.float32(1.0),
    })
    item_table = pd.DataFrame({"item_id": [f"i{j:0{width}d}" for j in range(p.n_items)],
                               "topic": topic_of_item.astype(np.int32)})
    dataset = Dataset(f"synthetic-{p.n_items}", [f"u{u:0{width}d}" for u in range(n_users)],
                      item_table["item_id"].tolist(), interactions, item_table)
    dataset.add_modality(FeatureModality("content", "other", content, None,
                                         source=f"synthetic topics={n_topics} dim={p.dim} seed={p.seed}"))
    return dataset


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities proportional to rank^-exponent, ranks shuffled over the ids."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    rng.shuffle(w)
    return w / w.sum()


def _draw_in_topics(topics: np.ndarray, topic_of_item: np.ndarray, popularity: np.ndarray,
                    n_topics: int, rng: np.random.Generator) -> np.ndarray:
    """For each wanted topic, one item of that topic drawn by popularity (vectorised, O(n log n)).

    Items sorted by topic get a cumulative popularity normalised to [t, t + 1) inside
    topic ``t``; a draw for topic ``t`` is ``t + u`` located by binary search.
    """
    order = np.argsort(topic_of_item, kind="stable")
    sorted_topics = topic_of_item[order]
    pop = popularity[order]
    totals = np.bincount(sorted_topics, weights=pop, minlength=n_topics)
    within = np.cumsum(pop) - np.repeat(np.cumsum(totals) - totals, np.bincount(sorted_topics, minlength=n_topics))
    cum = sorted_topics + within / np.maximum(totals[sorted_topics], 1e-300)
    # topics without items (possible for tiny catalogues) borrow the next topic that has some
    has_items = np.bincount(sorted_topics, minlength=n_topics) > 0
    if not has_items.all():
        fallback = np.flatnonzero(has_items)
        topics = fallback[np.minimum(np.searchsorted(fallback, topics), len(fallback) - 1)]
    target = topics + rng.random(len(topics)) * (1 - 1e-12)
    pos = np.minimum(np.searchsorted(cum, target, side="left"), len(cum) - 1)
    return order[pos]
