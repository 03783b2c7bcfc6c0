"""Impressions, clicks and purchases for the demo shop, drawn from known propensities.

Opt in with ``make_demo_dataset(..., events=True)`` (``--set data.demo.events=true``, or a
dict of :class:`EventSettings` fields). The shop's catalogue (items, texts, images,
attributes, new arrivals) is unchanged; its interactions are replaced by an event log with
one row per impression and its furthest stage as the ``label``:

* ``0`` -- shown, not clicked (negative feedback: never a positive, a ranker's explicit negative);
* ``1`` -- clicked, not bought;
* ``2`` -- clicked and bought (a conversion: ``multitask``'s default ``conversion_label``).

How it is drawn (own random streams, seeded by the demo's ``seed``)
-------------------------------------------------------------------
Users get tastes like the demo's (primary/secondary category and colour, a material, a shape,
a text/image mix ``a_u``, a latent vector) plus a price budget. Then, per user:

1. **click utility** -- the demo's utility form (:class:`~fusionrec.data.demo.DemoWeights`:
   text traits, image traits, their interaction, Zipf popularity, latent taste, new-arrival
   penalty), standardised over the catalogue: ``z_u(i)``;
2. **exposure** -- ``n_u`` impressions (log-normal, mean ``impressions_per_user``) drawn
   without replacement from ``softmax(exposure_relevance * z_u + log popularity)``: the shop
   shows what it thinks the user likes, so clicked rows are a biased sample of the catalogue;
3. **click** ~ Bernoulli(``pCTR = s(ctr_bias + ctr_scale * z_u(i))``);
4. **purchase** given a click ~ Bernoulli(``pCVR = s(cvr_bias + cvr_scale * v_u(i))``) with
   ``v_u(i) = -|log price_i - log budget_u| / 0.5 + [material_i == material_u] + quality_i``:
   buying depends on the price (an attribute) fitting the budget, the material (text) and an
   item quality no content shows -- not on what made the user click.

:func:`demo_event_truth` returns the same log with the true ``p_click`` and ``p_convert``
(given a click) of every row, so a model's AUC can be read against the oracle's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.demo_users import DAY as _DAY
from fusionrec.data.demo_users import T0, WINDOW, DemoWeights
from fusionrec.data.demo_vocab import CATEGORIES, COLOURS, MATERIALS, SHAPES
from fusionrec.errors import UserError


@dataclass(frozen=True)
class EventSettings:
    """Parameters of the event simulation (see the module docstring)."""

    impressions_per_user: float = 40.0
    min_impressions: int = 10
    max_impressions: int = 200
    exposure_relevance: float = 1.0
    ctr_bias: float = -2.0
    ctr_scale: float = 1.0
    cvr_bias: float = -0.5
    cvr_scale: float = 1.0
    quality_std: float = 0.8

    @classmethod
    def from_value(cls, value: bool | dict[str, Any] | EventSettings) -> EventSettings:
        """``True`` -> the defaults; a dict -> those fields over the defaults (unknown keys are errors)."""
        if isinstance(value, EventSettings):
            return value
        if value is True:
            return cls()
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise UserError(f"demo events: unknown setting(s) {unknown}", "data.demo.events",
                                f"use true or a mapping of {sorted(known)}")
            return cls(**value)
        raise UserError(f"demo events: {value!r} is neither true nor a mapping", "data.demo.events",
                        "use data.demo.events=true, or a mapping such as {impressions_per_user: 40}")


def _user_tastes(n_users: int, items: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    def two(k: int) -> tuple[np.ndarray, np.ndarray]:
        first = rng.integers(k, size=n_users)
        return first, (first + rng.integers(1, k, size=n_users)) % k

    cat1, cat2 = two(len(CATEGORIES))
    col1, col2 = two(len(COLOURS))
    log_price = np.log(items["price"].to_numpy(np.float64))
    return {
        "cat1": cat1, "cat2": cat2, "col1": col1, "col2": col2,
        "mat": rng.integers(len(MATERIALS), size=n_users), "shape": rng.integers(len(SHAPES), size=n_users),
        "mix": rng.beta(2.0, 2.0, size=n_users),
        "budget": rng.normal(np.median(log_price), 0.5 * log_price.std() + 1e-9, size=n_users),
    }


def _item_codes(items: pd.DataFrame) -> dict[str, np.ndarray]:
    def codes(col: str, names: tuple[str, ...]) -> np.ndarray:
        return pd.Categorical(items[col], categories=list(names)).codes.astype(np.int64)

    return {"cat": codes("trait_category", CATEGORIES), "mat": codes("trait_material", MATERIALS),
            "col": codes("trait_colour", COLOURS), "shape": codes("trait_shape", SHAPES),
            "new": items["trait_new_arrival"].to_numpy(bool),
            "log_price": np.log(items["price"].to_numpy(np.float64))}


def simulate_events(items: pd.DataFrame, n_users: int, seed: int,
                    settings: EventSettings | None = None) -> pd.DataFrame:
    """The event log: ``user, item, timestamp, label`` (0 shown, 1 clicked, 2 bought) plus the true
    ``p_click`` and ``p_convert`` (given a click) of every impression."""
    s = settings or EventSettings()
    w = DemoWeights()
    taste_ss, item_ss, show_ss, event_ss = np.random.SeedSequence([int(seed), 0xE7E175]).spawn(4)
    rng = np.random.default_rng(taste_ss)
    taste = _user_tastes(n_users, items, rng)
    item_rng = np.random.default_rng(item_ss)
    it = _item_codes(items)
    n_items = len(items)
    p_u = rng.normal(0, 1 / math.sqrt(w.latent_dim), size=(n_users, w.latent_dim))
    q_i = item_rng.normal(0, 1, size=(n_items, w.latent_dim))
    log_pop = -w.zipf_exponent * np.log(item_rng.permutation(n_items) + 1)
    quality = item_rng.normal(0, s.quality_std, size=n_items)
    n_imp = np.clip(np.round(rng.lognormal(math.log(s.impressions_per_user) - 0.5 * 0.6 ** 2, 0.6, size=n_users)),
                    s.min_impressions, min(s.max_impressions, n_items)).astype(np.int64)
    show_rng, event_rng = np.random.default_rng(show_ss), np.random.default_rng(event_ss)
    parts = []
    for start in range(0, n_users, 512):
        us = np.arange(start, min(start + 512, n_users))
        z = _click_utility(us, taste, it, p_u, q_i, log_pop, w)
        shown = z * s.exposure_relevance + log_pop[None, :] + show_rng.gumbel(size=z.shape)
        k = int(n_imp[us].max())
        top = np.argpartition(-shown, k - 1, axis=1)[:, :k]
        for r, u in enumerate(us):
            chosen = top[r][np.argsort(-shown[r, top[r]])][: n_imp[u]]
            p_click = _sigmoid(s.ctr_bias + s.ctr_scale * z[r, chosen])
            fit = (-np.abs(it["log_price"][chosen] - taste["budget"][u]) / 0.5
                   + (it["mat"][chosen] == taste["mat"][u]) + quality[chosen])
            p_conv = _sigmoid(s.cvr_bias + s.cvr_scale * fit)
            parts.append(pd.DataFrame({"user": u, "item": chosen, "p_click": p_click, "p_convert": p_conv}))
    frame = pd.concat(parts, ignore_index=True)
    clicked = event_rng.random(len(frame)) < frame["p_click"].to_numpy()
    bought = clicked & (event_rng.random(len(frame)) < frame["p_convert"].to_numpy())
    frame["label"] = np.where(bought, 2.0, np.where(clicked, 1.0, 0.0)).astype(np.float32)
    frame["timestamp"] = _timestamps(frame, items, event_rng, T0, WINDOW)
    frame = frame.sort_values(["user", "timestamp", "item"], kind="stable").reset_index(drop=True)
    return frame[["user", "item", "timestamp", "label", "p_click", "p_convert"]]


def _click_utility(us: np.ndarray, taste: dict[str, np.ndarray], it: dict[str, np.ndarray], p_u: np.ndarray,
                   q_i: np.ndarray, log_pop: np.ndarray, w: Any) -> np.ndarray:
    """The demo's utility form for users ``us`` x every item, standardised per user."""
    def aff(kind: str, one: str, two: str) -> np.ndarray:
        codes = it[kind][None, :]
        return (codes == taste[one][us, None]) + w.secondary_affinity * (codes == taste[two][us, None])

    text = w.category * aff("cat", "cat1", "cat2") + w.material * (it["mat"][None, :] == taste["mat"][us, None])
    image = w.colour * aff("col", "col1", "col2") + w.shape * (it["shape"][None, :] == taste["shape"][us, None])
    mix = taste["mix"][us, None]
    util = (2 * mix * text + 2 * (1 - mix) * image
            + w.interaction * ((it["cat"][None, :] == taste["cat1"][us, None])
                               & (it["col"][None, :] == taste["col1"][us, None]))
            + w.latent * (p_u[us] @ q_i.T) + w.popularity * log_pop[None, :]
            - w.new_arrival_penalty * it["new"][None, :])
    return (util - util.mean(1, keepdims=True)) / util.std(1, keepdims=True).clip(1e-9)


