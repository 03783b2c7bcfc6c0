"""Folders shaped like real exports, generated for the end-to-end tests.

Each generator writes what a user would bring, not what fusionrec would like:

* :func:`make_retail_export` - a fashion retailer's dump: ``transactions.csv``
  (``t_dat`` as ``YYYY-MM-DD``, 64-hex ``customer_id``, zero-padded ``article_id``,
  ``price``, ``sales_channel_id``, repeat purchases), ``articles.csv`` describing
  only a quarter of the articles, photos under ``images/<first 3 digits>/<id>.jpg``
  with a few missing and one corrupt file;
* :func:`make_movielens_folder` - ``ratings.csv`` / ``movies.csv`` / ``posters/<id>.jpg``;
* :func:`make_mmrec_folder` - an MMRec dataset folder with ``.npy`` features;
* :func:`make_recbole_folder` - RecBole atomic files.

Tastes are planted (each user prefers one of a few styles, each item has one
style that shows in its text and its picture), so a model has something to learn.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

STYLES = {
    "sport": ((40, 150, 60), "running jersey breathable training", "Sportswear"),
    "denim": ((30, 60, 140), "washed denim jeans five pocket", "Trousers"),
    "party": ((170, 20, 60), "sequin evening dress glitter", "Dress"),
    "knit": ((150, 110, 60), "chunky wool knit jumper warm", "Sweater"),
}
STYLE_NAMES = list(STYLES)


@dataclass
class Export:
    """What a generator wrote and what a test needs to know about it."""

    root: Path
    user_ids: list[str]
    item_ids: list[str]
    item_style: dict[str, str]
    unseen_items: list[str] = field(default_factory=list)   # in the catalogue, no interactions
    missing_images: list[str] = field(default_factory=list)
    corrupt_images: list[str] = field(default_factory=list)
    described_items: list[str] = field(default_factory=list)


def style_image(style: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    colour, _, _ = STYLES[style]
    jitter = rng.integers(-25, 26, 3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter))
    img = Image.new("RGB", (size, size), (240, 240, 240))
    draw = ImageDraw.Draw(img)
    pad = int(rng.integers(4, 10))
    draw.rectangle([pad, pad, size - pad, size - pad], fill=fill)
    return img


def _interactions(rng: np.random.Generator, users: list[str], items: list[str], item_style: dict[str, str],
                  per_user: tuple[int, int] = (6, 14)) -> list[tuple[str, str]]:
    """(user, item) pairs: 85% from the user's style, the rest anywhere."""
    by_style = {s: [i for i in items if item_style[i] == s] for s in STYLE_NAMES}
    rows = []
    for n, user in enumerate(users):
        style = STYLE_NAMES[n % len(STYLE_NAMES)]
        for _ in range(int(rng.integers(*per_user))):
            pool = by_style[style] if rng.random() < 0.85 else items
            rows.append((user, pool[int(rng.integers(len(pool)))]))
    return rows


