"""User and item columns that no name gives away, found by what they hold.

Exports in other languages (``Kundennummer``, ``Artikelnummer``) or with house names
(``cust``, ``ref``) name their ids in words the role table cannot know. ``data init`` then
looks at the values: a column whose values are the keys of another table in the folder is
that table's id (the item table's, unless the table is named like a user table), and once
one id is known, the other is the remaining column that looks like an id that repeats.
Every such guess is printed as one to check.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from fusionrec.data.sniff import ColumnStats, frame_stats

# share of a column's values that must be keys of the other table
MIN_KEY_OVERLAP = 0.5
# an id that repeats has more distinct values than a quantity or a flag
MIN_DISTINCT_IDS = 11
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")


def ids_from_keys(frame: pd.DataFrame, others: list[Any], taken: set[str],
                  is_user_table: Callable[[Any], bool]) -> dict[str, tuple[str, str]]:
    """``{role: (column, why)}`` for interaction columns whose values are another table's keys.

    ``others`` are the folder's other tables (objects with ``.frame`` and ``.rel``).
    """
    found: dict[str, tuple[str, str]] = {}
    for col in frame.columns:
        if col in taken:
            continue
        values = frame[col].dropna().astype(str)
        if values.empty:
            continue
        for table in others:
            match = next((c for c in table.frame.columns if str(c).lower() == str(col).lower()), None)
            if match is None:
                continue
            keys = table.frame[match].dropna().astype(str)
            if keys.empty or keys.nunique() != len(keys):
                continue  # not a key of that table
            overlap = float(values.isin(set(keys)).mean())
            role = "user" if is_user_table(table) else "item"
            if overlap >= MIN_KEY_OVERLAP and role not in found:
                why = f"its values are the keys of {table.rel} ({overlap:.0%} found there): guessed from content, check it"
                found[role] = (col, why)
                break
    return found


def repeating_id_column(frame: pd.DataFrame, taken: set[str], role: str) -> tuple[str | None, str]:
    """The remaining column that looks like an id that repeats (the other side of the events)."""
    stats = frame_stats(frame[[c for c in frame.columns if c not in taken]])
    fits = [st for st in stats.values() if _looks_like_repeating_id(st, frame[st.name])]
    if not fits:
        return None, ""
    best = max(fits, key=lambda st: st.unique)
    return best.name, (f"{best.unique} distinct id-like values repeating over {best.count} rows: "
                       f"guessed from content as the {role} id, check it")


def _looks_like_repeating_id(st: ColumnStats, values: pd.Series) -> bool:
    if st.count == 0 or st.date_share >= 0.5 or st.mean_words > 1.0 or any(v >= 0.5 for v in st.media.values()):
        return False
    if st.numeric and not st.integer:
        return False  # prices, scores
    text = values.dropna().astype(str)
    if text.str.match(_DECIMAL_COMMA).mean() >= 0.5:
        return False  # 12,34: a decimal written the European way
    return st.unique >= MIN_DISTINCT_IDS and st.unique_share < 0.9
