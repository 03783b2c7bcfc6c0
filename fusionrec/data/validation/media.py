"""Media paths of an item table: a column of paths or a pattern, checked for safety and existence.

A pattern names one file per item with Python format fields over the table's
columns, format specs included, applied to the value *as text*::

    images/{item_id}.jpg
    images/{article_id:.3}/{article_id}.jpg      # "0108775015" -> images/010/0108775015.jpg

A path must be relative and stay inside the dataset root (after resolving
``..`` and symlinks). A file that is missing or that PIL cannot open is a
per-item warning: the item's path is cleared (its modality is masked), the item
and its interactions stay.
"""
from __future__ import annotations

import re
import string
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from fusionrec.data.rawtable import RawTable
from fusionrec.data.validation.checker import Checker
from fusionrec.data.validation.values import strip
from fusionrec.errors import UserError

# Opening and verifying an image costs ~0.1 ms for a poster; past this many files the rest are
# left to the encoder, so validating a huge catalogue stays bounded.
MAX_DECODE_CHECKS = 100_000
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_pattern(spec: str) -> bool:
    """True when ``spec`` is a path pattern (has a ``{field}``) rather than a column name."""
    return "{" in spec


def pattern_columns(spec: str) -> set[str]:
    """The columns a pattern reads (empty for a plain column name or a malformed pattern)."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(spec) if name is not None}
    except ValueError:
        return set()


def pattern_fields(spec: str, columns: list[str], where: str) -> list[tuple[str, str | None, str, str | None]]:
    """Parse a pattern into ``(literal, column, format_spec, conversion)`` pieces.

    Raises :class:`UserError` for a malformed pattern or a field that is not a
    column of the table (the message lists the columns).
    """
    try:
        pieces = list(string.Formatter().parse(spec))
    except ValueError as err:
        raise UserError(f"path pattern {spec!r} is malformed: {err}", where,
                        "write fields as {column} or {column:.3}; double literal braces as {{ and }}") from None
    unknown = sorted({name for _, name, _, _ in pieces if name is not None and name not in columns})
    if unknown:
        raise UserError(f"path pattern {spec!r} names column(s) {unknown} that the item table does not have",
                        where, f"use columns of the item table in the pattern: {columns}")
    return [(lit, name, fmt or "", conv) for lit, name, fmt, conv in pieces]


def fill_pattern(spec: str, frame: pd.DataFrame, where: str) -> pd.Series:
    """One path per row of ``frame`` (None where a field is empty); format specs apply to the text."""
    pieces = pattern_fields(spec, list(frame.columns), where)
    columns = {name: strip(frame[name]).to_numpy(dtype=object, na_value=None)
               for _, name, _, _ in pieces if name is not None}
    out: list[str | None] = []
    for i in range(len(frame)):
        parts: list[str] = []
        for lit, name, fmt, conv in pieces:
            parts.append(lit)
            if name is None:
                continue
            value = columns[name][i]
            if value is None:
                parts = []
                break
            value = repr(value) if conv == "r" else value
            try:
                parts.append(format(value, fmt))
            except ValueError as err:
                raise UserError(f"path pattern {spec!r}: format spec {fmt!r} does not apply to the text "
                                f"{value!r} of column {name!r} ({err})", where,
                                "use string specs such as {column:.3} (first 3 characters) or {column:0>10} "
                                "(pad to 10 with zeros); ids are text, so numeric specs like :03d do not apply"
                                ) from None
        out.append("".join(parts) if parts else None)
    return pd.Series(out, index=frame.index, dtype=object)


def media_values(check: Checker, raw: RawTable, spec: str, role: str) -> tuple[pd.Series, bool]:
    """The path text per row for a column name or a pattern; ``(values, from_pattern)``."""
    f = raw.frame
    where = f"{raw.path} line 1 (item role {role})"
    if is_pattern(spec):
        try:
            return fill_pattern(spec, f, where), True
        except UserError as err:
            raise check.from_user_error(err, "bad_pattern") from None
    if spec not in f.columns:
        raise check.fatal(f"item table has no column {spec!r} for {role}", where,
                          f"map an existing column (--item-columns {role}=<column>) or a pattern such as "
                          f"{role}=images/{{item_id}}.jpg; columns are {list(f.columns)}", "missing_column")
    values = strip(f[spec])
    return values.astype(object).where(values.notna(), None), False


def _resolve_inside(root: Path, text: str, parents: dict[str, Path]) -> tuple[str | None, Path | None, str]:
    """``(reason, resolved, detail)``: reason None when ``text`` names a path inside ``root``."""
    if _URL.match(text):
        return "path_url", None, "a URL, not a file in the dataset folder"
    p = Path(text)
    if p.is_absolute() or _WINDOWS_ABS.match(text):
        return "path_absolute", None, "absolute path"
    try:
        # resolve(root/p) == resolve(resolve(root/parent)/name) when name is a plain,
        # non-symlink entry, so folders are resolved once and cached
        key = str(p.parent)
        if key not in parents:
            parents[key] = (root / p.parent).resolve()
        resolved = parents[key] / p.name
        if p.name in ("", ".", "..") or resolved.is_symlink():
            resolved = resolved.resolve()
    except (OSError, RuntimeError) as err:  # symlink loops
        return "path_outside_root", None, f"cannot resolve: {err}"
    if not resolved.is_relative_to(root):
        via = "symlink escapes" if (root / p).is_symlink() or ".." not in p.parts else "'..' leaves"
        return "path_outside_root", None, f"{via} {root} -> {resolved}"
    if not resolved.is_file():
        return "file_missing", None, f"no file {root / p}"
    return None, resolved, ""


def _undecodable(path: Path) -> str | None:
    """Why PIL cannot read ``path`` as an image, or None when it can (header + structure, not pixels)."""
    try:
        with Image.open(path) as img:
            img.verify()
    except Image.DecompressionBombError:
        return None  # a real (huge) image: the encoder decides whether to decode it
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        return f"{type(err).__name__}: {err}"[:200]
    return None


def check_paths(check: Checker, raw: RawTable, spec: str, role: str, keep: np.ndarray) -> np.ndarray:
    """Media paths relative to the dataset root; unsafe, missing or corrupt ones are cleared and reported.

    ``spec`` is a column name or a pattern. Returns the accepted path text per
    row (None where cleared). Without a root (in-memory data) the paths are kept
    as given. Images are opened with PIL (bounded by :data:`MAX_DECODE_CHECKS`).
    """
    values, templated = media_values(check, raw, spec, role)
    out = np.full(len(values), None, dtype=object)
    if check.source.root is None:
        out[keep] = values.to_numpy(dtype=object)[keep]
        return out
    root = check.source.root.resolve()
    parents: dict[str, Path] = {}  # resolved folders: media files usually share a few folders
    reasons: dict[str, list[int]] = {k: [] for k in ("path_absolute", "path_outside_root", "path_url",
                                                     "file_missing", "file_corrupt")}
    details: dict[str, list[str]] = {k: [] for k in reasons}
    decoded = 0
    for i, value in enumerate(values):
        if not keep[i] or value is None or str(value) == "":
            continue
        reason, resolved, detail = _resolve_inside(root, str(value), parents)
        if reason is None and role == "image_path" and decoded < MAX_DECODE_CHECKS:
            decoded += 1
            why = _undecodable(resolved)
            if why is not None:
                reason, detail = "file_corrupt", why
        if reason is not None:
            reasons[reason].append(i)
            details[reason].append(detail)
            continue
        out[i] = str(value)
    if decoded >= MAX_DECODE_CHECKS:
        check.note("media_not_verified", "info", f"only the first {MAX_DECODE_CHECKS} images were opened to "
                   "check they decode; the encoder masks any later unreadable one", file=str(raw.path))
    for reason, rows in reasons.items():
        if rows:
            # a missing or corrupt file is ordinary coverage (the modality is masked), not a data error;
            # a path escaping the root is one
            severity = "warning" if reason in ("file_missing", "file_corrupt", "path_url") else "error"
            check.quarantine(raw, np.asarray(rows), reason, role if templated else spec,
                             values=[values.iloc[r] for r in rows], action="field_cleared",
                             detail=details[reason], severity=severity)
    return out


__all__ = ["MAX_DECODE_CHECKS", "check_paths", "fill_pattern", "is_pattern", "pattern_columns", "pattern_fields"]
