"""The one dataset builder: a checked source -> :class:`Dataset` (files and in-memory frames alike).

:func:`validate_source` runs every check (interaction rows, side tables, media,
feature files), sets bad rows aside and builds the Dataset from the good ones.
:func:`source_from_frames` wraps DataFrames as a source, so
:meth:`Dataset.from_frames` builds through exactly the same code (same id
rules, same timestamp parsing, same items frame).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.data.rawtable import RawTable, raw_from_frame
from fusionrec.data.roles import AUTO_ROLES, INTERACTION_ROLES
from fusionrec.data.sources import DataSource
from fusionrec.data.validation.checker import (
    Checker,
    Fatal,
    read_checked,
    resolve_roles,
)
from fusionrec.data.validation.features import load_features, make_modality
from fusionrec.data.validation.interactions import (
    check_rows,
    flag_non_integer_ids,
    flag_unknown_ids,
    id_column,
    report_repeats,
)
from fusionrec.data.validation.items import (
    EventItems,
    SideTable,
    align_items,
    align_users,
    load_items,
    load_users,
    media_only_items,
)
from fusionrec.data.validation.report import ValidationReport
from fusionrec.data.validation.values import cast_ids, ids_are_ints

# The weight role is recognised by the role table but not stored by a Dataset yet: leave it unmapped.
_VALIDATED_ROLES = tuple(r for r in INTERACTION_ROLES if r != "weight")


def validate_source(
    source: DataSource, quarantine_dir: str | Path | None = None
) -> tuple[Dataset | None, ValidationReport]:
    """Check a source, quarantine bad rows and build a Dataset from the good ones.

    Returns ``(dataset, report)``; ``dataset`` is None when the report is fatal.
    With ``quarantine_dir`` the quarantine CSV and ``report.json`` are written there.
    """
    check = Checker(source)
    report = ValidationReport(source.name, source.format)
    dataset = None
    try:
        dataset = _build(check, report)
    except Fatal:
        dataset = None
    report.issues = check.issues
    report.quarantine = check.quarantine_frame()
    if report.fatal:
        dataset = None
    if quarantine_dir is not None:
        report.write(quarantine_dir)
    return dataset, report


@dataclass
class _Parts:
    """The interaction files as checked parts, with their raw tables and role maps."""

    frames: list[pd.DataFrame] = field(default_factory=list)
    metas: list[tuple[RawTable, dict[str, str]]] = field(default_factory=list)
    rows_read: int = 0


def _read_interactions(check: Checker) -> _Parts:
    src = check.source
    parts = _Parts()
    auto = tuple(r for r in AUTO_ROLES["interactions"] if r in _VALIDATED_ROLES)
    mapping = {r: c for r, c in src.columns.items() if r != "weight"}
    if "weight" in src.columns:
        check.note("unused_role", "info", f"column {src.columns['weight']!r} (role weight) is kept out: every "
                   "row is one event, so repeated events already count; event weights are not used yet",
                   file="data.columns", fix="remove weight from data.columns (or --columns) to silence this")
    for path, forced_split in src.interactions:
        raw = read_checked(check, path, src.table_format, "interaction file")
        parts.rows_read += len(raw.frame) + len(raw.malformed)
        roles = resolve_roles(check, raw, mapping, _VALIDATED_ROLES, ("user", "item"),
                              "interaction file", "--columns", auto=auto)
        extra = [c for c in raw.frame.columns if c not in roles.values()]
        if extra:
            check.note("extra_columns", "info", f"columns not used by any role: {extra}", file=str(path),
                       fix="if they matter, map them under columns: in fusionrec.yaml (or --columns <role>=<column>)")
        part = check_rows(check, raw, roles, forced_split)
        part["_file"] = len(parts.frames)
        parts.frames.append(part)
        parts.metas.append((raw, roles))
    return parts


def _event_items(parts: _Parts) -> EventItems:
    """Item ids (text) of the good interaction rows, each once, with the line of its first event."""
    frames = []
    for k, (p, (raw, _)) in enumerate(zip(parts.frames, parts.metas)):
        good = p["_good"].to_numpy()
        frames.append(pd.DataFrame({"id": np.asarray(id_column(p, "item").to_numpy(zero_copy_only=False), object),
                                    "line": raw.line[p["_row"].to_numpy()[good]], "file": k}))
    first = pd.concat(frames, ignore_index=True).drop_duplicates("id")
    raws = [raw for raw, _ in parts.metas]
    files = sorted(set(first["file"].tolist())) or [0]
    # reports name the interaction file where an item first appears (several files: all their names)
    path = raws[files[0]].path if len(files) == 1 else Path(" / ".join(raws[f].path.name for f in files))
    return EventItems(first["id"].to_numpy(dtype=object), first["line"].to_numpy(np.int64), path,
                      raws[files[0]].unit)


def _attach_keys(check: Checker, parts: _Parts, items: SideTable | None, users: SideTable | None
                 ) -> tuple[bool, bool]:
    """Decide int or text ids over every table, flag bad ids, and add ``user_key``/``item_key`` columns."""
    src = check.source
    user_vals: list[Any] = [id_column(p, "user") for p in parts.frames]
    item_vals: list[Any] = [id_column(p, "item") for p in parts.frames]
    if items is not None:
        item_vals.append(items.ids)
    if users is not None:
        user_vals.append(users.ids)
    # int64 only when every id everywhere is a canonical integer: then the cast loses nothing
    as_int = {"user": src.integer_ids or ids_are_ints(*user_vals),
              "item": src.integer_ids or ids_are_ints(*item_vals)}
    for p, (raw, roles) in zip(parts.frames, parts.metas):
        flag_non_integer_ids(check, p, raw, roles, as_int)
        good = p["_good"].to_numpy()
        p["user_key"] = cast_ids(id_column(p, "user", False), as_int["user"], good)
        p["item_key"] = cast_ids(id_column(p, "item", False), as_int["item"], good)
    return as_int["user"], as_int["item"]


def _id_universe(src: DataSource, frame: pd.DataFrame, table_keys: np.ndarray | None, role: str,
                 as_int: bool, ref_rows: int | None) -> np.ndarray:
    """Original ids of internal ``0..n-1``: the side table's order, else sorted ints or first appearance."""
    keys = frame[f"{role}_key"]
    if src.integer_ids:  # MMRec: id j is row j of the feature files
        top = int(keys.max())
        if table_keys is not None and len(table_keys):
            top = max(top, int(np.max(table_keys)))
        if role == "item" and ref_rows is not None:
            top = ref_rows - 1
        return np.arange(top + 1, dtype=np.int64)
    uniq = pd.unique(keys)
    if as_int:
        uniq = np.sort(uniq)
    if table_keys is None:
        return uniq
    # the table's order first, then ids only the events name (kept, with no side data)
    extra = uniq[~pd.Index(uniq).isin(pd.Index(table_keys))]
    return np.concatenate([np.asarray(table_keys), np.asarray(extra)]) if len(extra) else np.asarray(table_keys)