def _timestamps(frame: pd.DataFrame, items: pd.DataFrame, rng: np.random.Generator, t0: float,
                window: float) -> np.ndarray:
    """Each user active over a random stretch of the window; never before the item's listing."""
    n_users = int(frame["user"].max()) + 1
    users = frame["user"].to_numpy()
    start = rng.uniform(0, window * 0.6, size=n_users)
    span = rng.uniform(3 * _DAY, window * 0.4, size=n_users)
    ts = t0 + start[users] + rng.uniform(0, 1, size=len(frame)) * span[users]
    listed = items["listed_at"].to_numpy(np.float64)[frame["item"].to_numpy()]
    early = ts < listed
    ts[early] = listed[early] + rng.uniform(0, 1, size=int(early.sum())) * (t0 + window - listed[early])
    return np.floor(ts)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def with_demo_events(dataset: Any, seed: int, settings: bool | dict[str, Any] | EventSettings = True) -> Any:
    """``dataset`` (the demo shop) with its interactions replaced by the event log (no split yet)."""
    events = simulate_events(dataset.items, dataset.n_users, seed, EventSettings.from_value(settings))
    inter = pd.DataFrame({"user": events["user"].to_numpy(np.int64), "item": events["item"].to_numpy(np.int64),
                          "rating": np.float32(np.nan), "timestamp": events["timestamp"].to_numpy(np.float64),
                          "label": events["label"].to_numpy(np.float32)})
    return dataset._replace(interactions=inter)


def demo_event_truth(dataset: Any, seed: int = 0,
                     settings: bool | dict[str, Any] | EventSettings = True) -> pd.DataFrame:
    """The event log of :func:`with_demo_events` with the true ``p_click`` / ``p_convert`` per row
    (same order as ``dataset.interactions`` before any split; join on ``user, item``)."""
    return simulate_events(dataset.items, dataset.n_users, seed, EventSettings.from_value(settings))


__all__ = ["EventSettings", "demo_event_truth", "simulate_events", "with_demo_events"]
