"""The one role table: which column of a user's file plays which part.

Every place that has to decide "which column is the user id, the timestamp, the
text, the image path" reads this module, so a column name recognised in one
command is recognised in all of them (``data init``, ``data validate``, the
encoders, serving).

Roles by table:

* interactions: ``user``, ``item``, ``rating``, ``timestamp``, ``label``,
  ``split``, ``weight`` (a count or weight of the event);
* items: ``item`` (id), ``text`` (a list of text columns, joined into one
  ``text`` field), ``image_path`` / ``audio_path`` (a column of paths or a path
  pattern such as ``images/{item_id}.jpg``), ``attributes`` (a list of columns)
  and, for MMRec folders, ``id_map``;
* users: ``user`` (id) and ``attributes``.

After validation a Dataset's ``items`` frame uses the *standard* names below
(``text``, ``image_path``, ``audio_path``), so encoders and serving read only
those names, whatever the user's file called them.
"""
from __future__ import annotations

from collections.abc import Iterable

INTERACTION_ROLES = ("user", "item", "rating", "timestamp", "label", "split", "weight")
ITEM_ROLES = ("item", "text", "image_path", "audio_path", "attributes", "id_map")
USER_ROLES = ("user", "attributes")
# Item roles whose value is a comma-separated list of columns.
LIST_ROLES = ("text", "attributes")
# Item roles whose value is a column of paths or a path pattern.
MEDIA_ROLES = ("image_path", "audio_path")

# Standard column names of a validated Dataset's items frame.
TEXT_COLUMN = "text"
IMAGE_COLUMN = "image_path"
AUDIO_COLUMN = "audio_path"
MEDIA_KIND = {IMAGE_COLUMN: "image", AUDIO_COLUMN: "audio"}

# Column names recognised without an explicit mapping, most specific first.
# Matching is exact first, then case-insensitive (see find_column).
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "userID", "userId", "user", "uid", "reviewerID", "customer_id", "customerId",
             "visitor_id", "visitorid", "client_id", "member_id", "account_id"),
    "item": ("item_id", "itemID", "itemId", "item", "iid", "movie_id", "movieId", "article_id", "articleId",
             "product_id", "productId", "sku", "asin", "artist_id", "track_id", "book_id", "isbn"),
    "rating": ("rating", "ratings", "score", "stars", "overall"),
    "timestamp": ("timestamp", "time", "ts", "unixReviewTime", "t_dat", "datetime", "date", "created_at",
                  "event_time", "event_timestamp", "order_date", "purchase_date"),
    "label": ("label", "click", "clicked", "target"),
    "split": ("split", "x_label", "fold"),
    "weight": ("weight", "count", "quantity", "qty", "plays", "play_count", "playcount"),
    # item-table roles: an item table's own text / media columns
    "text": ("text", "title", "name", "product_name", "prod_name", "description", "detail_desc", "overview",
             "plot", "summary", "tags", "genres", "review"),
    "image_path": ("image_path", "image", "poster_path", "image_file", "poster", "img", "picture", "photo",
                   "image_url_local", "cover"),
    "audio_path": ("audio_path", "audio", "audio_file", "preview", "preview_path", "audio_preview"),
}

# Roles whose aliases are tried when a role is not mapped explicitly, per table.
AUTO_ROLES = {
    "interactions": ("user", "item", "rating", "timestamp", "label", "split", "weight"),
    "items": ("item", "image_path", "audio_path"),
    "users": ("user",),
}

# Raw split values accepted in a split column -> canonical names. MMRec's x_label is 0/1/2.
SPLIT_VALUES: dict[str, str] = {
    "train": "train", "training": "train", "0": "train",
    "valid": "valid", "validation": "valid", "val": "valid", "dev": "valid", "1": "valid",
    "test": "test", "testing": "test", "2": "test",
}


def find_column(columns: Iterable[str], role: str) -> str | None:
    """The column of ``columns`` that plays ``role`` by name, or None.

    Tries the role's aliases in order, exactly first and then ignoring case, so
    ``userId`` beats ``user`` and ``Customer_ID`` still matches ``customer_id``.
    """
    columns = list(columns)
    aliases = ROLE_ALIASES.get(role, ())
    for alias in aliases:
        if alias in columns:
            return alias
    lower = {c.lower(): c for c in columns}
    for alias in aliases:
        if alias.lower() in lower:
            return lower[alias.lower()]
    return None


def find_text_columns(columns: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Every column named like text (title, name, description...), in the table's own order."""
    skip = set(exclude)
    names = {a.lower() for a in ROLE_ALIASES["text"]}
    return [c for c in columns if c.lower() in names and c not in skip]


def split_list(value: str | None) -> list[str]:
    """``"title, genres"`` -> ``["title", "genres"]`` (the form of list roles in a mapping)."""
    if not value:
        return []
    return [v.strip() for v in str(value).split(",") if v.strip()]


__all__ = [
    "AUDIO_COLUMN",
    "AUTO_ROLES",
    "IMAGE_COLUMN",
    "INTERACTION_ROLES",
    "ITEM_ROLES",
    "LIST_ROLES",
    "MEDIA_KIND",
    "MEDIA_ROLES",
    "ROLE_ALIASES",
    "SPLIT_VALUES",
    "TEXT_COLUMN",
    "USER_ROLES",
    "find_column",
    "find_text_columns",
    "split_list",
]