def _interaction_frame(check: Checker, frame: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray
                       ) -> pd.DataFrame:
    inter = pd.DataFrame(
        {
            "user": pd.Index(user_ids).get_indexer(frame["user_key"]).astype(np.int64),
            "item": pd.Index(item_ids).get_indexer(frame["item_key"]).astype(np.int64),
            "rating": frame["rating_v"].to_numpy(np.float32) if "rating_v" in frame else np.float32(np.nan),
            "timestamp": frame["timestamp_v"].to_numpy(np.float64) if "timestamp_v" in frame else np.nan,
            "label": frame["label_v"].to_numpy(np.float32) if "label_v" in frame else np.float32(1.0),
            "split": frame["split_v"].to_numpy(object) if "split_v" in frame else None,
        }
    )
    if "split_v" in frame and frame["split_v"].isna().any():
        # a split column with gaps is no split at all: leave it to the configured split method
        check.note("partial_split", "warning", "some rows have no split value; the file's split is ignored",
                   file=str(check.source.interactions[0][0]),
                   fix="give every row train/valid/test or none at all")
        inter["split"] = None
    return inter


def _note_unused(check: Checker, inter: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray,
                 has_users: bool, has_catalogue: bool) -> None:
    seen_i = np.zeros(len(item_ids), dtype=bool)
    seen_i[inter["item"].to_numpy()] = True
    if not seen_i.all() and has_catalogue:
        missing = item_ids[~seen_i]
        check.note("item_without_interactions", "warning",
                   f"{len(missing)} item(s) have no (good) interaction; they stay in the catalogue as cold items",
                   count=len(missing), counted="item", examples=[f"item {m}" for m in missing[:8]],
                   fix="fine for cold-start; otherwise remove them from the item table")
    if has_users:
        seen_u = np.zeros(len(user_ids), dtype=bool)
        seen_u[inter["user"].to_numpy()] = True
        if not seen_u.all():
            missing = user_ids[~seen_u]
            check.note("user_without_interactions", "warning",
                       f"{len(missing)} user(s) in the user table have no (good) interaction",
                       count=len(missing), counted="user", examples=[f"user {u}" for u in missing[:8]])


