"""A built-in synthetic multimodal shop, so ``fusionrec demo`` runs with nothing downloaded.

What is generated
-----------------
Every item of the shop has

* a **text** (``title`` + ``description``; the ``text`` column is the two joined and is
  the field text encoders should read, see :data:`DEMO_TEXT_COLUMN` / :func:`demo_text`).
  It is written from varied templates with synonyms (``"oak"``, ``"solid wood"``,
  ``"timber"`` ... for one material; ``"rucksack"``, ``"daypack"`` ... for one category)
  plus neutral filler sentences, so a trait is never a single fixed token;
* a rendered **image** ``root/images/<item_id>.jpg`` (relative path in ``image_path``):
  one shape filled with one colour on a lightly tinted, noisy background, with
  random size, position, rotation and colour jitter;
* **attributes**: ``price`` (depends on category and material), ``brand`` (brands
  specialise in a few categories) and ``listed_at`` (when the item went on sale).

Hidden traits (ground truth, ``trait_*`` columns)
-------------------------------------------------
* ``trait_category`` (lamp, mug, ...) and ``trait_material`` (wood, metal, ...)
  appear **only in the text**; the image never shows them.
* ``trait_colour`` (red, blue, ...) and ``trait_shape`` (circle, star, ...) appear
  **only in the image**; the text never names a colour or a shape
  (:data:`FORBIDDEN_TEXT_WORDS` lists what it must never contain).
* ``trait_new_arrival`` marks the cold items (see below).

The ``trait_*`` columns exist so tests can check that the signal is there. They are
the answer key: **models, encoders and feature pipelines must not read them.**

How users behave
----------------
Each simulated user ``u`` has a primary and a secondary preferred category and colour,
one preferred material and shape, a personal mix ``a_u ~ Beta(2, 2)`` between caring
about text traits and image traits, and a small latent taste vector. The utility of
item ``i`` is::

    U[u, i] = 2 a_u       * (w_cat  * aff_cat[u, cat_i]  + w_mat   * [mat_i   == mat_u])
            + 2 (1 - a_u) * (w_col  * aff_col[u, col_i]  + w_shape * [shape_i == shape_u])
            + w_inter * [cat_i == cat_u and col_i == col_u]     # needs BOTH modalities
            + w_pop * log zipf_popularity_i                        # popularity effect
            + w_latent * <p_u, q_i>                                # taste no content explains
            - new_arrival_penalty * [i is a new arrival]

(``aff`` is 1 for the primary, ``secondary_affinity`` for the secondary preference,
0 otherwise). A user draws a long-tailed number of distinct items (log-normal, clipped to
``[min_per_user, max_per_user]``) from the softmax over ``U[u, :]`` without replacement,
via the Gumbel-top-k trick (exactly Plackett-Luce sampling); the Gumbel draws are the
per-event noise. Events get timestamps over a ~half-year window.

Why this design: the text-only view sees category and material, so it can explain the
text part of every user's taste; the image-only view sees colour and shape, the other part.
Because the mix ``a_u`` varies across users, neither view is enough for everyone, and the
interaction term rewards items matching the primary category *and* the primary colour,
which only a model that sees both modalities can find. Popularity is Zipf-like, so a
popularity baseline is a real baseline, and a latent term leaves something for ID-based
collaborative filtering. ``tests/data/test_demo.py`` verifies with trait oracles that a
text-only and an image-only oracle each beat popularity and that using both beats each
alone by a clear margin.

Cold items: a fraction ``new_arrival_fraction`` (12%) of the items are new arrivals, listed
in the last 30 days of the window (from :data:`NEW_ARRIVAL_CUTOFF`) with a small utility
penalty; their events are timestamped after their listing. The predefined split
(:func:`new_arrival_split`) is that of a shop that trained its models at the cut-off:
every event on a new arrival is in valid or test, none in train, so these items are cold
(no training interaction) while their text and image are as informative as anyone's --
the case content features are for. ``fusionrec demo`` reports warm and cold items apart
(:mod:`fusionrec.evaluate.slices`).

Caching
-------
Generation is deterministic in its parameters. Under ``root`` the generator writes
``images/``, ``items.parquet``, ``interactions.parquet`` and, last, ``demo.json`` with the
parameters; a later call with the same parameters and root loads those files instead of
regenerating. With ``root=None`` the data goes to ``$FUSIONREC_CACHE/demo/<key>``
(default ``~/.cache/fusionrec/demo/<key>``), ``key`` being a hash of the parameters.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset
from fusionrec.data.demo_cache import (
    GENERATOR_VERSION,
    DemoParams,
    default_root,
    load_cached,
    to_dataset,
    write_cache,
)
from fusionrec.data.demo_images import render_images, render_item_image
from fusionrec.data.demo_users import (
    DAY,
    NEW_ARRIVAL_CUTOFF,
    T0,
    WINDOW,
    DemoWeights,
    simulate_interactions,
)
from fusionrec.data.demo_vocab import (
    BRANDS,
    CATEGORIES,
    CATEGORY_PRICE,
    COLOURS,
    FORBIDDEN_TEXT_WORDS,
    MATERIAL_PRICE,
    MATERIALS,
    SHAPES,
    demo_text,
    write_text,
)
from fusionrec.errors import UserError

__all__ = [
    "CATEGORIES",
    "COLOURS",
    "DEMO_TEXT_COLUMN",
    "FORBIDDEN_TEXT_WORDS",
    "GENERATOR_VERSION",
    "IMAGE_TRAITS",
    "MATERIALS",
    "NEW_ARRIVAL_CUTOFF",
    "SHAPES",
    "TEXT_TRAITS",
    "TRAIT_COLUMNS",
    "DemoWeights",
    "demo_text",
    "make_demo_dataset",
    "new_arrival_split",
    "render_item_image",
]

DEMO_TEXT_COLUMN = "text"
"""Column of ``dataset.items`` that text encoders should read (title + description)."""

TEXT_TRAITS = ("trait_category", "trait_material")
IMAGE_TRAITS = ("trait_colour", "trait_shape")
TRAIT_COLUMNS = TEXT_TRAITS + IMAGE_TRAITS + ("trait_new_arrival",)
"""Hidden ground truth in ``dataset.items``; for tests and diagnostics only, never for models."""

# ---------------------------------------------------------------------------- public API
def make_demo_dataset(
    n_users: int = 3000,
    n_items: int = 2000,
    seed: int = 0,
    root: str | Path | None = None,
    image_size: int = 96,
    *,
    min_per_user: int = 5,
    max_per_user: int = 60,
    mean_per_user: float = 14.0,
    new_arrival_fraction: float = 0.12,
    missing_image_fraction: float = 0.0,
    weights: DemoWeights | None = None,
    jpeg_quality: int = 90,
    progress: bool = False,
    use_cache: bool = True,
    split_seed: int | None = 999,
    events: bool | dict[str, Any] | None = None,
) -> Dataset:
    """Generate (or load from the cache under ``root``) the synthetic multimodal demo shop.

    Parameters
    ----------
    n_users, n_items:
        Catalogue and user-base size; every user gets at least ``min_per_user`` events.
    seed:
        Same seed and parameters -> identical interactions and identical image bytes.
    root:
        Folder that receives ``images/<item_id>.jpg`` and the cached tables; becomes
        ``dataset.root`` (``image_path`` is relative to it). ``None`` uses a per-parameter
        folder under ``$FUSIONREC_CACHE`` (default ``~/.cache/fusionrec``).
    image_size:
        Side of the square images in pixels.
    min_per_user, max_per_user, mean_per_user:
        Long-tailed (log-normal) number of distinct items per user, clipped to the range.
    new_arrival_fraction:
        Share of items that are recent, penalised new arrivals (cold items).
    missing_image_fraction:
        Share of items with no image (``image_path`` is missing, no file written), to
        exercise missing-modality handling; 0 by default.
    weights:
        Utility weights of the simulated users (:class:`DemoWeights`).
    progress:
        Show a tqdm bar while rendering images.
    use_cache:
        Reuse a previous generation with identical parameters found under ``root``.
    split_seed:
        Seed of the predefined split (:func:`new_arrival_split`: new arrivals only in
        valid/test, the other events split per user 80/10/10); ``None`` returns the
        interactions without a split.
    events:
        Opt-in: replace the interactions by impressions, clicks and purchases drawn from
        known propensities (:mod:`fusionrec.data.demo_events`; ``True`` or a mapping of its
        settings). Off by default: the shop's own interactions.

    Returns
    -------
    Dataset
        ``name="demo"``, a predefined split (see ``split_seed``), ``items`` with ``item_id``,
        ``title``, ``description``, ``text``, ``image_path``, ``price``, ``brand``,
        ``listed_at`` and the hidden ``trait_*`` columns; no feature modalities yet
        (the encoders compute those from ``text`` and ``image_path``).
    """
    weights = weights or DemoWeights()
    _check_args(n_users, n_items, image_size, min_per_user, max_per_user, mean_per_user,
                new_arrival_fraction, missing_image_fraction, jpeg_quality)
    params = DemoParams(
        n_users=int(n_users), n_items=int(n_items), seed=int(seed), image_size=int(image_size),
        min_per_user=int(min_per_user), max_per_user=int(max_per_user),
        mean_per_user=float(mean_per_user), new_arrival_fraction=float(new_arrival_fraction),
        missing_image_fraction=float(missing_image_fraction), jpeg_quality=int(jpeg_quality),
        weights=asdict(weights),
    )
    root = Path(root) if root is not None else default_root(params)
    if use_cache:
        cached = load_cached(root, params)
        if cached is not None:
            return _finish(cached, params.seed, split_seed, events)

    root.mkdir(parents=True, exist_ok=True)
    # Independent streams: changing e.g. the number of users never changes the catalogue.
    ss = np.random.SeedSequence([params.seed, 0xDE40])
    item_ss, user_ss, event_ss, image_ss = ss.spawn(4)
    items = _make_items(params, np.random.default_rng(item_ss))
    interactions = simulate_interactions(params.n_users, params.mean_per_user, params.min_per_user,
                                         params.max_per_user, weights, items, np.random.default_rng(user_ss),
                                         np.random.default_rng(event_ss))
    render_images(items, root, params.image_size, params.jpeg_quality, image_ss, progress)

    write_cache(root, params, items, interactions)
    return _finish(to_dataset(items, interactions, root), params.seed, split_seed, events)


def _finish(dataset: Dataset, seed: int, split_seed: int | None, events: bool | dict[str, Any] | None) -> Dataset:
    """The opt-in event log (not cached: it is drawn in seconds), then the predefined split."""
    if events:
        from fusionrec.data.demo_events import with_demo_events

        dataset = with_demo_events(dataset, seed, events)
    return dataset if split_seed is None else new_arrival_split(dataset, seed=split_seed)


def new_arrival_split(dataset: Dataset, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 999,
                      cutoff: float = NEW_ARRIVAL_CUTOFF) -> Dataset:
    """The demo's predefined split: a shop that trained its models on the day of ``cutoff``.

    Every event on an item listed at or after ``cutoff`` (``items.listed_at``; the new
    arrivals) goes to valid or test, half and half at random, so these items have no
    training interaction: they are the cold items a content model must place. All other
    events are split per user at random by ``ratios`` with MMRec's rule
    (:func:`fusionrec.data.split.random_split`), as before new arrivals existed.
    """
    # lazy: split.py is not needed to generate or load the shop
    from fusionrec.data.split import random_split

    inter = dataset.interactions
    listed = dataset.items["listed_at"].to_numpy(np.float64)
    new = listed[inter["item"].to_numpy(np.int64)] >= cutoff
    labels = np.empty(len(inter), dtype=object)
    if (~new).any():
        labels[~new] = random_split(dataset.subset_interactions(~new), ratios, seed).interactions["split"].to_numpy()
    rng = np.random.default_rng([seed, 0x4E4557])  # own stream: the warm split does not move
    labels[new] = np.where(rng.random(int(new.sum())) < 0.5, "valid", "test")
    return dataset.with_split(labels)


# ---------------------------------------------------------------------------- items
def _make_items(params: DemoParams, rng: np.random.Generator) -> pd.DataFrame:
    n = params.n_items
    cat_names = list(CATEGORIES)
    mat_names = list(MATERIALS)
    cats = rng.integers(len(cat_names), size=n)
    mats = rng.integers(len(MATERIALS), size=n)
    cols = rng.integers(len(COLOURS), size=n)
    shapes = rng.integers(len(SHAPES), size=n)
    new_arrival = np.zeros(n, dtype=bool)
    n_new = round(params.new_arrival_fraction * n)
    if n_new:
        new_arrival[rng.choice(n, size=n_new, replace=False)] = True

    # Brands specialise in two categories (80% of a category's items come from its specialists),
    # so brand is a realistic, partly redundant attribute.
    brand_specialty = np.stack([rng.permutation(len(cat_names)) for _ in range(len(BRANDS))])[:, :2]
    brands = np.empty(n, dtype=object)
    for j in range(n):
        if rng.random() < 0.8:
            specialists = np.flatnonzero((brand_specialty == cats[j]).any(axis=1))
            pool = specialists if len(specialists) else np.arange(len(BRANDS))
        else:
            pool = np.arange(len(BRANDS))
        brands[j] = BRANDS[int(rng.choice(pool))]

    price = np.array([CATEGORY_PRICE[cat_names[c]] * MATERIAL_PRICE[mat_names[m]] for c, m in zip(cats, mats)])
    price = np.round(price * rng.lognormal(0.0, 0.25, size=n)) - 0.01
    price = np.maximum(price, 2.99)

    # Listing time: old items anywhere in the 200 days before the window, new arrivals in its
    # last 30 days (the window is [0, WINDOW) seconds after T0).
    listed = np.where(
        new_arrival,
        T0 + rng.uniform(WINDOW - 30 * DAY, WINDOW - 3 * DAY, size=n),
        T0 - rng.uniform(0, 200 * DAY, size=n),
    )

    titles, descriptions = [], []
    for j in range(n):
        t, d = write_text(cat_names[cats[j]], mat_names[mats[j]], brands[j], rng)
        titles.append(t)
        descriptions.append(d)

    has_image = np.ones(n, dtype=bool)
    n_missing = round(params.missing_image_fraction * n)
    if n_missing:
        has_image[rng.choice(n, size=n_missing, replace=False)] = False

    width = max(5, len(str(n - 1)))
    item_ids = [f"item{j:0{width}d}" for j in range(n)]
    frame = pd.DataFrame(
        {
            "item_id": item_ids,
            "title": titles,
            "description": descriptions,
            "image_path": [f"images/{iid}.jpg" if ok else None for iid, ok in zip(item_ids, has_image)],
            "price": price.astype(np.float64),
            "brand": brands.astype(str),
            "listed_at": listed.astype(np.float64),
            "trait_category": np.asarray(cat_names, dtype=object)[cats],
            "trait_material": np.asarray(mat_names, dtype=object)[mats],
            "trait_colour": np.asarray(list(COLOURS), dtype=object)[cols],
            "trait_shape": np.asarray(SHAPES, dtype=object)[shapes],
            "trait_new_arrival": new_arrival,
        }
    )
    frame.insert(3, DEMO_TEXT_COLUMN, [demo_text(r) for r in frame[["title", "description"]].to_dict("records")])
    return frame


def _check_args(n_users: int, n_items: int, image_size: int, min_per_user: int, max_per_user: int,
                mean_per_user: float, new_arrival_fraction: float, missing_image_fraction: float,
                jpeg_quality: int) -> None:
    where = "make_demo_dataset(...) / `fusionrec demo` options"
    if n_users < 1 or n_items < 2:
        raise UserError(f"demo needs n_users >= 1 and n_items >= 2, got n_users={n_users}, n_items={n_items}",
                        where, "use e.g. n_users=3000, n_items=2000 (the defaults)")
    if not 1 <= min_per_user <= max_per_user:
        raise UserError(f"need 1 <= min_per_user <= max_per_user, got {min_per_user} and {max_per_user}",
                        where, "e.g. min_per_user=5, max_per_user=60")
    if min_per_user >= n_items:
        raise UserError(f"min_per_user={min_per_user} must be below n_items={n_items}", where,
                        "lower min_per_user or raise n_items")
    if mean_per_user <= 0:
        raise UserError(f"mean_per_user must be positive, got {mean_per_user}", where, "e.g. mean_per_user=14")
    if image_size < 16:
        raise UserError(f"image_size={image_size} is too small to draw a recognisable shape", where,
                        "use image_size >= 32 (96 by default)")
    for name, frac in (("new_arrival_fraction", new_arrival_fraction),
                       ("missing_image_fraction", missing_image_fraction)):
        if not 0.0 <= frac < 1.0:
            raise UserError(f"{name}={frac} must be in [0, 1)", where, f"e.g. {name}=0.05")
    if not 1 <= jpeg_quality <= 100:
        raise UserError(f"jpeg_quality={jpeg_quality} must be in 1..100", where, "e.g. jpeg_quality=90")