def make_retail_export(root: Path, n_customers: int = 120, n_articles: int = 96, seed: int = 0) -> Export:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    customers = [hashlib.sha256(f"customer-{i}".encode()).hexdigest() for i in range(n_customers)]
    # H&M-style ids: ten digits with a leading zero; the photo folder is the first three
    articles = [f"0{108775015 + 7919 * i:09d}" for i in range(n_articles)]
    style = {a: STYLE_NAMES[i % len(STYLE_NAMES)] for i, a in enumerate(articles)}
    unseen = articles[-4:]           # new arrivals: photographed and described, never bought
    sold = articles[:-4]
    pairs = _interactions(rng, customers, sold, style)
    days = pd.date_range("2020-09-01", "2020-09-30", freq="D").strftime("%Y-%m-%d")
    rows = []
    for user, item in pairs:
        day = days[int(rng.integers(len(days)))]
        price = round(float(rng.uniform(0.005, 0.08)), 6)
        channel = int(rng.integers(1, 3))
        rows.append((day, user, item, price, channel))
        if rng.random() < 0.12:      # the same article bought again, often the same day
            rows.append((day, user, item, price, channel))
    frame = pd.DataFrame(rows, columns=["t_dat", "customer_id", "article_id", "price", "sales_channel_id"])
    frame.sort_values("t_dat", kind="stable").to_csv(root / "transactions.csv", index=False)

    # a random quarter of the catalogue has copy (every style among it), plus most new arrivals
    quarter = rng.choice(len(articles), len(articles) // 4, replace=False)
    described = [articles[i] for i in sorted(quarter)] + unseen[:3]
    described = list(dict.fromkeys(described))
    art_rows = []
    for a in described:
        colour_name = {"sport": "Green", "denim": "Blue", "party": "Red", "knit": "Beige"}[style[a]]
        words, kind = STYLES[style[a]][1], STYLES[style[a]][2]
        art_rows.append((a, f"{kind} {a[-3:]}", kind, colour_name, f"A {colour_name.lower()} {words}."))
    pd.DataFrame(art_rows, columns=["article_id", "prod_name", "product_type_name", "colour_group_name",
                                    "detail_desc"]).to_csv(root / "articles.csv", index=False)

    missing = [articles[3], articles[10], articles[17]]
    corrupt = [articles[5]]
    for a in articles:
        if a in missing:
            continue
        folder = root / "images" / a[:3]
        folder.mkdir(parents=True, exist_ok=True)
        if a in corrupt:
            (folder / f"{a}.jpg").write_bytes(b"\xff\xd8\xff this is not really a jpeg")
        else:
            style_image(style[a], rng).save(folder / f"{a}.jpg", quality=85)
    return Export(root, customers, articles, style, unseen, missing, corrupt, described)


def make_movielens_folder(root: Path, n_users: int = 80, n_movies: int = 60, seed: int = 1) -> Export:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    users = [str(u) for u in range(1, n_users + 1)]
    movies = [str(m) for m in range(1, n_movies + 1)]
    style = {m: STYLE_NAMES[i % len(STYLE_NAMES)] for i, m in enumerate(movies)}
    genres = {"sport": "Action|Sport", "denim": "Western", "party": "Comedy|Musical", "knit": "Drama|Romance"}
    pairs = _interactions(rng, users, movies, style)
    pairs = list(dict.fromkeys(pairs))
    ts = 881250949 + rng.integers(0, 10_000_000, len(pairs))
    ratings = rng.choice([3.0, 3.5, 4.0, 4.5, 5.0], len(pairs))
    pd.DataFrame({"userId": [p[0] for p in pairs], "movieId": [p[1] for p in pairs], "rating": ratings,
                  "timestamp": ts}).to_csv(root / "ratings.csv", index=False)
    titles = [f"The {STYLES[style[m]][1].split()[1].title()} Story {m} (199{int(m) % 10})" for m in movies]
    pd.DataFrame({"movieId": movies, "title": titles, "genres": [genres[style[m]] for m in movies]}).to_csv(
        root / "movies.csv", index=False)
    (root / "posters").mkdir(exist_ok=True)
    for m in movies:
        style_image(style[m], rng).save(root / "posters" / f"{m}.jpg")
    return Export(root, users, movies, style)


def make_mmrec_folder(root: Path, name: str = "shop", n_users: int = 60, n_items: int = 40,
                      seed: int = 2) -> Export:
    """MMRec layout: ``<name>.inter`` (userID itemID rating timestamp x_label) + feature ``.npy`` files."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    users = [str(u) for u in range(n_users)]
    items = [str(i) for i in range(n_items)]
    style = {i: STYLE_NAMES[int(i) % len(STYLE_NAMES)] for i in items}
    pairs = list(dict.fromkeys(_interactions(rng, users, items, style)))
    frame = pd.DataFrame(pairs, columns=["userID", "itemID"]).astype(int)
    frame["rating"] = 1
    frame["timestamp"] = rng.integers(1_500_000_000, 1_600_000_000, len(frame))
    # per user: the last two rows go to valid and test
    position = frame.groupby("userID").cumcount(ascending=False)
    frame["x_label"] = np.select([position == 0, position == 1], [2, 1], 0)
    frame.to_csv(root / f"{name}.inter", sep="\t", index=False)
    centres = rng.normal(size=(len(STYLE_NAMES), 16))
    text = np.stack([centres[STYLE_NAMES.index(style[i])] + 0.3 * rng.normal(size=16) for i in items])
    image = np.stack([np.tile(centres[STYLE_NAMES.index(style[i])], 2) + 0.5 * rng.normal(size=32)
                      for i in items])
    np.save(root / "text_feat.npy", text.astype(np.float32))
    np.save(root / "image_feat.npy", image.astype(np.float32))
    return Export(root, users, items, style)


def make_recbole_folder(root: Path, name: str = "shop", n_users: int = 60, n_items: int = 40,
                        seed: int = 3) -> Export:
    """RecBole atomic files: ``<name>.inter`` and ``<name>.item`` with typed headers."""
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    users = [f"u{u:03d}" for u in range(n_users)]
    items = [f"{i:05d}" for i in range(n_items)]
    style = {it: STYLE_NAMES[n % len(STYLE_NAMES)] for n, it in enumerate(items)}
    pairs = list(dict.fromkeys(_interactions(rng, users, items, style)))
    ts = rng.integers(1_500_000_000, 1_600_000_000, len(pairs))
    with open(folder / f"{name}.inter", "w") as fh:
        fh.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        fh.writelines(f"{u}\t{i}\t4\t{t}\n" for (u, i), t in zip(pairs, ts))
    with open(folder / f"{name}.item", "w") as fh:
        fh.write("item_id:token\ttitle:token_seq\tcategory:token\n")
        fh.writelines(f"{it}\t{STYLES[style[it]][1]} {it}\t{STYLES[style[it]][2]}\n" for it in items)
    return Export(folder, users, items, style)
