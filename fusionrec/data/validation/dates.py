"""Dates written as text, parsed the same way by ``data init`` and the validator.

Numeric dates with the year last (``03.04.2025``, ``04/13/2025``) are ambiguous: left to
itself, pandas reads ``01.03.2025`` as January 3rd and ``15.03.2025`` as March 15th in the
same column, which silently scrambles the order of events. The order of day and month is
therefore decided once per column: by any value whose first (or second) field is above 12,
else by the separator (``.`` is the European day-first form, ``/`` and ``-`` month-first,
pandas' default). ISO dates (``2025-03-01``) and dates with month names are unaffected.
"""
from __future__ import annotations

import re

import pandas as pd

# day and month first in either order, then a 2- or 4-digit year: 03.04.2025, 4/13/25, 01-02-2024 10:00
_YEAR_LAST = re.compile(r"^\s*(\d{1,2})([./-])(\d{1,2})\2(\d{2}|\d{4})(?!\d)")


def day_first(text: pd.Series) -> bool | None:
    """Whether the column's year-last numeric dates put the day first; None when it has none.

    A value with its first field above 12 (``13.04.2025``) means day first, one with its second
    field above 12 (``04/13/2025``) month first. A column with both is inconsistent; it is read
    month first, as pandas would, and such values parse only where they can.
    """
    return _day_first(_year_last_parts(text))


def parse_dates(text: pd.Series) -> pd.Series:
    """``text`` (a Series of strings) as UTC datetimes, NaT where a value is not a date.

    Year-last numeric dates are read with the column's day/month order (:func:`day_first`);
    everything else as pandas reads it (naive values are taken as UTC). Each value is parsed once.
    """
    text = text.astype(object)
    parts = _year_last_parts(text)
    if not _day_first(parts):
        return pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    rows = parts[0].notna().to_numpy()
    plain = text.reset_index(drop=True)   # positions, so a repeated index label cannot mix rows up
    # ISO and other forms keep pandas' reading; dayfirst would turn 2025-03-01 into January 3rd
    parsed = pd.concat([pd.to_datetime(plain[~rows], errors="coerce", utc=True, format="mixed"),
                        pd.to_datetime(plain[rows], errors="coerce", utc=True, format="mixed", dayfirst=True)])
    return parsed.sort_index().set_axis(text.index)


def _year_last_parts(text: pd.Series) -> pd.DataFrame:
    """Day-or-month, separator, day-or-month and year of each year-last value (NaN rows elsewhere)."""
    return text.astype(str).str.extract(_YEAR_LAST)


def _day_first(parts: pd.DataFrame) -> bool | None:
    parts = parts.dropna()
    if parts.empty:
        return None
    first_big = bool((parts[0].astype(int) > 12).any())
    second_big = bool((parts[2].astype(int) > 12).any())
    if first_big != second_big:
        return first_big
    if first_big:  # both: mixed conventions in one column
        return False
    return bool((parts[1] == ".").mean() >= 0.5)
