"""Item and user side tables: ids, duplicates, text, media paths, attributes.

The items frame of a validated Dataset uses the standard names of
:mod:`fusionrec.data.roles`: ``text`` is the item's text joined from exactly the
columns of the ``text`` role, ``image_path`` / ``audio_path`` are checked media
paths (from any recognised column name or a pattern), and every other column is
kept as side data. Encoders and serving read only those standard names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.rawtable import RawTable, read_raw
from fusionrec.data.roles import (
    AUDIO_COLUMN,
    IMAGE_COLUMN,
    MEDIA_KIND,
    MEDIA_ROLES,
    TEXT_COLUMN,
    find_column,
    find_text_columns,
    split_list,
)
from fusionrec.data.validation.checker import Checker, read_checked
from fusionrec.data.validation.media import check_paths, pattern_columns
from fusionrec.data.validation.values import strip
from fusionrec.errors import UserError


@dataclass
class SideTable:
    """A checked item or user table: original id text and canonical columns of the kept rows."""

    raw: RawTable
    ids: np.ndarray           # original id text per kept row
    frame: pd.DataFrame       # canonical columns per kept row
    roles: dict[str, list[str]] = field(default_factory=dict)  # text / attribute columns
    # items only the events name (item_id as text), with media paths from an id-only pattern
    event_only: pd.DataFrame | None = None


def _id_rows(check: Checker, raw: RawTable, id_col: str, duplicate_reason: str) -> tuple[pd.Series, np.ndarray]:
    """Trimmed ids and a keep mask: empty and repeated ids are quarantined (the first row of an id wins)."""
    ids = strip(raw.frame[id_col])
    keep = ids.notna().to_numpy().copy()  # pandas hands out read-only views (copy-on-write)
    check.quarantine(raw, np.flatnonzero(~keep), "missing_id", id_col)
    dup = np.zeros(len(ids), dtype=bool)
    dup[keep] = ids[keep].duplicated(keep="first").to_numpy()
    check.quarantine(raw, np.flatnonzero(dup), duplicate_reason, id_col)
    return ids, keep & ~dup


def _objects(values: np.ndarray, index: pd.Index) -> pd.Series:
    """Cells as Python objects: pandas would infer an Arrow string column, which rejects surrogate escapes."""
    return pd.Series(values, index=index, dtype=object)


def join_text(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Exactly ``columns`` joined per row with ". " (empty parts skipped); None where all are empty."""
    # plain Python strings, not pandas' Arrow-backed "string" dtype: in-memory frames may hold
    # text that is not valid UTF-8 (surrogate escapes), which the encoders report per item
    cells = [[str(v).strip() if v is not None and not pd.isna(v) else "" for v in frame[c].to_numpy(dtype=object)]
             for c in columns]
    joined = [". ".join(part for part in row if part) for row in zip(*cells)]
    return np.asarray([text or None for text in joined], dtype=object)


def _text_columns(check: Checker, raw: RawTable, mapping: dict[str, str], id_col: str) -> list[str]:
    f = raw.frame
    if "text" in mapping:
        cols = split_list(mapping["text"])
    elif raw.header_types:  # RecBole: token_seq columns hold words
        cols = [c for c, t in raw.header_types.items() if t == "token_seq" and c != id_col]
    else:
        cols = find_text_columns(f.columns, exclude=(id_col,))
    absent = [c for c in cols if c not in f.columns]
    if absent:
        check.note("missing_column", "error", f"text column(s) {absent} not in the item table; the others are "
                   f"used (columns are {list(f.columns)})", file=f"{raw.path} line 1",
                   fix="fix --item-columns text=<col1>,<col2> (or item_columns.text in fusionrec.yaml)")
    return [c for c in cols if c in f.columns]


def _media_spec(check: Checker, raw: RawTable, mapping: dict[str, str], role: str, ids: pd.Series,
                id_col: str) -> str | None:
    """The column or pattern for a media role: mapped, a recognised column name, or a discovered folder.

    A role mapped to an empty value (``image_path: ""``) is switched off: no column, no discovery.
    """
    if role in mapping:
        return mapping[role] or None
    found = find_column(raw.frame.columns, role)
    if found is not None:
        return found
    src = check.source
    if src.root is None or src.tables:  # in-memory data: no folder to look in
        return None
    try:
        from fusionrec.data.media import discover_pattern  # optional: folder discovery
    except ImportError:
        return None
    pattern, evidence = discover_pattern(src.root, ids.dropna().tolist(), MEDIA_KIND[role], id_column=id_col)
    if pattern is not None:
        check.note("media_discovered", "info", f"{role}: using the pattern {pattern!r} found in the dataset "
                   f"folder ({evidence})", file=str(src.root),
                   fix=f"to use another layout, set item_columns.{role} (e.g. --item-columns {role}=<pattern>)")
    return pattern


