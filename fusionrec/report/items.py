"""What a person recognises an item by: its title, a category to colour it with, a thumbnail.

Used by the HTML report (user examples, embedding maps) and by the TensorBoard embedding
projector (labels and sprite images). Everything here reads the item table a run saved
(``runs/<run>/model/dataset/items.parquet``) and the image files under the dataset root;
nothing is required: an item without a title shows its id, an item without a readable
image has no thumbnail.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.errors import UserError

# first match wins: a real title before a long product name before free text
TITLE_COLUMNS = ("title", "tmdb_title", "prod_name", "product_name", "name")
# columns that usually hold a category; the demo's ground-truth trait is fine to *look* at
CATEGORY_COLUMNS = ("category", "categories", "genre", "genres", "product_type_name", "product_group_name",
                    "department", "type", "trait_category", "brand")
MAX_CATEGORIES = 20


def item_titles(items: pd.DataFrame | None, item_ids: list) -> list[str]:
    """One short title per item: the first title-like column, else the item id."""
    ids = [str(i) for i in item_ids]
    if items is None or len(items) != len(ids):
        return ids
    for col in TITLE_COLUMNS:
        if col in items.columns:
            values = items[col].tolist()
            return [_short(v) if _present(v) else i for v, i in zip(values, ids)]
    return ids


def category_column(items: pd.DataFrame | None, preferred: str | None = None) -> str | None:
    """The column to colour items by: ``preferred`` when given, else the first category-like
    column with 2..MAX_CATEGORIES distinct values (more colours than that are unreadable)."""
    if items is None or items.empty:
        return None
    if preferred:
        if preferred not in items.columns:
            raise UserError(f"item column {preferred!r} does not exist", "--color-by",
                            f"choose one of {sorted(map(str, items.columns))}")
        return preferred
    for col in CATEGORY_COLUMNS:
        if col in items.columns and 2 <= items[col].nunique(dropna=True) <= MAX_CATEGORIES:
            return col
    return None


def item_categories(items: pd.DataFrame | None, column: str | None) -> list[str] | None:
    """The category of each item as text ("?" when missing), or None without a column."""
    if items is None or column is None:
        return None
    return [str(v) if _present(v) else "?" for v in items[column].tolist()]


def image_paths(items: pd.DataFrame | None, root: str | Path | None,
                rows: list[int] | np.ndarray | None = None) -> list[Path | None]:
    """Absolute image path of each item (of ``rows`` only, in that order, when given; None when it has
    none); empty when the table has no image column."""
    from fusionrec.encoders.base import resolve_path
    from fusionrec.encoders.image import find_image_column

    if items is None or items.empty:
        return []
    try:
        col = find_image_column(items, None)
    except (UserError, KeyError, ValueError):
        return []  # no image column: the data has no pictures
    base = Path(root) if root is not None else None
    values = items[col].tolist()
    if rows is not None:
        values = [values[int(r)] for r in rows]  # a large catalogue: look up only what is shown
    out: list[Path | None] = []
    for value in values:
        path = resolve_path(value, base)
        out.append(path if path is not None and path.is_file() else None)
    return out


def thumbnail(path: Path | None, size: int = 64):
    """The image at ``path`` scaled to fit ``size`` x ``size`` (a PIL image), or None when unreadable."""
    if path is None:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            return im.copy()
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def thumbnail_data_uri(path: Path | None, size: int = 64) -> str | None:
    """``data:image/jpeg;base64,...`` of a downscaled image, for inline ``<img>`` tags."""
    im = thumbnail(path, size)
    if im is None:
        return None
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_tensor(paths: list[Path | None], size: int = 32) -> np.ndarray:
    """``[N, 3, size, size]`` float array in [0, 1] (grey where an item has no image): the sprite
    images of TensorBoard's embedding projector."""
    out = np.full((len(paths), 3, size, size), 0.85, dtype=np.float32)
    for i, path in enumerate(paths):
        im = thumbnail(path, size)
        if im is None:
            continue
        arr = np.asarray(im, dtype=np.float32) / 255.0
        h, w = arr.shape[:2]
        top, left = (size - h) // 2, (size - w) // 2  # centre a non-square image on the grey tile
        out[i, :, top:top + h, left:left + w] = arr.transpose(2, 0, 1)
    return out


def _present(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return str(value).strip() != ""


def _short(value: object, limit: int = 60) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "CATEGORY_COLUMNS",
    "TITLE_COLUMNS",
    "category_column",
    "image_paths",
    "item_categories",
    "item_titles",
    "thumbnail",
    "thumbnail_data_uri",
    "thumbnail_tensor",
]
