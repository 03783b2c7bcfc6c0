"""The one role table: column names recognised for every role, in every table."""
from __future__ import annotations

import pytest

from fusionrec.data.roles import (
    ROLE_ALIASES,
    find_column,
    find_text_columns,
    split_list,
)


@pytest.mark.parametrize(("columns", "role", "expected"), [
    (["t_dat", "customer_id", "article_id", "price"], "timestamp", "t_dat"),
    (["t_dat", "customer_id", "article_id", "price"], "user", "customer_id"),
    (["t_dat", "customer_id", "article_id", "price"], "item", "article_id"),
    (["userId", "movieId", "rating", "timestamp"], "item", "movieId"),
    (["visitor_id", "sku", "event_time"], "user", "visitor_id"),
    (["visitor_id", "sku", "event_time"], "item", "sku"),
    (["visitor_id", "sku", "event_time"], "timestamp", "event_time"),
    (["Customer_ID", "Product_ID"], "user", "Customer_ID"),  # case-insensitive after exact matches
    (["id", "poster"], "image_path", "poster"),
    (["id", "picture", "photo"], "image_path", "picture"),
    (["id", "preview"], "audio_path", "preview"),
    (["user", "item"], "rating", None),
])
def test_find_column(columns: list[str], role: str, expected: str | None) -> None:
    assert find_column(columns, role) == expected


def test_every_media_alias_the_encoders_took_is_known() -> None:
    for alias in ("image_path", "image", "poster_path", "image_file", "poster", "img", "picture", "photo"):
        assert find_column(["item_id", alias], "image_path") == alias
    for alias in ("audio_path", "audio", "audio_file", "preview"):
        assert find_column(["item_id", alias], "audio_path") == alias


def test_text_columns_keep_table_order_and_skip_the_id() -> None:
    cols = ["article_id", "detail_desc", "price", "prod_name", "title"]
    assert find_text_columns(cols, exclude=("article_id",)) == ["detail_desc", "prod_name", "title"]
    assert split_list(" name, blurb ,") == ["name", "blurb"]
    assert all(isinstance(v, tuple) and v for v in ROLE_ALIASES.values())


def test_the_validation_guide_lists_the_role_table() -> None:
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "docs" / "guide" / "validation.md").read_text()
    for role, aliases in ROLE_ALIASES.items():
        row = f"| `{role}` | " + ", ".join(f"`{a}`" for a in aliases) + " |"
        assert row in guide, f"docs/guide/validation.md is stale for role {role!r}: expected the row {row}"
