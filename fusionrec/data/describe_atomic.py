"""``data init`` for benchmark layouts: MMRec folders and RecBole atomic files.

* MMRec: ``<name>.inter`` (tab-separated ``userID itemID [rating] [timestamp] x_label``) with
  feature matrices ``*_feat.npy`` whose row j is item j; the split ships in ``x_label``.
* RecBole: ``<name>.inter`` / ``.item`` / ``.user`` with typed headers (``item_id:token``,
  ``title:token_seq``); benchmark files ``<name>.train/valid/test.inter`` carry a split.

Both keep their integer or token ids as given; the readers know the default column names, so
the description only records what differs, and the guesses say why.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fusionrec.data.describe import (
    Description,
    describe_side_tables,
    encoders_for,
    find_tables,
    load_tables,
    read_sample,
    split_for,
)
from fusionrec.data.media import discover_pattern
from fusionrec.data.readers import discover_mmrec_features
from fusionrec.data.sniff import Guess, frame_stats, interaction_roles

SAMPLE = 20_000


def _main_inter(root: Path, inters: list[Path]) -> tuple[Path, str]:
    """The dataset's ``.inter`` file: one named like the folder, else the largest non-benchmark file."""
    plain = [p for p in inters if p.name.count(".") == 1] or inters
    same = [p for p in plain if p.stem == root.name]
    if same:
        return same[0], "named like the folder"
    if len(plain) == 1:
        return plain[0], "the only .inter file"
    chosen = max(plain, key=lambda p: p.stat().st_size)
    return chosen, f"the largest of {', '.join(p.name for p in plain)}"


def describe_atomic(root: Path, inters: list[Path]) -> Description:
    inter, why = _main_inter(root, inters)
    with open(inter, encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    if ":token" in header or ":float" in header:
        return _describe_recbole(root, inter, why)
    return _describe_mmrec(root, inter, why)


def _strip_types(frame: Any) -> Any:
    frame.columns = [str(c).rsplit(":", 1)[0] for c in frame.columns]
    return frame


def _describe_mmrec(root: Path, inter: Path, why: str) -> Description:
    desc = Description(root, {}, "mmrec")
    frame = read_sample(inter, SAMPLE)
    desc.files["interactions"] = f"{inter.name} (MMRec interactions, {why})"
    cols = list(frame.columns)
    columns: dict[str, str] = {}
    for role, default in (("user", "userID"), ("item", "itemID")):
        col = default if default in cols else None
        if col is None:
            desc.guesses.append(Guess("interactions", None, None, f"no {default} column in {inter.name} "
                                      f"(columns: {', '.join(cols)}); write columns.{role}: <column>",
                                      todo=True, blocking=True))
        else:
            desc.guesses.append(Guess("interactions", col, role, "MMRec's column name"))
            columns[role] = col
    roles = interaction_roles(frame_stats(frame), columns.get("user", ""), columns.get("item", ""),
                              "interactions")
    desc.guesses += roles
    columns.update({g.role: g.column for g in roles if g.role in ("timestamp", "rating", "label", "split", "weight")})
    features = discover_mmrec_features(root)
    for name, spec in features.items():
        mask = f", missing rows marked by {spec['missing']}" if "missing" in spec else ""
        desc.guesses.append(Guess("features", spec["path"], name, f"{spec['kind']} features, row j = item j{mask}"))
    if not features:
        desc.guesses.append(Guess("features", None, None, "no *_feat.npy files: the multimodal models need item "
                                  "content; add feature files or an item table with text/images", todo=True))
    desc.files["features"] = f"{len(features)} .npy file(s) in {root.name}"
    data: dict[str, Any] = {"format": "mmrec", "path": inter.name, "columns": columns, "features": features}
    # an item / user table beside the .inter file, keyed by the same integer ids (e.g. lastfm2k's items.csv)
    tables = load_tables(root, find_tables(root), desc.guesses)
    describe_side_tables(root, tables, frame, columns.get("user"), columns.get("item"), desc, data)
    data["split"] = split_for(columns, desc)
    # encoders only for what no feature file already covers (a second text modality would be a twin)
    covered = {spec["kind"] for spec in features.values()}
    data["encoders"] = {m: n for m, n in encoders_for(data.get("item_columns", {})).items() if m not in covered}
    desc.data = data
    return desc


def _describe_recbole(root: Path, inter: Path, why: str) -> Description:
    desc = Description(root, {}, "recbole")
    stem = inter.name.split(".")[0]
    frame = _strip_types(read_sample(inter, SAMPLE))
    desc.files["interactions"] = f"{inter.name} (RecBole atomic file, {why})"
    cols = list(frame.columns)
    columns: dict[str, str] = {}
    for role in ("user", "item"):
        col = f"{role}_id"
        if col in cols:
            columns[role] = col
            desc.guesses.append(Guess("interactions", col, role, "RecBole's field name"))
        else:
            desc.guesses.append(Guess("interactions", None, None, f"no {col} field in {inter.name} (fields: "
                                      f"{', '.join(cols)}); write columns.{role}: <field>", todo=True, blocking=True))
    roles = interaction_roles(frame_stats(frame), columns.get("user", ""), columns.get("item", ""), "interactions")
    desc.guesses += roles
    columns.update({g.role: g.column for g in roles if g.role in ("timestamp", "rating", "label", "split", "weight")})
    data: dict[str, Any] = {"format": "recbole", "path": inter.name, "columns": columns}
    item_file = root / f"{stem}.item"
    if item_file.is_file():
        data["item_columns"] = _recbole_items(root, item_file, desc)
    if (root / f"{stem}.user").is_file():
        desc.files["users"] = f"{stem}.user (found by the RecBole reader)"
    benchmark = all((root / f"{stem}.{s}.inter").is_file() for s in ("train", "valid", "test"))
    if benchmark:
        desc.notes.append(f"split: predefined ({stem}.train/valid/test.inter)")
        data["split"] = {"method": "predefined"}
    else:
        data["split"] = split_for(columns, desc)
    data["encoders"] = encoders_for(data.get("item_columns", {}))
    desc.data = data
    return desc


def _recbole_items(root: Path, item_file: Path, desc: Description) -> dict[str, str]:
    """Item fields by RecBole type: token_seq is text, token/float are attributes; media by file names."""
    raw = read_sample(item_file, 200_000)
    types = {str(c).rsplit(":", 1)[0]: str(c).rsplit(":", 1)[-1] for c in raw.columns}
    frame = _strip_types(raw)
    id_col = "item_id" if "item_id" in frame.columns else str(frame.columns[0])
    desc.files["items"] = f"{item_file.name} (RecBole item features keyed by '{id_col}')"
    desc.guesses.append(Guess("items", id_col, "item", "RecBole's field name"))
    columns = {"item": id_col}
    text = [c for c, t in types.items() if t == "token_seq" and c != id_col]
    attrs = [c for c, t in types.items() if t in ("token", "float") and c != id_col]
    for c in text:
        desc.guesses.append(Guess("items", c, "text", "token_seq field (a sequence of words)"))
    for c in attrs:
        desc.guesses.append(Guess("items", c, "attribute", f"{types[c]} field"))
    if text:
        columns["text"] = ",".join(text)
    if attrs:
        columns["attributes"] = ",".join(attrs)
    for kind in ("image", "audio"):
        pattern, evidence = discover_pattern(root, frame[id_col].dropna().astype(str), kind, id_col)
        if pattern is not None:
            columns[f"{kind}_path"] = pattern
            desc.guesses.append(Guess("items", f"{kind}_path", pattern, f"{kind} files named by item id: {evidence}"))
    return columns


__all__ = ["describe_atomic"]
