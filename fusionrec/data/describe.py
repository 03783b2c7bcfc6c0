"""Folder inspection for ``fusionrec data init``: which file is what, and what every column means.

:func:`describe_folder` looks at a dataset folder and returns a :class:`Description`: the
``data:`` section of a run (a :class:`~fusionrec.config.DataConfig` as a dict, paths relative
to the folder) plus every guess with its reason. Layouts:

* tables (CSV / TSV / Parquet / JSONL): the interaction table is the one with a user-like and
  an item-like column (names such as ``transactions`` or ``ratings`` and size break ties); an
  item table (``items``, ``articles``, ``movies``, ``products``...) and a user table
  (``users``, ``customers``...) are optional; media folders are matched to item ids
  (:mod:`fusionrec.data.media`);
* MMRec (``*.inter`` with ``x_label`` and ``*_feat.npy``) and RecBole atomic files
  (``*.inter`` / ``*.item`` / ``*.user`` with typed headers).

Only samples of the tables are read, so inspecting a multi-gigabyte export takes seconds.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pyarrow import ArrowException

from fusionrec.data.describe_ids import ids_from_keys, repeating_id_column
from fusionrec.data.media import discover_pattern
from fusionrec.data.readers import guess_format
from fusionrec.data.sniff import (
    Guess,
    frame_stats,
    id_column,
    interaction_roles,
    side_roles,
)
from fusionrec.errors import UserError

INTERACTION_SAMPLE = 20_000
SIDE_SAMPLE = 200_000   # item / user tables: enough rows to match most ids to media files
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson", ".json",
                  ".csv.gz", ".tsv.gz", ".jsonl.gz")
INTERACTION_NAMES = ("interaction", "rating", "transaction", "event", "click", "purchase", "inter", "behavio",
                     "order", "view", "play", "listen", "review", "history", "log", "session")
ITEM_NAMES = ("item", "article", "movie", "product", "catalog", "track", "song", "book", "artist", "news",
              "video", "meta")
USER_NAMES = ("user", "customer", "member", "client", "account", "profile", "people")
DEFAULT_ENCODERS = {"text": "minilm", "image": "efficientnet-lite0", "audio": "logmel", "attribute": "attributes"}


@dataclass
class Table:
    """A table file and a sample of its rows (all values as text)."""

    path: Path
    rel: str
    frame: pd.DataFrame
    size: int

    @property
    def stem(self) -> str:
        return self.path.name.split(".")[0].lower()


@dataclass
class Description:
    """What ``data init`` decided: the data section, the guesses and reasons, and the TODOs."""

    root: Path
    data: dict[str, Any]
    layout: str
    guesses: list[Guess] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)   # interactions/items/users -> "file (why)"
    notes: list[str] = field(default_factory=list)        # one-line facts: media, repeats, split...

    @property
    def todos(self) -> list[Guess]:
        return [g for g in self.guesses if g.todo]

    @property
    def blocking(self) -> list[str]:
        return [g.reason for g in self.guesses if g.blocking]

    @property
    def suggested_model(self) -> str:
        """mmgraph when the items have content (features or encoders), else the ID-only lightgcn."""
        return "mmgraph" if self.data.get("features") or self.data.get("encoders") else "lightgcn"

    def one_line(self) -> str:
        cols = self.data.get("columns", {})
        parts = [f"{self.layout}", f"{self.data.get('path')}"]
        parts += [f"{role}={col}" for role, col in cols.items()]
        if self.data.get("items_path"):
            parts.append(f"items {self.data['items_path']}")
        return ", ".join(parts)

    def report(self) -> str:
        """The printout: every file and column with its role and why, then the TODOs."""
        lines = [f"inspected {self.root} ({self.layout})"]
        for what, text in self.files.items():
            lines.append(f"  {what}: {text}")
            lines += [f"    {g.line()}" for g in self.guesses if g.table == what]
        lines += [f"  {note}" for note in self.notes]
        enc = self.data.get("encoders") or {}
        if enc:
            lines.append("  encoders: " + ", ".join(f"{m} -> {n}" for m, n in enc.items()))
        for g in self.todos:
            lines.append(f"  TODO: {g.table}{'.' + g.column if g.column else ''}: {g.reason}")
        return "\n".join(lines)


def describe_folder(root: str | Path, name: str | None = None) -> Description:
    """Inspect ``root`` and describe it (nothing is written; see :mod:`fusionrec.data.init_cmd`)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError("not a folder", str(root), "pass the folder that holds your interaction file")
    root = root.resolve()
    inters = sorted(p for p in root.glob("*.inter") if p.is_file())
    if inters:
        # MMRec / RecBole folders (imported here: that module builds on this one)
        from fusionrec.data.describe_atomic import describe_atomic

        desc = describe_atomic(root, inters)
    else:
        desc = _describe_tables(root, find_tables(root))
    desc.data = {"name": name or root.name, **{k: v for k, v in desc.data.items() if k != "name"}}
    return desc


