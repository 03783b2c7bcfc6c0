"""Write a :class:`~fusionrec.data.describe.Description` as ``fusionrec.yaml``, with comments.

The file is meant to be edited by hand: every section starts with a comment that says what
it is for, every guessed mapping carries the reason as an end-of-line comment, unused
columns are listed, and anything ``data init`` could not decide is a ``# TODO:`` line. The
values are exactly ``Description.data`` (checked by parsing the text back).
"""
from __future__ import annotations

import json
import re
import time
from typing import Any

import yaml

from fusionrec.data.describe import Description
from fusionrec.data.sniff import Guess
from fusionrec.errors import UserError

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./,-]*$")
_COMMENT_AT = 44


def _safe(text: Any) -> str:
    """Text for a comment line: characters YAML would reject or that would end the line are escaped."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


def scalar(value: Any) -> str:
    """One YAML scalar (or flow mapping): plain when unambiguous, else JSON-quoted (valid YAML)."""
    if isinstance(value, str):
        if _PLAIN.match(value) and yaml.safe_load(value) == value:
            return value
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {scalar(v)}" for k, v in value.items()) + "}"
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _entry(indent: int, key: str, value: Any, comment: str = "") -> str:
    text = f"{' ' * indent}{key}: {scalar(value)}"
    if comment:
        text = f"{text:<{_COMMENT_AT}} # {_safe(comment)}"
    return text


def _reasons(guesses: list[Guess], table: str, role: str) -> str:
    """Why a mapping line says what it says; each column named when a list role has several."""
    found = [g for g in guesses if g.table == table and g.role == role]
    if len(found) == 1:
        return found[0].reason
    return "; ".join(f"{g.column}: {g.reason}" for g in found)


def _mapping(lines: list[str], key: str, mapping: dict[str, str], guesses: list[Guess], table: str,
             list_roles: dict[str, str]) -> None:
    """A role -> column mapping with each line's reason, then unused columns and TODOs as comments."""
    if not mapping:  # comments go above `{}`: uncommenting lines under it would not parse
        lines += [f"# TODO: {_safe(g.column) + ': ' if g.column else ''}{_safe(g.reason)}"
                  for g in guesses if g.table == table and g.todo]
        lines.append(f"{key}: {{}}")
        return
    lines.append(f"{key}:")
    for role, column in mapping.items():
        reason = _reasons(guesses, table, list_roles.get(role, role))
        if role in ("image_path", "audio_path") and "{" in column:
            reason = _reasons(guesses, table, column)
        lines.append(_entry(2, role, column, reason))
    unused = [g for g in guesses if g.table == table and g.role == "not used"]
    for g in unused:
        lines.append(f"  # not used: {_safe(g.column)} ({_safe(g.reason)})")
    for g in guesses:
        if g.table == table and g.todo:
            lines.append(f"  # TODO: {_safe(g.column) + ': ' if g.column else ''}{_safe(g.reason)}")


def render_yaml(desc: Description) -> str:
    """The commented ``fusionrec.yaml`` text of ``desc`` (parses back to ``desc.data``)."""
    d, g = desc.data, desc.guesses
    todos = len(desc.todos)
    lines = [
        f"# fusionrec data description of {_safe(desc.root)}",
        f"# written by `fusionrec data init` on {time.strftime('%Y-%m-%d')}; every command reads it:",
        f"#   fusionrec data validate --data {_safe(desc.root)}",
        f"#   fusionrec train --data {_safe(desc.root)} --model {desc.suggested_model}",
        "# Paths are relative to this file's folder. Edit freely; `fusionrec data init --force` rewrites it.",
    ]
    if todos:
        lines.append(f"# {todos} TODO line(s) below need a decision.")
    lines += ["", _entry(0, "name", d["name"], "the dataset's name in run folders and reports"),
              _entry(0, "format", d["format"], "csv | parquet | jsonl (tables), mmrec, recbole"), ""]
    lines.append("# Interactions: one row per event (who did something with which item, and when).")
    lines.append(_entry(0, "path", d["path"], desc.files.get("interactions", "")))
    for other in (x for x in g if x.table == "files"):
        lines.append(f"# {'TODO: ' if other.todo else ''}{_safe(other.column or 'files')}: "
                     f"{other.role or 'undecided'} ({_safe(other.reason)})")
    lines.append("# role -> column; roles: user, item, timestamp, rating, label (0 = negative), split, weight")
    _mapping(lines, "columns", d.get("columns", {}), g, "interactions", {})
    _render_side(lines, desc)
    _render_features(lines, d.get("features"), g)
    _render_rest(lines, d)
    text = "\n".join(lines) + "\n"
    check_roundtrip(text, d)
    return text


