"""The demo shop's simulated users: their tastes, the items each one picks and when.

The utility model is described in :mod:`fusionrec.data.demo` (module docstring). Random
draws happen in a fixed order on two streams (tastes and counts on ``rng``, per-event noise
and times on ``event_rng``), so the same seed always gives the same log.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusionrec.data.demo_vocab import CATEGORIES, COLOURS, MATERIALS, SHAPES

T0 = 1_704_067_200.0  # 2024-01-01 UTC: start of the interaction window
DAY = 86_400.0
WINDOW = 180 * DAY
NEW_ARRIVAL_CUTOFF = T0 + WINDOW - 30 * DAY
"""Training cut-off of the demo split: items listed from then on are new arrivals (cold)."""

# users per dense utility block (block x n_items floats)
_BLOCK = 512


@dataclass(frozen=True)
class DemoWeights:
    """Weights of the simulated users' utility (see the module docstring for the formula)."""

    category: float = 2.2
    material: float = 1.0
    colour: float = 2.2
    shape: float = 1.0
    interaction: float = 1.5
    secondary_affinity: float = 0.45
    popularity: float = 0.8
    zipf_exponent: float = 1.0
    latent: float = 0.5
    latent_dim: int = 8
    new_arrival_penalty: float = 1.0


@dataclass(frozen=True)
class _Tastes:
    """Per-user preferences ([n_users] arrays) and the items' latent factors and popularity."""

    cat1: np.ndarray
    cat2: np.ndarray
    col1: np.ndarray
    col2: np.ndarray
    material: np.ndarray
    shape: np.ndarray
    mix: np.ndarray          # weight of text traits vs image traits
    latent_users: np.ndarray
    latent_items: np.ndarray
    log_popularity: np.ndarray


@dataclass(frozen=True)
class _ItemTraits:
    category: np.ndarray
    material: np.ndarray
    colour: np.ndarray
    shape: np.ndarray


def simulate_interactions(n_users: int, mean_per_user: float, min_per_user: int, max_per_user: int,
                          w: DemoWeights, items: pd.DataFrame, rng: np.random.Generator,
                          event_rng: np.random.Generator) -> pd.DataFrame:
    """``user``, ``item`` (internal ids) and ``timestamp`` of every event, sorted by user and time."""
    n_items = len(items)
    tastes = _draw_tastes(n_users, n_items, w, rng)
    n_events = np.clip(
        np.round(rng.lognormal(math.log(mean_per_user) - 0.5 * 0.7**2, 0.7, size=n_users)),
        min_per_user, min(max_per_user, n_items),
    ).astype(np.int64)
    traits = _ItemTraits(
        category=pd.Categorical(items["trait_category"], categories=list(CATEGORIES)).codes,
        material=pd.Categorical(items["trait_material"], categories=list(MATERIALS)).codes,
        colour=pd.Categorical(items["trait_colour"], categories=list(COLOURS)).codes,
        shape=pd.Categorical(items["trait_shape"], categories=list(SHAPES)).codes,
    )
    new_arrival = items["trait_new_arrival"].to_numpy(bool)
    item_bias = (w.popularity * tastes.log_popularity - w.new_arrival_penalty * new_arrival).astype(np.float32)
    users, its = _draw_items(tastes, traits, item_bias, n_events, w, event_rng)
    ts = _timestamps(users, items["listed_at"].to_numpy(np.float64)[its], n_users, event_rng)
    frame = pd.DataFrame({"user": users, "item": its, "timestamp": ts})
    return frame.sort_values(["user", "timestamp", "item"], kind="stable").reset_index(drop=True)