# ---------------------------------------------------------------------- reading samples
def find_tables(root: Path) -> list[Path]:
    """Table files in ``root`` and its direct sub-folders (hidden files and run outputs skipped)."""
    found = []
    for path in sorted([*root.iterdir(), *(p for d in root.iterdir() if d.is_dir() and not
                                           d.name.startswith(".") for p in d.iterdir())]):
        name = path.name.lower()
        if path.is_file() and name.endswith(TABLE_SUFFIXES) and not name.startswith((".", "quarantine")):
            found.append(path)
    return found


def read_sample(path: Path, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows of a table as text (NA for empty cells)."""
    fmt = guess_format(path)
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            from fusionrec.data.rawtable import parquet_frame

            batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows), None)
            frame = parquet_frame(pa.Table.from_batches([batch]), path) if batch is not None else pd.DataFrame()
            return frame.astype("string").astype(object).where(frame.notna(), None)
        if fmt == "jsonl":
            records = []
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    record = _json_object(line)
                    if record is not None:  # broken lines are the validator's to report, with their numbers
                        records.append(record)
                    if len(records) >= rows:
                        break
            frame = pd.DataFrame.from_records(records)
            frame.columns = [str(c) for c in frame.columns]
            return frame.astype("string").astype(object)
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        sep = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz", ".inter", ".item", ".user")) else \
            max((",", ";", "\t", "|"), key=first.count)
        return pd.read_csv(path, sep=sep, dtype=str, nrows=rows, keep_default_na=False, na_values=[""],
                           encoding_errors="replace", on_bad_lines="skip")
    except (ValueError, OSError, StopIteration, TypeError, ArrowException) as err:
        raise UserError(f"cannot read a sample of {path.name}: {str(err)[:200]}", str(path),
                        "check the file is a complete CSV/TSV/Parquet/JSONL table, or move it out of the folder"
                        ) from None


def _json_object(line: str) -> dict | None:
    if not line.strip():
        return None
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------------- tables layout
def load_tables(root: Path, paths: list[Path], guesses: list[Guess]) -> list[Table]:
    tables = []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        try:
            frame = read_sample(path, SIDE_SAMPLE)
        except UserError as err:
            guesses.append(Guess("files", rel, "not used", err.what))
            continue
        tables.append(Table(path, rel, frame, path.stat().st_size))
    return tables


def _named(table: Table, words: tuple[str, ...]) -> bool:
    return any(w in table.stem for w in words)


def _describe_tables(root: Path, paths: list[Path]) -> Description:
    guesses: list[Guess] = []
    desc = Description(root, {}, "tables", guesses)
    tables = load_tables(root, paths, guesses)
    if not tables:  # nothing to describe: a YAML of TODOs would not help anyone
        nested = sorted({p.parent for p in root.glob("*/*.inter")})
        fix = (f"the MMRec/RecBole files are one folder down: run `fusionrec data init {nested[0]}`" if nested else
               "put the interaction log there: a CSV/TSV/Parquet/JSONL file with a user and an item "
               "column, e.g. interactions.csv with user_id,item_id")
        raise UserError("no interaction table in the folder", f"{root} (looked for "
                        f"{', '.join(TABLE_SUFFIXES[:8])} files there and one folder down)", fix)
    ids = {t.rel: (id_column(list(t.frame.columns), "user")[0], id_column(list(t.frame.columns), "item")[0])
           for t in tables}
    both = [t for t in tables if all(ids[t.rel])]
    if not both:
        inter = max(tables, key=lambda t: (_named(t, INTERACTION_NAMES), t.size))
        desc.files["interactions"] = f"{inter.rel} (largest / best-named table, but see the TODO)"
    else:
        inter = max(both, key=lambda t: (_named(t, INTERACTION_NAMES), t.size))
        why = "named like an interaction log" if _named(inter, INTERACTION_NAMES) else "largest table"
        desc.files["interactions"] = f"{inter.rel} (has a user and an item column; {why})"
    user, item = _interaction_columns(inter, [t for t in tables if t is not inter], guesses)
    if not both and user and item:
        desc.files["interactions"] = f"{inter.rel} (largest / best-named table; user and item columns found by content)"
    frame = inter.frame.head(INTERACTION_SAMPLE)
    data: dict[str, Any] = {"format": guess_format(inter.path), "path": inter.rel}
    roles = interaction_roles(frame_stats(frame), user or "", item or "", "interactions") if user or item else []
    guesses += roles
    data["columns"] = {r: c for r, c in (("user", user), ("item", item)) if c}
    data["columns"].update({g.role: g.column for g in roles if g.role in ("timestamp", "rating", "label",
                                                                           "split", "weight")})
    describe_side_tables(root, [t for t in tables if t is not inter], frame, user, item, desc, data)
    _describe_repeats(frame, user, item, desc)
    rating = next((g for g in roles if g.role == "rating"), None)
    if rating is not None:
        desc.notes.append(f"ratings ({rating.reason.split('; ')[-1]}): every rating counts as a positive; set "
                          "positive_rating (e.g. 4 for 1-5 stars) to treat lower ones as negative feedback")
    data["split"] = split_for(data["columns"], desc)
    data["encoders"] = encoders_for(data.get("item_columns", {}))
    desc.data = data
    return desc


def describe_side_tables(root: Path, tables: list[Table], frame: pd.DataFrame, user: str | None,
                         item: str | None, desc: Description, data: dict[str, Any]) -> None:
    """Pick and describe the item and user tables among ``tables`` (the interactions are ``frame``)."""
    rest = list(tables)
    items = _pick_side(rest, item, "item", ITEM_NAMES, frame[item] if item else None)
    if items is not None:
        rest.remove(items)
        _describe_items(root, items, item, desc, data, frame[item] if item else None)
    elif item:
        _media_without_items(root, frame[item].dropna().unique(), desc)
    users = _pick_side(rest, user, "user", USER_NAMES, frame[user] if user else None)
    if users is not None:
        rest.remove(users)
        _describe_users(users, user, desc, data)
    for t in rest:
        desc.guesses.append(Guess("files", t.rel, "not used", "neither interactions nor an item/user table"))


def _interaction_columns(inter: Table, others: list[Table], guesses: list[Guess]) -> tuple[str | None, str | None]:
    """The user and item columns: by name, else by content (another table's keys, a repeating id)."""
    cols = list(inter.frame.columns)
    found: dict[str, tuple[str | None, str]] = {}
    for role in ("user", "item"):
        found[role] = id_column(cols, role, exclude=tuple(c for c, _ in found.values() if c))
    if found["user"][0] is None or found["item"][0] is None:
        taken = {c for c, _ in found.values() if c}
        by_keys = ids_from_keys(inter.frame, others, taken, lambda t: _named(t, USER_NAMES))
        for role, (col, why) in by_keys.items():
            if found[role][0] is None and col not in taken:
                found[role] = (col, why)
                taken.add(col)
        missing = [r for r in ("user", "item") if found[r][0] is None]
        if len(missing) == 1:  # the other side is known: the remaining repeating id is this one
            col, why = repeating_id_column(inter.frame, taken, missing[0])
            if col is not None:
                found[missing[0]] = (col, why)
    for role in ("user", "item"):
        col, why = found[role]
        if col is None:
            guesses.append(Guess("interactions", None, None, f"{why} in {inter.rel} (columns: {', '.join(cols)}); "
                                 f"write columns.{role}: <column> in fusionrec.yaml", todo=True, blocking=True))
        else:
            guesses.append(Guess("interactions", col, role, why))
    return found["user"][0], found["item"][0]


def _pick_side(tables: list[Table], key: str | None, role: str, words: tuple[str, ...],
               values: pd.Series | None) -> Table | None:
    """The item (or user) table: has the id column (by the interactions' name or the role table) and
    shares ids with the interactions; a name such as ``articles`` breaks ties."""
    other = "item" if role == "user" else "user"
    best, best_score = None, (0, 0.0, False)
    seen = set(values.dropna().astype(str)) if values is not None else set()
    for t in tables:
        cols = list(t.frame.columns)
        col = key if key in cols else id_column(cols, role)[0]
        if col is None or (id_column(cols, other)[0] is not None and not _named(t, words)):
            continue  # another log (both ids), not a side table
        overlap = t.frame[col].dropna().astype(str).isin(seen).mean() if seen else 0.0
        score = (int(col == key) + int(_named(t, words)), float(overlap), True)
        if (overlap > 0 or _named(t, words)) and score > best_score:
            best, best_score = t, score
    return best


def side_id(table: Table, key: str | None, role: str) -> str:
    cols = list(table.frame.columns)
    return key if key in cols else (id_column(cols, role)[0] or cols[0])


def _describe_items(root: Path, items: Table, key: str | None, desc: Description, data: dict[str, Any],
                    seen: pd.Series | None) -> None:
    id_col = side_id(items, key, "item")
    desc.files["items"] = f"{items.rel} (item table keyed by '{id_col}')"
    table_ids = set(items.frame[id_col].dropna().astype(str))
    seen_ids = set(seen.dropna().astype(str)) if seen is not None else set()
    if seen_ids - table_ids:
        # a catalogue table that describes only some items (common in retail exports): the other items
        # are real, they just have no text or attributes, so their interactions are kept
        desc.notes.append(f"items: {items.rel} describes {len(seen_ids & table_ids)} of the {len(seen_ids)} items "
                          "in the sampled interactions; the others are kept as items without text or attributes "
                          "(unknown_items: keep; write quarantine if the table should be complete)")
    data["items_path"] = items.rel
    guesses = side_roles(frame_stats(items.frame), id_col, "items")
    desc.guesses.append(Guess("items", id_col, "item", "the interactions' item ids"))
    desc.guesses.extend(guesses)
    columns: dict[str, str] = {"item": id_col}
    for role in ("text", "attribute"):
        chosen = [g.column for g in guesses if g.role == role and g.column]
        if chosen:
            columns["text" if role == "text" else "attributes"] = ",".join(chosen)
    for kind in ("image", "audio"):
        col = next((g.column for g in guesses if g.role == f"{kind}_path" and g.column), None)
        if col is not None:
            columns[f"{kind}_path"] = col
            continue
        # photos often exist for items the catalogue table does not describe: match every known id
        pattern, evidence = discover_pattern(root, table_ids | seen_ids, kind, id_col)
        if pattern is not None:
            columns[f"{kind}_path"] = pattern
            desc.guesses.append(Guess("items", f"{kind}_path", pattern, f"{kind} files named by item id: {evidence}"))
        elif "named by an item id" in evidence or "only" in evidence:
            desc.notes.append(f"{kind}s: {evidence}")
    data["item_columns"] = columns


def _media_without_items(root: Path, item_ids: Any, desc: Description) -> None:
    for kind in ("image", "audio"):
        pattern, evidence = discover_pattern(root, [str(i) for i in item_ids], kind)
        if pattern is not None:
            desc.guesses.append(Guess("interactions", None, None, f"{kind} files are named by item id ({evidence}) "
                                      "but there is no item table to attach them to: add items.csv with an "
                                      "item_id column and run `fusionrec data init --force`", todo=True))


def _describe_users(users: Table, key: str | None, desc: Description, data: dict[str, Any]) -> None:
    id_col = side_id(users, key, "user")
    desc.files["users"] = f"{users.rel} (user table keyed by '{id_col}')"
    data["users_path"] = users.rel
    guesses = side_roles(frame_stats(users.frame), id_col, "users")
    desc.guesses.append(Guess("users", id_col, "user", "the interactions' user ids"))
    desc.guesses.extend(guesses)
    attrs = [g.column for g in guesses if g.role == "attribute" and g.column]
    data["user_columns"] = {"user": id_col, **({"attributes": ",".join(attrs)} if attrs else {})}


def _describe_repeats(frame: pd.DataFrame, user: str | None, item: str | None, desc: Description) -> None:
    if not user or not item:
        return
    pairs = frame.duplicated([user, item]).sum()
    if pairs:
        exact = frame.duplicated().sum()
        desc.notes.append(f"repeats: {pairs} of {len(frame)} sampled rows repeat a user-item pair "
                          f"({exact} byte-identical); kept as repeat events (repeats: events)")


# ---------------------------------------------------------------------- shared decisions
def split_for(columns: dict[str, str], desc: Description) -> dict[str, Any]:
    """predefined with a split column, temporal with timestamps, else random (seeded)."""
    if "split" in columns:
        method, why = "predefined", f"the split column '{columns['split']}'"
    elif "timestamp" in columns:
        method, why = "temporal", "timestamps: train on the past, test on the future"
    else:
        method, why = "random", "no timestamps and no split column"
    desc.notes.append(f"split: {method} ({why})")
    return {"method": method}


def encoders_for(item_columns: dict[str, str]) -> dict[str, str]:
    """One encoder per modality the item table offers (the registry's default for that kind)."""
    present = {"text": "text", "image": "image_path", "audio": "audio_path", "attribute": "attributes"}
    return {m: DEFAULT_ENCODERS[m] for m, role in present.items() if item_columns.get(role)}


__all__ = ["Description", "Table", "describe_folder", "describe_side_tables", "encoders_for", "find_tables",
           "load_tables", "read_sample", "split_for"]