@dataclass
class EventItems:
    """The item ids the interactions name (text, each once) and the line where each first appears."""

    ids: np.ndarray
    lines: np.ndarray
    path: Path
    unit: str = "line"

    def table(self, ids: np.ndarray, id_col: str) -> RawTable:
        """A stand-in item table of ``ids`` (a subset of ``self.ids``) whose rows point at the events' lines."""
        pos = pd.Index(self.ids).get_indexer(pd.Index(ids))
        return RawTable(self.path, pd.DataFrame({id_col: pd.Series(ids, dtype=object)}), self.lines[pos], self.unit)


def load_items(check: Checker, events: EventItems | None = None) -> SideTable:
    """Read and check the item table; the frame carries ``text``, ``image_path``, ``audio_path`` + the rest.

    ``events`` are the item ids the interactions name: those the table lacks still get
    their media from a pattern that only needs the id (``SideTable.event_only``).
    """
    src = check.source
    raw = read_checked(check, src.items_path, None, "item table")
    f = raw.frame
    mapping = dict(src.item_columns)
    id_col = mapping.get("item") or find_column(f.columns, "item")
    if id_col is None or id_col not in f.columns:
        raise check.fatal(f"item table has no item id column{f' {id_col!r}' if id_col else ''}; "
                          f"its columns are {list(f.columns)}", f"{raw.path} line 1",
                          "map it with --item-columns item=<column>", "missing_column")
    ids, keep = _id_rows(check, raw, id_col, "duplicate_item")
    ids_arr = ids.to_numpy(dtype=object, na_value=None)
    canon = pd.DataFrame(index=np.arange(len(f)))
    if mapping.get("id_map"):
        # MMRec: translate the table's original ids into MMRec integer ids through the id map
        id_map = read_id_map(check, mapping["id_map"])
        mapped = pd.Series(ids_arr).map(id_map)
        unmapped = keep & mapped.isna().to_numpy()
        check.quarantine(raw, np.flatnonzero(unmapped), "unknown_item", id_col,
                         detail=f"not in the id map {mapping['id_map']}", severity="warning")
        keep &= ~unmapped
        canon["item_id"] = mapped.to_numpy(dtype=object, na_value=None)
        canon["source_item_id"] = ids_arr  # keep the table's own id (e.g. the MovieLens id) next to MMRec's
        ids_arr = canon["item_id"].to_numpy(dtype=object)
    else:
        canon["item_id"] = ids_arr
    text_cols = _text_columns(check, raw, mapping, id_col)
    if text_cols:
        canon[TEXT_COLUMN] = _objects(join_text(f, text_cols), canon.index)
    extra = _missing_from_table(ids_arr[keep], events) if not mapping.get("id_map") else np.array([], object)
    event_only = pd.DataFrame({"item_id": extra})
    used = {id_col}
    for role in MEDIA_ROLES:
        spec = _media_spec(check, raw, mapping, role, pd.concat([ids, pd.Series(extra, dtype=object)]), id_col)
        if spec is not None:
            canon[role] = _objects(check_paths(check, raw, spec, role, keep), canon.index)
            if spec in f.columns:
                used.add(spec)  # the source column lives on as the standard image_path/audio_path
            elif len(extra) and pattern_columns(spec) == {id_col}:
                stand_in = events.table(extra, id_col)  # reports point at the item's first event
                event_only[role] = _objects(check_paths(check, stand_in, spec, role, np.ones(len(extra), bool)),
                                            event_only.index)
    attr_cols = _attribute_columns(check, raw, mapping, id_col)
    taken = used | set(canon.columns)
    rest = {c: f[c].to_numpy(dtype=object, na_value=None) for c in f.columns if c not in taken}
    if rest:  # every other column is kept as side data
        # one concat: inserting column by column costs O(columns) each, so wide tables were quadratic
        canon = pd.concat([canon, pd.DataFrame(rest, index=canon.index, dtype=object)], axis=1)
    roles = {"text": text_cols, "attributes": attr_cols}
    return SideTable(raw, ids_arr[keep], canon[keep].reset_index(drop=True), roles, event_only)


def media_only_items(check: Checker, events: EventItems, id_col: str) -> SideTable | None:
    """Without an item table, a media pattern given for the items still names their files.

    The items are those the events name; ``id_col`` is the interactions' item column, the
    name a pattern such as ``images/{article_id}.jpg`` uses. None when no media role is mapped.
    """
    specs = {role: check.source.item_columns[role] for role in MEDIA_ROLES
             if check.source.item_columns.get(role)}
    if not specs or not len(events.ids):
        return None
    raw = events.table(events.ids, id_col)
    canon = pd.DataFrame({"item_id": raw.frame[id_col]})
    for role, spec in specs.items():
        canon[role] = _objects(check_paths(check, raw, spec, role, np.ones(len(events.ids), dtype=bool)),
                               canon.index)
    return SideTable(raw, np.asarray(events.ids, dtype=object), canon, {"text": [], "attributes": []})