def _build(check: Checker, report: ValidationReport) -> Dataset:
    src = check.source
    parts = _read_interactions(check)
    report.stats["rows_read"] = parts.rows_read
    events = _event_items(parts)
    if src.items_path is not None:
        items = load_items(check, events)
    else:
        items = media_only_items(check, events, parts.metas[0][1]["item"])
    users = load_users(check) if src.users_path is not None else None
    int_users, int_items = _attach_keys(check, parts, items, users)
    item_keys = cast_ids(items.ids, int_items) if items is not None else None
    user_keys = cast_ids(users.ids, int_users) if users is not None else None

    feature_arrays = load_features(check)  # their row count bounds MMRec's id space
    ref_rows = feature_arrays[0][1].shape[0] if (src.integer_ids and feature_arrays) else None
    known_items = set(item_keys.tolist()) if (items is not None and not src.integer_ids) else None
    known_users = set(user_keys.tolist()) if users is not None else None
    for p, (raw, roles) in zip(parts.frames, parts.metas):
        flag_unknown_ids(check, p, raw, roles, known_items, known_users, ref_rows)
    frame = pd.concat(parts.frames, ignore_index=True) if len(parts.frames) > 1 else parts.frames[0]
    frame = frame[frame["_good"].to_numpy()].reset_index(drop=True)
    report.stats["rows_good"] = len(frame)
    report.stats["rows_quarantined"] = int(parts.rows_read - len(frame))
    if len(frame) == 0:
        raise check.fatal("no usable interaction rows: every row was malformed or failed a check",
                          str(src.interactions[0][0]),
                          "look at the issues above (or the quarantine file) and fix the most common one",
                          "no_good_rows")
    report_repeats(check, frame, parts.metas)

    user_ids = _id_universe(src, frame, user_keys, "user", int_users, None)
    item_ids = _id_universe(src, frame, item_keys, "item", int_items, ref_rows)
    inter = _interaction_frame(check, frame, user_ids, item_ids)
    _note_unused(check, inter, user_ids, item_ids, users is not None, items is not None or bool(feature_arrays))
    modalities: list[FeatureModality] = []
    for spec, feats in feature_arrays:
        mod = make_modality(check, spec, feats, item_ids, len(item_ids),
                            len(item_keys) if item_keys is not None else None)
        if mod is not None:
            modalities.append(mod)
    if any(i.severity == "fatal" for i in check.issues):
        raise Fatal("fatal feature problem")
    extra_keys = None
    if items is not None and items.event_only is not None:
        extra_keys = cast_ids(items.event_only["item_id"].to_numpy(dtype=object), int_items)
    item_frame = align_items(items, item_keys, item_ids, extra_keys)
    user_frame = align_users(users, user_keys, user_ids) if users is not None and user_keys is not None else None
    dataset = Dataset(src.name, user_ids, item_ids, inter, item_frame, {m.name: m for m in modalities}, src.root,
                      users=user_frame)
    report.stats.update(summarise(dataset))
    return dataset


def summarise(dataset: Dataset) -> dict[str, Any]:
    """Counts, split sizes and modality coverage of a dataset (for reports and ``data info``)."""
    inter = dataset.interactions
    out: dict[str, Any] = {
        "n_users": dataset.n_users, "n_items": dataset.n_items, "n_interactions": dataset.n_interactions,
        "density": dataset.n_interactions / max(dataset.n_users * dataset.n_items, 1),
        "has_rating": bool(inter["rating"].notna().any()),
        "has_timestamp": bool(inter["timestamp"].notna().any()),
    }
    if dataset.has_split:
        counts = inter["split"].value_counts()
        out["split"] = {s: int(counts.get(s, 0)) for s in ("train", "valid", "test")}
    out["modalities"] = [
        {"name": m.name, "kind": m.kind, "dim": m.dim, "coverage": m.coverage} for m in dataset.modalities.values()
    ]
    items = dataset.items
    for col, key in (("text", "text_coverage"), ("image_path", "image_coverage"), ("audio_path", "audio_coverage")):
        if col in items.columns and len(items):
            out[key] = float(items[col].notna().mean())
    return out


def source_from_frames(
    name: str,
    interactions: pd.DataFrame,
    items: pd.DataFrame | None = None,
    columns: dict[str, str] | None = None,
    item_columns: dict[str, str] | None = None,
    root: str | Path | None = None,
) -> DataSource:
    """In-memory frames as a DataSource (``<interactions>``/``<items>`` stand in for file names)."""
    inter_path, items_path = Path("<interactions>"), Path("<items>")
    tables = {str(inter_path): raw_from_frame(interactions, str(inter_path))}
    if items is not None:
        tables[str(items_path)] = raw_from_frame(items, str(items_path))
    return DataSource(
        name=name, format="frames", interactions=[(inter_path, None)],
        root=Path(root) if root is not None else None, columns=dict(columns or {}),
        items_path=items_path if items is not None else None, item_columns=dict(item_columns or {}),
        tables=tables,
    )


__all__ = ["source_from_frames", "summarise", "validate_source"]
