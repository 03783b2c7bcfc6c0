"""Interaction rows: per-row type checks, ids, unknown ids, repeated events.

Every check works on whole columns and records the bad rows with their line.
Repeated interactions are behaviour (a customer buying an article again), so
they are kept and reported as information; with ``repeats: duplicates`` the
byte-identical rows of a log without repeat semantics are a warning, still kept.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fusionrec.data.rawtable import RawTable
from fusionrec.data.roles import SPLIT_VALUES
from fusionrec.data.validation.checker import Checker
from fusionrec.data.validation.values import (
    INT_RE,
    arrow_text,
    int_mask,
    nulls,
    to_float,
    to_numpy,
    to_seconds,
)

VALUE_ROLES = ("rating", "timestamp", "label", "split")


def check_rows(check: Checker, raw: RawTable, roles: dict[str, str], forced_split: str | None) -> pd.DataFrame:
    """Per-row type checks; a frame of canonical values (``user``, ``item``, ``<role>_v``) and ``_good``."""
    f = raw.frame
    n = len(f)
    out = pd.DataFrame({"_row": np.arange(n, dtype=np.int64)})
    good = np.ones(n, dtype=bool)
    for role in ("user", "item"):
        ids = arrow_text(f[roles[role]])
        out[role] = pd.arrays.ArrowExtensionArray(ids)
        missing = nulls(ids)
        check.quarantine(raw, np.flatnonzero(good & missing), "missing_id", roles[role])
        good &= ~missing
    for role, reason in (("rating", "bad_rating"), ("label", "bad_label")):
        if role in roles:
            values, bad, na = to_float(f[roles[role]])
            bad = bad | na  # a mapped rating/label column must hold a value on every row
            check.quarantine(raw, np.flatnonzero(good & bad), reason, roles[role])
            good &= ~bad
            out[f"{role}_v"] = values
    if "timestamp" in roles:
        values, bad = to_seconds(f[roles["timestamp"]])
        check.quarantine(raw, np.flatnonzero(good & bad), "bad_timestamp", roles["timestamp"])
        good &= ~bad
        out["timestamp_v"] = values
    if forced_split is not None:
        out["split_v"] = forced_split
    elif "split" in roles:
        split, bad = _split_values(f[roles["split"]])
        check.quarantine(raw, np.flatnonzero(good & bad), "bad_split", roles["split"])
        good &= ~bad
        out["split_v"] = split
    out["_good"] = good
    return out


def _split_values(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Canonical split names (train/valid/test) and a mask of present values that are none of them."""
    text = pc.utf8_lower(arrow_text(series))
    keys = pa.array(list(SPLIT_VALUES), type=pa.string())
    pos = pc.index_in(text, value_set=keys)  # null where the value is not a known split name
    canon = pa.array(list(SPLIT_VALUES.values()), type=pa.string())
    mapped = to_numpy(pc.take(canon, pos)) if len(text) else np.array([], dtype=object)
    bad = ~nulls(text) & nulls(pos)
    return np.asarray(mapped, dtype=object), bad


def id_column(part: pd.DataFrame, role: str, good_only: bool = True) -> pa.ChunkedArray:
    """An Arrow id column of a checked part, optionally only its good rows."""
    arr = pa.array(part[role].array)
    if isinstance(arr, pa.Array):
        arr = pa.chunked_array([arr])
    return arr.filter(pa.array(part["_good"].to_numpy())) if good_only else arr


def flag_non_integer_ids(check: Checker, part: pd.DataFrame, raw: RawTable, roles: dict[str, str],
                         as_int: dict[str, bool]) -> None:
    """Where ids are integers, rows whose id is not one are ``bad_id`` (MMRec ids index feature rows)."""
    good = part["_good"].to_numpy().copy()
    for role in ("user", "item"):
        if not as_int[role]:
            continue
        column = id_column(part, role, good_only=False)
        ok = int_mask(column)
        if check.source.integer_ids:  # MMRec ids index rows of the feature files: no negatives
            ok &= ~np.asarray(pc.fill_null(pc.starts_with(column, "-"), False).to_numpy(zero_copy_only=False),
                              dtype=bool)
        check.quarantine(raw, part["_row"].to_numpy()[good & ~ok], "bad_id", roles[role])
        good &= ok
        if check.source.integer_ids:
            far = good & _beyond_any_row(column, len(part))
            check.quarantine(raw, part["_row"].to_numpy()[far], "bad_id", roles[role],
                             detail=f"MMRec {role} ids are row numbers 0..n-1; this one is far beyond the "
                                    f"{len(part)} rows of the file (renumber the ids, or describe the folder "
                                    "as plain CSV so ids are kept as text)")
            good &= ~far
    part["_good"] = good


def _beyond_any_row(column: pa.ChunkedArray, n_rows: int) -> np.ndarray:
    """True where a canonical integer id is too large to be a row number of a file of ``n_rows`` rows.

    Row ids 0..n-1 are dense, so one far past the row count indexes nothing and would make the
    id universe (``0..max id``) as large as the id itself.
    """
    limit = 10 * n_rows + 1_000_000
    digits = np.asarray(pc.fill_null(pc.utf8_length(column), 0).to_numpy(zero_copy_only=False))
    short = digits <= 15  # 15 digits always fit int64; longer canonical ids are far beyond any row
    values = np.zeros(len(digits), dtype=np.int64)
    if short.any():
        text = pc.if_else(pa.array(short), column, pa.scalar("0"))
        text = pc.if_else(pc.match_substring_regex(text, INT_RE.pattern), text, pa.scalar("0"))
        values = np.asarray(pc.cast(pc.fill_null(text, "0"), pa.int64()).to_numpy(zero_copy_only=False))
    return ~short | (values > limit)