def _render_side(lines: list[str], desc: Description) -> None:
    d, g = desc.data, desc.guesses
    if "items_path" in d or "item_columns" in d:
        lines += ["", "# Items: one row per item. text = columns joined into one text per item; image_path /",
                  "# audio_path = a column of file paths or a pattern filled from the row, relative to this",
                  "# folder ({article_id:.3} = the first 3 characters of the id); attributes = categories and",
                  "# numbers. Items without text or a file are kept; the missing modality is masked."]
        if "items_path" in d:
            lines.append(_entry(0, "items_path", d["items_path"], desc.files.get("items", "")))
        _mapping(lines, "item_columns", d.get("item_columns", {}), g, "items",
                 {"text": "text", "attributes": "attribute"})
    if "users_path" in d:
        lines += ["", "# Users (optional): one row per user; attributes describe users to the ranker."]
        lines.append(_entry(0, "users_path", d["users_path"], desc.files.get("users", "")))
        _mapping(lines, "user_columns", d.get("user_columns", {}), g, "users", {"attributes": "attribute"})
    for note in desc.notes:
        if note.startswith(("images:", "audios:")):
            lines.append(f"# {_safe(note)}")


def _render_features(lines: list[str], features: dict[str, Any] | None, guesses: list[Guess]) -> None:
    if features is None:
        return
    lines += ["", "# Precomputed item features: modality -> {path: <file>.npy, kind, missing: <mask>.npy};",
              "# row j of each matrix is item j."]
    if not features:
        lines.append("features: {}")
    else:
        lines.append("features:")
        for name, spec in features.items():
            lines.append(_entry(2, name, spec))
    for todo in (x for x in guesses if x.table == "features" and x.todo):
        lines.append(f"# TODO: {_safe(todo.reason)}")


def _render_rest(lines: list[str], d: dict[str, Any]) -> None:
    lines += ["", "# Encoders that turn item content into vectors, per modality (encode, train and serve use",
              "# them): a registry name (minilm, efficientnet-lite0, logmel, attributes, clip-image...) or",
              "# {name: clip-image, params: {model_path: /path/to/clip}}."]
    enc = d.get("encoders") or {}
    lines.append("encoders:" if enc else "encoders: {}")
    lines += [_entry(2, m, spec) for m, spec in enc.items()]
    lines += ["", "# Ratings below positive_rating are negative feedback (never a training positive);",
              "# null: every interaction is a positive. E.g. 4 for 1-5 stars.",
              _entry(0, "positive_rating", d.get("positive_rating")),
              "# Interactions whose item (user) is not in the item (user) table: keep (the table describes",
              "# only some of them; reported as a warning) or quarantine (the table is complete, so such an",
              "# id is a mistake: its rows are set aside).",
              _entry(0, "unknown_items", d.get("unknown_items", "keep")),
              "# events: a user doing the same thing with an item again is behaviour (kept, reported as",
              "# information); duplicates: identical rows are mistakes (reported as a warning, still kept).",
              _entry(0, "repeats", d.get("repeats", "events")),
              "", "# How interactions are divided into train / valid / test:",
              "# temporal (by time), random (per user, seeded), leave_last_out, predefined (the data's own)."]
    lines.append("split:")
    lines += [_entry(2, k, v) for k, v in d["split"].items()]


def check_roundtrip(text: str, data: dict[str, Any]) -> None:
    """The written text must mean exactly ``data`` and be a valid DataConfig."""
    from fusionrec.config import DataConfig

    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"internal error: the description text is not valid YAML ({str(err)[:200]})",
                        "fusionrec.yaml", "report this as a bug with the folder's file names") from None
    expected = {**data, "positive_rating": data.get("positive_rating"), "repeats": data.get("repeats", "events"),
                "unknown_items": data.get("unknown_items", "keep")}
    if parsed != expected:
        diff = sorted(k for k in set(parsed) | set(expected) if parsed.get(k) != expected.get(k))
        raise UserError("internal error: the description text does not match what was inspected",
                        f"keys {diff}", "report this as a bug with the folder's file names")
    DataConfig.model_validate(parsed)


__all__ = ["check_roundtrip", "render_yaml", "scalar"]
