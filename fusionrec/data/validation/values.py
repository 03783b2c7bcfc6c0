"""Cell values to canonical types, column at a time, in Arrow (C) where possible.

Interaction files can have millions of rows, so every helper works on whole
columns. Ids stay text exactly as given; :func:`ids_are_ints` only says whether
*every* id is a canonical integer (no sign games, no leading zeros), the one
case where casting to int64 and back gives the same text, so ``"0108775015"``
keeps the whole column as strings.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fusionrec.data.validation.dates import parse_dates

INT_RE = re.compile(r"^-?(0|[1-9][0-9]*)$")
# Numeric timestamps above these bounds are milli-, micro- or nanoseconds: 1e11 s is the year 5138.
_EPOCH_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v))


def arrow_text(series: pd.Series) -> pa.ChunkedArray:
    """Cell values as an Arrow string array, whitespace-trimmed, empty cells null.

    Numeric columns (Parquet, in-memory frames) become their text form; whole
    floats lose the ``.0`` so ids read from Parquet match ids read from CSV.
    """
    if pd.api.types.is_bool_dtype(series):
        arr = pa.chunked_array([pa.array([None if _is_missing(v) else str(v) for v in series.to_numpy(dtype=object)],
                                         type=pa.string())])
    elif pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(values)
        if pd.api.types.is_integer_dtype(series) or np.all(values[finite] == np.round(values[finite])):
            if pd.api.types.is_integer_dtype(series):  # int64 ids above 2**53 must not pass through float
                ints = pa.array(series.to_numpy(dtype=np.int64, na_value=0), mask=~finite)
            else:
                ints = pa.array(np.where(finite, values, 0).astype(np.int64), mask=~finite)
            arr = pa.chunked_array([pc.cast(ints, pa.string())])
        else:
            arr = pa.chunked_array([pc.cast(pa.array(values, mask=~finite), pa.string())])
    else:
        try:
            arr = pa.array(series.array, type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([None if _is_missing(v) else str(v) for v in series.to_numpy(dtype=object)],
                           type=pa.string())
        if isinstance(arr, pa.Array):
            arr = pa.chunked_array([arr])
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def to_numpy(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False) if isinstance(arr, pa.Array) else np.asarray(arr)


def nulls(arr: pa.ChunkedArray) -> np.ndarray:
    """Null mask as a writable bool array."""
    return np.array(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def strip(series: pd.Series) -> pd.Series:
    """Trimmed text with empty cells as NA (an Arrow-backed pandas Series)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(arrow_text(series)), index=series.index)


def to_float(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values as float64, a mask of cells that are present but not finite numbers, and a NA mask."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        na = series.isna().to_numpy()
    else:
        arr = arrow_text(series)
        na = nulls(arr)
        try:  # fast path: Arrow's cast parses clean numeric text in C
            values = np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = pd.to_numeric(pd.Series(to_numpy(arr), dtype=object), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
        values = np.where(na, np.nan, values)
    bad = ~na & ~np.isfinite(values)
    return values, bad, na


def _epoch_seconds(values: np.ndarray) -> np.ndarray:
    """Unix times in s, ms, us or ns -> seconds, decided once per column from its median."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return values
    typical = float(np.median(np.abs(finite)))
    for bound, scale in _EPOCH_UNITS:
        if typical >= bound:
            return values / scale
    return values


def _epoch(parsed: pd.Series) -> pd.Timestamp:
    """1970-01-01 UTC in the unit pandas parsed the dates with: a date such as year 170 fits in
    seconds but not in nanoseconds, so the subtraction must not convert to ns."""
    return pd.Timestamp(0, tz="UTC").as_unit(parsed.dt.unit)


def to_seconds(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as float unix seconds, and a mask of present values that do not parse.

    Numbers are unix times (seconds, or ms/us/ns when the column's values are
    that large); text that is not a number is parsed as a date or datetime by
    pandas (``2018-09-20``, ISO 8601 with or without zone, ``20 Sep 2018``...;
    naive values are taken as UTC); ``03.04.2025``-style dates with the column's own
    day/month order (:mod:`fusionrec.data.validation.dates`).
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        parsed = pd.to_datetime(series, utc=True)
        ok = parsed.notna().to_numpy()
        secs = np.full(len(series), np.nan)
        secs[ok] = (parsed[ok] - _epoch(parsed)).dt.total_seconds().to_numpy()
        return secs, np.zeros(len(series), dtype=bool)
    values, bad, _ = to_float(series)
    # a copy: the array may be a read-only view of Arrow memory, and dates are written into it below
    values = np.array(_epoch_seconds(values), dtype=np.float64)
    if bad.any():
        text = pd.Series(to_numpy(arrow_text(series)), dtype=object)[bad]
        parsed = parse_dates(text)
        ok = parsed.notna().to_numpy()
        rows = np.flatnonzero(bad)
        # subtracting the epoch is independent of the ns/us/s unit pandas picked
        values[rows[ok]] = (parsed[ok] - _epoch(parsed)).dt.total_seconds().to_numpy()
        bad = bad.copy()
        bad[rows[ok]] = False
    return values, bad


def int_mask(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where the text is a canonical integer (no leading zeros: '007' stays a string id)."""
    return np.array(pc.fill_null(pc.match_substring_regex(arr, INT_RE.pattern), False)
                    .to_numpy(zero_copy_only=False), dtype=bool)  # a writable copy


def ids_are_ints(*arrays: Any) -> bool:
    """True when every non-null id in every array is a canonical integer (so int64 round-trips it)."""
    for arr in arrays:
        if len(arr) == 0:
            continue
        if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
            arr = pa.array(np.asarray(arr, dtype=object), type=pa.string())
        arr = arr.drop_null()
        if len(arr) and not int_mask(arr).all():
            return False
        try:  # canonical but past int64 (a 20-digit id): kept as text, exactly as given
            pc.cast(arr, pa.int64())
        except pa.ArrowInvalid:
            return False
    return True


def cast_ids(values: Any, as_int: bool, good: np.ndarray | None = None) -> np.ndarray:
    """Id text -> int64 (when every id is canonical) or object strings exactly as given.

    ``good`` marks rows to keep; the others get a harmless placeholder key so the
    cast cannot fail on text already set aside.
    """
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(
        np.asarray(values, dtype=object), type=pa.string())
    if good is not None:
        arr = pc.if_else(pa.array(good), arr, pa.scalar("0"))
    if as_int:
        return np.asarray(pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.asarray(to_numpy(arr), dtype=object)


__all__ = ["arrow_text", "cast_ids", "ids_are_ints", "int_mask", "nulls", "strip", "to_float", "to_numpy",
           "to_seconds"]