def flag_unknown_ids(check: Checker, part: pd.DataFrame, raw: RawTable, roles: dict[str, str],
                     known_items: set[Any] | None, known_users: set[Any] | None, ref_rows: int | None) -> None:
    """Ids absent from the side tables are reported; rows beyond MMRec's feature rows are set aside.

    An item (user) table often describes only part of the catalogue (a retailer's article
    export covers the products with copy), so an event naming an item the table lacks is
    kept: the item joins the catalogue with no side data (its text and image are masked).
    MMRec ids index feature rows, so an id past the last row cannot be kept.
    """
    src = check.source
    good = part["_good"].to_numpy().copy()
    for role, known, table in (("item", known_items, src.items_path), ("user", known_users, src.users_path)):
        if known is None:
            continue
        unknown = good & ~part[f"{role}_key"].isin(known).to_numpy()
        if unknown.any() and src.unknown_items == "quarantine":
            check.quarantine(raw, part["_row"].to_numpy()[unknown], f"unknown_{role}", roles[role],
                             detail=f"not in {table.name} (data.unknown_items: quarantine)")
            good &= ~unknown
        elif unknown.any():
            _note_unknown(check, part, raw, roles[role], role, unknown, table)
    if ref_rows is not None:
        beyond = good & (part["item_key"].to_numpy(np.int64) >= ref_rows)
        check.quarantine(raw, part["_row"].to_numpy()[beyond], "unknown_item", roles["item"],
                         detail=f"feature files have only {ref_rows} rows (ids 0..{ref_rows - 1})")
        good &= ~beyond
    part["_good"] = good


def _note_unknown(check: Checker, part: pd.DataFrame, raw: RawTable, column: str, role: str,
                  unknown: np.ndarray, table: Any) -> None:
    rows = part["_row"].to_numpy()[unknown]
    keys = part[f"{role}_key"].to_numpy()[unknown]
    firsts = pd.Series(rows).groupby(pd.Series(keys, dtype=object), sort=False).first()
    examples = [f"{role} {key!r}: first at {raw.path.name} {raw.unit} {int(raw.line[r])}"
                for key, r in list(firsts.items())[:8]]
    check.note(f"unknown_{role}", "warning",
               f"{len(firsts)} {role}(s) in {int(unknown.sum())} row(s) are not in {table.name}; the rows are kept "
               f"and these {role}s have no text or attributes (masked; media named by an id pattern are still "
               "used)", file=str(raw.path),
               line=int(raw.line[rows[0]]), column=column, count=len(firsts), counted=role, examples=examples,
               unit=raw.unit, fix=f"add the {role}s to {table.name} if they should have content, or fix the ids; if "
                   f"{table.name} is the complete list, set unknown_items: quarantine in fusionrec.yaml")


def report_repeats(check: Checker, frame: pd.DataFrame, metas: list[tuple[RawTable, dict[str, str]]]) -> None:
    """Repeated user-item events as ``info`` (kept); byte-identical rows as a ``warning`` when asked.

    ``frame`` holds the good rows of every file (``user_key``, ``item_key``,
    ``_file``, ``_row``). Nothing is removed: models that need a binary matrix
    collapse repeats themselves, sequence models see every event.
    """
    repeat = frame.duplicated(["user_key", "item_key"], keep="first").to_numpy()
    if repeat.any():
        pairs = frame.loc[frame.duplicated(["user_key", "item_key"], keep=False), ["user_key", "item_key"]]
        n_pairs = len(pairs.drop_duplicates())
        first = frame[repeat].iloc[0]
        raw = metas[int(first["_file"])][0]
        check.note("repeated_interaction", "info",
                   f"{int(repeat.sum())} row(s) repeat an earlier user-item pair ({n_pairs} pair(s), "
                   f"{pairs['user_key'].nunique()} user(s), {pairs['item_key'].nunique()} item(s)); kept as "
                   "repeat events", file=str(raw.path), line=int(raw.line[int(first['_row'])]),
                   count=int(repeat.sum()), unit=raw.unit,
                   fix="nothing to do for repeat behaviour; if the log has no repeats, write repeats: duplicates "
                       "in fusionrec.yaml to flag byte-identical copies")
    if check.source.repeats != "duplicates":
        return
    for file_id, (raw, _) in enumerate(metas):
        rows = frame.loc[frame["_file"].to_numpy() == file_id, "_row"].to_numpy()
        same = raw.frame.iloc[rows].duplicated(keep="first").to_numpy()
        if not same.any():
            continue
        lines = raw.line[rows[same]]
        check.note("duplicate_row", "warning",
                   f"{int(same.sum())} row(s) are byte-identical to an earlier row; kept (data.repeats: "
                   "duplicates says the log has no repeat semantics)", file=str(raw.path), line=int(lines[0]),
                   count=int(same.sum()), unit=raw.unit,
                   examples=[f"{raw.path.name} {raw.unit} {ln}" for ln in lines[:8]],
                   fix="remove the copies if they are export errors, or write repeats: events in fusionrec.yaml "
                       "if they are real repeats")


__all__ = ["VALUE_ROLES", "check_rows", "flag_non_integer_ids", "flag_unknown_ids", "id_column",
           "report_repeats"]