def _missing_from_table(table_ids: np.ndarray, events: EventItems | None) -> np.ndarray:
    """Event item ids (text) the table does not list, in order of first appearance."""
    if events is None or not len(events.ids):
        return np.array([], dtype=object)
    index = pd.Index(events.ids)
    return np.asarray(index[~index.isin(pd.Index(table_ids))], dtype=object)


def _attribute_columns(check: Checker, raw: RawTable, mapping: dict[str, str], id_col: str,
                       table: str = "item") -> list[str]:
    f = raw.frame
    cols = split_list(mapping.get("attributes"))
    if not cols and "attributes" not in mapping and raw.header_types:
        cols = [c for c, t in raw.header_types.items() if t in ("token", "float") and c != id_col]
    for c in cols:
        if c not in f.columns:
            check.note("missing_column", "error", f"attribute column {c!r} not in the {table} table",
                       file=f"{raw.path} line 1", fix=f"fix data.{table}_columns.attributes (a,b,c) to name "
                                                      f"columns of {raw.path.name}: {list(f.columns)}")
    return [c for c in cols if c in f.columns]


def load_users(check: Checker) -> SideTable:
    """Read and check the user table (ids and side data)."""
    src = check.source
    raw = read_checked(check, src.users_path, None, "user table")
    f = raw.frame
    id_col = src.user_columns.get("user") or find_column(f.columns, "user")
    if id_col is None or id_col not in f.columns:
        raise check.fatal(f"user table has no user id column; its columns are {list(f.columns)}",
                          f"{raw.path} line 1", "name it user_id or map it with data.user_columns.user",
                          "missing_column")
    ids, keep = _id_rows(check, raw, id_col, "duplicate_user")
    attrs = _attribute_columns(check, raw, src.user_columns, id_col, "user")
    return SideTable(raw, ids.to_numpy(dtype=object, na_value=None)[keep], f[keep].reset_index(drop=True),
                     {"attributes": attrs})


def align_users(users: SideTable, keys: np.ndarray, user_ids: np.ndarray) -> pd.DataFrame:
    """``user_id`` + the user table's attribute columns in internal user order.

    A user the table does not list gets an all-missing row; cells stay text as read
    (empty cells None), so the user tower decides per column whether it is a number.
    """
    cols = [c for c in users.roles.get("attributes", []) if c != "user_id"]
    frame = pd.DataFrame({c: strip(users.frame[c]).to_numpy(dtype=object, na_value=None) for c in cols})
    frame.index = pd.Index(keys)
    frame = frame[~frame.index.duplicated(keep="first")]
    aligned = frame.reindex(pd.Index(user_ids))
    aligned = aligned.astype(object).where(aligned.notna(), None)
    aligned.insert(0, "user_id", user_ids)
    return aligned.reset_index(drop=True)


def read_id_map(check: Checker, spec: str) -> dict[str, str]:
    """A two-column file (original id, integer id) as a dict of text."""
    path = Path(spec)
    if not path.is_absolute():
        root = check.source.root
        path = (root / path) if root is not None and (root / path).exists() else \
            (check.source.interactions[0][0].parent / path)
    try:
        raw = read_raw(path)
    except UserError as err:
        raise check.from_user_error(UserError(f"id map: {err.what}", err.where, err.fix), "unreadable_file")
    if raw.frame.shape[1] < 2:
        raise check.fatal("id map needs two columns (original id, integer id)", str(path),
                          "write e.g. item_id<TAB>itemID", "bad_id_map")
    orig = strip(raw.frame.iloc[:, 0]).to_numpy(dtype=object, na_value=None)
    new = strip(raw.frame.iloc[:, 1]).to_numpy(dtype=object, na_value=None)
    return {o: n for o, n in zip(orig, new) if o is not None and n is not None}


def align_items(items: SideTable | None, keys: np.ndarray | None, item_ids: np.ndarray,
                extra_keys: np.ndarray | None = None) -> pd.DataFrame:
    """The item frame in internal item order (items missing from the table get an all-empty row).

    ``extra_keys`` are the cast ids of ``items.event_only`` (items only the events name).
    """
    if items is None:
        return pd.DataFrame({"item_id": item_ids})
    frame = items.frame.copy()
    frame["item_id"] = keys
    if extra_keys is not None and items.event_only is not None and len(items.event_only):
        extra = items.event_only.copy()
        extra["item_id"] = extra_keys
        frame = pd.concat([frame, extra], ignore_index=True)
    frame = frame.set_index("item_id")
    frame = frame[~frame.index.duplicated(keep="first")]
    aligned = frame.reindex(pd.Index(item_ids)).reset_index(names="item_id")
    # a hint for encoders: which columns were joined into `text`, which are attributes
    aligned.attrs["roles"] = items.roles
    return aligned


__all__ = [
    "AUDIO_COLUMN",
    "IMAGE_COLUMN",
    "EventItems",
    "SideTable",
    "align_items",
    "align_users",
    "join_text",
    "load_items",
    "load_users",
    "media_only_items",
    "read_id_map",
]