def _draw_tastes(n_u: int, n_i: int, w: DemoWeights, rng: np.random.Generator) -> _Tastes:
    """Primary/secondary category and colour, one material and shape, text/image mix."""
    def two_distinct(k: int) -> tuple[np.ndarray, np.ndarray]:
        first = rng.integers(k, size=n_u)
        second = (first + rng.integers(1, k, size=n_u)) % k
        return first, second

    cat1, cat2 = two_distinct(len(CATEGORIES))
    col1, col2 = two_distinct(len(COLOURS))
    material = rng.integers(len(MATERIALS), size=n_u)
    shape = rng.integers(len(SHAPES), size=n_u)
    mix = rng.beta(2.0, 2.0, size=n_u)
    latent_users = rng.normal(0, 1 / math.sqrt(w.latent_dim), size=(n_u, w.latent_dim))
    latent_items = rng.normal(0, 1, size=(n_i, w.latent_dim))
    # Zipf-like popularity over a random ranking of the items.
    rank = rng.permutation(n_i) + 1
    return _Tastes(cat1, cat2, col1, col2, material, shape, mix, latent_users, latent_items,
                   -w.zipf_exponent * np.log(rank))


def _draw_items(t: _Tastes, it: _ItemTraits, item_bias: np.ndarray, n_events: np.ndarray, w: DemoWeights,
                event_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``n_events`` distinct items, drawn without replacement from the softmax
    over utilities; users in blocks so the dense utility block stays small."""
    rows_u, rows_i = [], []
    for start in range(0, len(n_events), _BLOCK):
        us = np.arange(start, min(start + _BLOCK, len(n_events)))
        first_cat, first_col = it.category[None, :] == t.cat1[us, None], it.colour[None, :] == t.col1[us, None]
        aff_cat = first_cat + w.secondary_affinity * (it.category[None, :] == t.cat2[us, None])
        aff_col = first_col + w.secondary_affinity * (it.colour[None, :] == t.col2[us, None])
        text_u = w.category * aff_cat + w.material * (it.material[None, :] == t.material[us, None])
        image_u = w.colour * aff_col + w.shape * (it.shape[None, :] == t.shape[us, None])
        util = (
            2 * t.mix[us, None] * text_u
            + 2 * (1 - t.mix[us, None]) * image_u
            + w.interaction * (first_cat & first_col)
            + w.latent * (t.latent_users[us] @ t.latent_items.T)
            + item_bias[None, :]
        ).astype(np.float32)
        # Gumbel-top-k: the k largest of utility + Gumbel noise are a draw without replacement
        # from the softmax over utilities (Plackett-Luce).
        perturbed = util + event_rng.gumbel(size=util.shape).astype(np.float32)
        k_max = int(n_events[us].max())
        # Only each row's top k_max matter: partition, then order just those.
        top = np.argpartition(-perturbed, k_max - 1, axis=1)[:, :k_max]
        top_vals = np.take_along_axis(perturbed, top, axis=1)
        order = np.take_along_axis(top, np.argsort(-top_vals, axis=1, kind="stable"), axis=1)
        for r, u in enumerate(us):
            chosen = order[r, : n_events[u]]
            rows_u.append(np.full(len(chosen), u, dtype=np.int64))
            rows_i.append(chosen.astype(np.int64))
    return np.concatenate(rows_u), np.concatenate(rows_i)


def _timestamps(users: np.ndarray, listed: np.ndarray, n_users: int, event_rng: np.random.Generator) -> np.ndarray:
    """Each user is active over a random stretch of the window; events are spread uniformly
    inside it in random order (the draw order is by utility, not time). An event cannot
    precede its item's listing (``listed``, per event): such events move into
    [listing, window end)."""
    start_t = event_rng.uniform(0, WINDOW * 0.6, size=n_users)
    span = event_rng.uniform(3 * DAY, WINDOW * 0.4, size=n_users)
    ts = T0 + start_t[users] + event_rng.uniform(0, 1, size=len(users)) * span[users]
    early = ts < listed
    ts[early] = listed[early] + event_rng.uniform(0, 1, size=int(early.sum())) * (T0 + WINDOW - listed[early])
    return np.floor(ts)
