"""Readers: CSV / TSV / Parquet / JSONL tables with a column mapping, MMRec and RecBole folders.

Reading happens in two layers:

* :func:`read_raw` parses one file *tolerantly*: every value is kept as text,
  malformed lines (wrong field count, broken JSON) are set aside with their
  physical line number instead of aborting, and every good row remembers the
  line it started on so later checks can point at it.
* A :class:`DataSource` describes a whole dataset (interaction file, optional
  item / user tables, feature ``.npy`` files, column roles). It is turned into a
  :class:`~fusionrec.data.dataset.Dataset` by
  :func:`fusionrec.data.validate.validate_source`, which runs every check and
  quarantines bad rows. :func:`read_table`, :func:`read_mmrec` and
  :func:`read_recbole` are thin conveniences over that path, so there is a
  single loader and every dataset is validated the same way.

Column *roles* map a meaning to a column of the file. Interaction roles:
``user, item, rating, timestamp, label, split``. Item-table roles: ``item``
(id), ``text`` (comma-separated list of text columns, joined into one ``text``
field), ``image_path`` / ``audio_path`` (a column, or a template such as
``images/{item_id}.jpg`` filled from the row), ``attributes`` (comma-separated
columns) and, for MMRec folders, ``id_map`` (a two-column file mapping the
table's original ids to MMRec's integer ids).
"""
from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from fusionrec.data.roles import (  # noqa: F401  (re-exported: the role table used to live here)
    INTERACTION_ROLES,
    ITEM_ROLES,
    ROLE_ALIASES,
    SPLIT_VALUES,
    USER_ROLES,
)
from fusionrec.errors import UserError

TABLE_FORMATS = ("csv", "parquet", "jsonl")
_TAB_SUFFIXES = (".tsv", ".inter", ".item", ".user", ".tab")


# ---------------------------------------------------------------------- raw tables
@dataclass
class RawTable:
    """A table exactly as read, before any role mapping or type conversion.

    ``frame`` holds every value as text (Parquet keeps its native types);
    missing cells are NA. ``line[i]`` is the 1-based physical line on which row
    ``i`` starts (``unit == "line"``) or its 1-based row number for Parquet
    (``unit == "row"``). ``malformed`` lists lines that could not be parsed into
    the header's fields: columns ``line``, ``content``, ``detail``.
    """

    path: Path
    frame: pd.DataFrame
    line: np.ndarray
    unit: str = "line"
    malformed: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"line": pd.Series([], dtype=np.int64), "content": [], "detail": []})
    )
    delimiter: str = ","
    encoding: str = "utf-8"
    header_types: dict[str, str] = field(default_factory=dict)  # RecBole typed headers: column -> type

    def where(self, row: int | None = None, column: str | None = None) -> str:
        """Human-readable location, e.g. ``"interactions.csv line 12, column 'rating'"``."""
        text = str(self.path)
        if row is not None:
            text += f" {self.unit} {int(self.line[row])}"
        if column is not None:
            text += f", column {column!r}"
        return text

    def row_text(self, rows: np.ndarray) -> list[str]:
        """The content of the given rows re-joined with the file's delimiter (for quarantine files)."""
        if len(rows) == 0:
            return []
        sub = self.frame.iloc[rows].astype(object)
        sub = sub.where(sub.notna(), "")
        parts = [sub[c].astype(str).to_numpy() for c in sub.columns]
        out = parts[0].astype(object)
        for p in parts[1:]:
            out = out + self.delimiter + p.astype(object)
        return list(out)


def _missing_file(path: Path, what: str) -> UserError:
    near = ""
    if path.parent.is_dir():
        names = sorted(p.name for p in path.parent.iterdir())[:12]
        near = f" (the folder holds: {', '.join(names) or 'nothing'})"
    return UserError(
        f"{what} not found",
        str(path) + near,
        "check the path (relative paths are resolved from the current directory or the dataset folder)",
    )


def guess_format(path: Path) -> str:
    """``csv`` / ``parquet`` / ``jsonl`` from a file name (``.tsv``, ``.inter`` etc. are csv with tabs)."""
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".zst"):
        name = name.removesuffix(suffix)
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def read_raw(
    path: str | Path,
    fmt: str | None = None,
    delimiter: str | None = None,
    names: list[str] | None = None,
) -> RawTable:
    """Parse one table file tolerantly (see :class:`RawTable`).

    ``fmt`` is ``csv`` (also TSV), ``parquet`` or ``jsonl`` (guessed from the
    name when None). ``delimiter`` defaults to a tab for ``.tsv/.inter/.item``
    and otherwise to whichever of tab / comma / semicolon / pipe splits the
    header line. ``names`` gives column names for a header-less CSV.
    Raises :class:`UserError` when the file is missing, empty or not a table.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing_file(path, "data file")
    fmt = fmt or guess_format(path)
    if fmt == "parquet":
        return _read_parquet(path)
    if fmt == "jsonl":
        return _read_jsonl(path)
    if fmt not in ("csv", "tsv"):
        raise UserError(f"unknown table format {fmt!r}", str(path), "use one of csv, tsv, parquet, jsonl")
    return _read_delimited(path, "\t" if fmt == "tsv" and delimiter is None else delimiter, names)


def _sniff_delimiter(path: Path, first_line: str) -> str:
    if path.name.lower().endswith(_TAB_SUFFIXES):
        return "\t"
    counts = {d: first_line.count(d) for d in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _read_delimited(path: Path, delimiter: str | None, names: list[str] | None) -> RawTable:
    encoding = "utf-8"
    try:
        with open(path, "r", encoding=encoding, newline="") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        encoding = "latin-1"  # every byte string is valid latin-1: the read never fails
        with open(path, "r", encoding=encoding, newline="") as fh:
            first = fh.readline()
    if not first.strip():
        raise UserError("file is empty (no header line)", f"{path} line 1",
                        "write a header row naming the columns, e.g. user_id,item_id,rating,timestamp")
    delimiter = delimiter or _sniff_delimiter(path, first)
    if names is None:
        header = next(csv.reader([first.rstrip("\r\n")], delimiter=delimiter))
        skip = 1
    else:
        header, skip = list(names), 0
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise UserError(f"duplicate column names {dup}", f"{path} line 1", "give every column a distinct name")

    bad: list[tuple[int | None, str, str]] = []

    def on_invalid(row: Any) -> str:
        bad.append((row.number, row.text, f"expected {row.expected_columns} fields, got {row.actual_columns}"))
        return "skip"

    def parse(enc: str) -> pa.Table:
        bad.clear()
        return pacsv.read_csv(
            path,
            # single-threaded so that pyarrow reports physical line numbers of bad rows
            read_options=pacsv.ReadOptions(use_threads=False, column_names=header, skip_rows=skip, encoding=enc),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=on_invalid,
                newlines_in_values=True, ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header},
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )

    try:
        table = parse(encoding)
    except pa.ArrowInvalid as err:
        if "UTF8" in str(err) and encoding == "utf-8":
            encoding = "latin-1"
            table = parse(encoding)
        else:
            raise UserError(f"cannot parse the file as delimited text: {err}", str(path),
                            "check quoting (an unterminated quote swallows the rest of the file) "
                            "and the delimiter") from None

    # Physical start line of every good record. Each physical line is either part of a
    # good record (which may span lines through quoted newlines) or of a bad row.
    n = table.num_rows
    extra = np.zeros(n, dtype=np.int64)
    for col in table.columns:
        extra += pc.count_substring(col, "\n").to_numpy(zero_copy_only=False).astype(np.int64)
    first_line = skip + 1
    ordinal = np.arange(n, dtype=np.int64)
    if n:
        ordinal += np.concatenate([[0], np.cumsum(extra)[:-1]])
    bad_lines: list[int] = []
    for number, text, _ in bad:
        if number is not None:
            bad_lines.extend(range(number, number + text.count("\n") + 1))
    if bad_lines:
        b = np.sort(np.asarray(bad_lines, dtype=np.int64)) - first_line
        b_adj = b - np.arange(len(b))
        ordinal = ordinal + np.searchsorted(b_adj, ordinal, side="right")
    line = ordinal + first_line

    # A blank line parses as a row of empty fields: drop such rows silently (they carry no data).
    blank = np.ones(n, dtype=bool)
    for col in table.columns:
        blank &= (pc.utf8_length(col).to_numpy(zero_copy_only=False) == 0)
    bad = [b for b in bad if b[1].strip() != ""]
    # empty cells -> null in Arrow (C speed) so pandas sees NA
    table = pa.table({name: pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
                      for name, col in zip(table.column_names, table.columns)})
    frame = table.to_pandas()
    keep = ~blank
    frame = frame[keep].reset_index(drop=True)
    malformed = pd.DataFrame(
        {
            "line": pd.Series([b[0] if b[0] is not None else -1 for b in bad], dtype=np.int64),
            "content": [b[1] for b in bad],
            "detail": [b[2] for b in bad],
        }
    )
    return RawTable(path, frame, line[keep], "line", malformed, delimiter, encoding)


def _read_parquet(path: Path) -> RawTable:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"cannot read Parquet file: {err}", str(path),
                        "check that the file is a complete Parquet file (not truncated, not CSV renamed)") from None
    frame = table.to_pandas()
    return RawTable(path, frame, np.arange(1, len(frame) + 1, dtype=np.int64), "row", delimiter=",")


def _read_jsonl(path: Path) -> RawTable:
    records: list[dict] = []
    lines: list[int] = []
    bad: list[tuple[int, str, str]] = []
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for number, text in enumerate(fh, start=1):
            stripped = text.strip()
            if not stripped:
                continue
            try:
                obj = json.loads(stripped)
            except json.JSONDecodeError as err:
                bad.append((number, stripped, f"invalid JSON: {err.msg} at column {err.colno}"))
                continue
            if not isinstance(obj, dict):
                bad.append((number, stripped, f"expected a JSON object, got {type(obj).__name__}"))
                continue
            records.append(obj)
            lines.append(number)
    if not records and not bad:
        raise UserError("file is empty", str(path), "write one JSON object per line")
    frame = pd.DataFrame.from_records(records)
    # Keep everything as text like the CSV path so validation sees one representation.
    for col in frame.columns:
        values = frame[col]
        frame[col] = values.map(lambda v: pd.NA if v is None or (isinstance(v, float) and np.isnan(v))
                                else (json.dumps(v) if isinstance(v, (list, dict)) else str(v))).astype(object)
    malformed = pd.DataFrame(
        {"line": pd.Series([b[0] for b in bad], dtype=np.int64), "content": [b[1] for b in bad],
         "detail": [b[2] for b in bad]}
    )
    return RawTable(path, frame, np.asarray(lines, dtype=np.int64), "line", malformed, delimiter=",")


# ---------------------------------------------------------------------- sources
@dataclass
class FeatureSpec:
    """A precomputed feature matrix: ``path`` is a ``.npy`` whose row i is item i.

    ``missing`` optionally names a boolean ``.npy`` (True = the item has no
    content; its row is a placeholder such as MMRec's mean vector), which becomes
    ``FeatureModality.mask == False``. ``ids`` optionally names a file listing the
    original item id of every row (``.npy`` or one id per line) when rows are not
    in the dataset's item order.
    """

    name: str
    kind: str
    path: Path
    missing: Path | None = None
    ids: Path | None = None


@dataclass
class DataSource:
    """Everything needed to build a Dataset: files plus column roles. Nothing is read yet."""

    name: str
    format: str                      # csv/parquet/jsonl/mmrec/recbole
    interactions: list[tuple[Path, str | None]]  # (file, split label forced on its rows or None)
    root: Path
    columns: dict[str, str] = field(default_factory=dict)
    items_path: Path | None = None
    item_columns: dict[str, str] = field(default_factory=dict)
    users_path: Path | None = None
    user_columns: dict[str, str] = field(default_factory=dict)
    features: list[FeatureSpec] = field(default_factory=list)
    # MMRec/RecBole-style integer ids: item j is id j (so feature row j is item j)
    integer_ids: bool = False
    table_format: str | None = None   # csv/parquet/jsonl for the interaction file


def _as_path(value: str | Path, base: Path | None) -> Path:
    p = Path(value).expanduser()
    if not p.is_absolute() and base is not None and not p.exists():
        candidate = base / p
        if candidate.exists() or not p.parent.exists():
            return candidate
    return p


_KIND_PATTERNS = (
    ("audio", re.compile(r"audio|vggish|whisper|wav2vec|clap|mfcc|musicnn|hubert", re.IGNORECASE)),
    ("image", re.compile(r"image|img|visual|vit|resnet|vgg|clip|poster|efficientnet|cover", re.IGNORECASE)),
    ("text", re.compile(r"text|minilm|bert|sentence|mpnet|title|desc|review|t5|e5", re.IGNORECASE)),
)


def guess_kind(name: str) -> str:
    """Modality kind from a feature file name (``vggish.npy`` -> audio, ``text_feat.npy`` -> text)."""
    for kind, pattern in _KIND_PATTERNS:
        if pattern.search(name):
            return kind
    return "other"


def feature_specs(features: Mapping[str, Mapping[str, Any]], base: Path) -> list[FeatureSpec]:
    """``{name: {path, kind, missing?, ids?}}`` (DataConfig.features) -> specs with resolved paths."""
    specs = []
    for name, spec in features.items():
        if isinstance(spec, (str, Path)):
            spec = {"path": spec}
        if "path" not in spec:
            raise UserError(f"feature {name!r} has no 'path'", "data.features",
                            f"write data.features.{name}.path: <file>.npy")
        specs.append(
            FeatureSpec(
                name=name,
                kind=str(spec.get("kind") or guess_kind(f"{name} {spec['path']}")),
                path=_as_path(spec["path"], base),
                missing=_as_path(spec["missing"], base) if spec.get("missing") else None,
                ids=_as_path(spec["ids"], base) if spec.get("ids") else None,
            )
        )
    return specs


def discover_mmrec_features(folder: Path) -> dict[str, dict[str, str]]:
    """Feature ``.npy`` files of an MMRec folder: ``text_feat.npy`` -> text, ``vggish.npy`` -> audio...

    ``<x>_missing.npy`` files are masks for ``<x>_feat.npy``; other files named
    like masks or id lists are skipped.
    """
    found: dict[str, dict[str, str]] = {}
    files = sorted(p.name for p in folder.glob("*.npy"))
    masks = {f for f in files if f.endswith(("_missing.npy", "_mask.npy"))}
    for fname in files:
        if fname in masks or fname.endswith("_ids.npy"):
            continue
        stem = fname[:-4]
        name = stem.removesuffix("_feat")
        name = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_").lower() or "feat"
        kind = guess_kind(fname)
        if name in ("v", "image"):
            kind = "image"
        elif name in ("t", "text"):
            kind = "text"
        entry = {"path": fname, "kind": kind}
        prefix = stem.removesuffix("_feat")
        for mask_name in (f"{prefix}_missing.npy", f"{prefix}_mask.npy"):
            if mask_name in masks:
                entry["missing"] = mask_name
        found[name] = entry
    return found


def mmrec_source(
    path: str | Path,
    name: str | None = None,
    features: Mapping[str, Mapping[str, Any]] | None = None,
    items_path: str | Path | None = None,
    item_columns: Mapping[str, str] | None = None,
    columns: Mapping[str, str] | None = None,
) -> DataSource:
    """Describe an MMRec folder: ``<name>.inter`` (userID itemID [rating] [timestamp] x_label) + ``.npy``.

    ``path`` is the folder or the ``.inter`` file. When ``features`` is None every
    ``.npy`` in the folder is used (see :func:`discover_mmrec_features`). Ids are
    MMRec's integers, so internal item j is itemID j and feature row j is item j.
    """
    path = Path(path)
    if path.is_dir():
        folder = path
        inters = sorted(folder.glob("*.inter"))
        preferred = [p for p in inters if p.stem == (name or folder.name)]
        if preferred:
            inter = preferred[0]
        elif len(inters) == 1:
            inter = inters[0]
        elif not inters:
            raise UserError("no MMRec interaction file (*.inter)", str(folder),
                            "point at the folder holding <name>.inter or at the .inter file itself")
        else:
            raise UserError(f"several .inter files: {[p.name for p in inters]}", str(folder),
                            "pass the .inter file you mean as the path")
    elif path.is_file():
        inter, folder = path, path.parent
    else:
        raise _missing_file(path, "MMRec folder or .inter file")
    feats = discover_mmrec_features(folder) if features is None else dict(features)
    cols = {"user": "userID", "item": "itemID", "split": "x_label"}
    cols.update(columns or {})
    items = _as_path(items_path, folder) if items_path else None
    return DataSource(
        name=name or inter.stem,
        format="mmrec",
        interactions=[(inter, None)],
        root=items.parent if items is not None else folder,
        columns=cols,
        items_path=items,
        item_columns=dict(item_columns or {}),
        features=feature_specs(feats, folder),
        integer_ids=True,
        table_format="csv",
    )


def table_source(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    items_path: str | Path | None = None,
    item_columns: Mapping[str, str] | None = None,
    features: Mapping[str, Mapping[str, Any]] | None = None,
    name: str | None = None,
    fmt: str | None = None,
    users_path: str | Path | None = None,
) -> DataSource:
    """Describe a CSV/Parquet/JSONL dataset.

    ``path`` is the interaction file, or a folder holding ``interactions.<ext>``
    (and optionally ``items.<ext>`` / ``users.<ext>``, used when not given).
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        found = _find_named(path, ("interactions", "ratings", "inter", "events"))
        if found is None:
            raise UserError("no interaction table in the folder", str(path),
                            "name it interactions.csv (or .parquet/.jsonl), or pass the file itself")
        path = found
        if items_path is None:
            items_path = _find_named(folder, ("items", "item"))
        if users_path is None:
            users_path = _find_named(folder, ("users", "user"))
    elif not path.exists():
        raise _missing_file(path, "interaction file")
    items = _as_path(items_path, folder) if items_path else None
    return DataSource(
        name=name or folder.name,
        format=fmt or guess_format(path),
        interactions=[(path, None)],
        root=items.parent if items is not None else folder,
        columns=dict(columns or {}),
        items_path=items,
        item_columns=dict(item_columns or {}),
        users_path=_as_path(users_path, folder) if users_path else None,
        features=feature_specs(features or {}, folder),
        table_format=fmt or guess_format(path),
    )


def _find_named(folder: Path, stems: Iterable[str]) -> Path | None:
    for stem in stems:
        for ext in (".csv", ".tsv", ".parquet", ".jsonl"):
            candidate = folder / f"{stem}{ext}"
            if candidate.is_file():
                return candidate
    return None


# ---------------------------------------------------------------------- RecBole atomic files
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


def parse_recbole_header(columns: list[str], where: str) -> tuple[list[str], dict[str, str]]:
    """``["user_id:token", "rating:float"]`` -> names and a name -> type map."""
    names, types = [], {}
    for col in columns:
        if ":" not in col:
            raise UserError(f"RecBole column {col!r} has no type", where,
                            "write headers as name:type with type one of " + ", ".join(RECBOLE_TYPES))
        nm, typ = col.rsplit(":", 1)
        if typ not in RECBOLE_TYPES:
            raise UserError(f"RecBole column {col!r} has unknown type {typ!r}", where,
                            "use one of " + ", ".join(RECBOLE_TYPES))
        names.append(nm)
        types[nm] = typ
    return names, types


def recbole_source(
    path: str | Path,
    name: str | None = None,
    columns: Mapping[str, str] | None = None,
    item_columns: Mapping[str, str] | None = None,
    features: Mapping[str, Mapping[str, Any]] | None = None,
) -> DataSource:
    """Describe a RecBole atomic-file folder: ``<name>.inter`` [+ ``.item``, ``.user``].

    Benchmark files ``<name>.train.inter`` / ``.valid.inter`` / ``.test.inter``
    become a predefined split. Role defaults follow RecBole's field names
    (``user_id``, ``item_id``, ``rating``, ``timestamp``, ``label``). In the item
    table, ``token_seq`` columns are text and ``token``/``float`` columns are
    attributes unless ``item_columns`` says otherwise.
    """
    path = Path(path)
    if path.is_file():
        folder, stem = path.parent, path.name.split(".")[0]
    elif path.is_dir():
        folder = path
        stems = sorted({p.name.split(".")[0] for p in folder.glob("*.inter")})
        if name in stems:
            stem = name
        elif folder.name in stems:
            stem = folder.name
        elif len(stems) == 1:
            stem = stems[0]
        else:
            raise UserError(f"cannot tell which RecBole dataset to read: {stems or 'no .inter files'}",
                            str(folder), "pass the .inter file as the path")
    else:
        raise _missing_file(path, "RecBole folder or .inter file")
    bench = [(folder / f"{stem}.{s}.inter", s) for s in ("train", "valid", "test")]
    if all(p.is_file() for p, _ in bench):
        inters: list[tuple[Path, str | None]] = list(bench)
    else:
        inters = [(folder / f"{stem}.inter", None)]
    cols = {"user": "user_id", "item": "item_id"}
    cols.update(columns or {})
    item_file = folder / f"{stem}.item"
    user_file = folder / f"{stem}.user"
    return DataSource(
        name=name or stem,
        format="recbole",
        interactions=inters,
        root=folder,
        columns=cols,
        items_path=item_file if item_file.is_file() else None,
        item_columns=dict(item_columns or {}),
        users_path=user_file if user_file.is_file() else None,
        user_columns={"user": cols["user"]},
        features=feature_specs(features or {}, folder),
        table_format="csv",
    )


def write_recbole(dataset: Any, folder: str | Path, name: str | None = None, benchmark: bool = True) -> Path:
    """Write a Dataset as RecBole atomic files ``<name>.inter`` (+ ``.item``).

    With ``benchmark`` and a split present, also writes ``<name>.train/valid/test.inter``
    so RecBole (and :func:`read_recbole`) reproduce the split. Original ids are
    written, so a round trip keeps them. Returns the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or dataset.name
    inter = dataset.interactions
    out = pd.DataFrame(
        {
            "user_id:token": dataset.user_ids[inter["user"].to_numpy()],
            "item_id:token": dataset.item_ids[inter["item"].to_numpy()],
        }
    )
    if inter["rating"].notna().any():
        out["rating:float"] = inter["rating"].to_numpy()
    if inter["timestamp"].notna().any():
        out["timestamp:float"] = inter["timestamp"].to_numpy()
    if (inter["label"] != 1.0).any():
        out["label:float"] = inter["label"].to_numpy()
    kw = {"sep": "\t", "index": False, "quoting": csv.QUOTE_NONE, "escapechar": "\\"}
    out.to_csv(folder / f"{name}.inter", **kw)
    if benchmark and dataset.has_split:
        for split in ("train", "valid", "test"):
            out[(inter["split"] == split).to_numpy()].to_csv(folder / f"{name}.{split}.inter", **kw)
    items = dataset.items
    if len(items.columns) > 0:
        table = pd.DataFrame({"item_id:token": dataset.item_ids})
        for col in items.columns:
            if col in ("item_id",):
                continue
            values = items[col]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                table[f"{col}:float"] = values.to_numpy()
            else:
                text = values.astype(object).where(values.notna(), "").astype(str)
                # RecBole separates token_seq items by spaces; tabs/newlines would break the file
                text = text.str.replace(r"[\t\r\n]+", " ", regex=True)
                typ = "token_seq" if text.str.contains(" ").any() else "token"
                table[f"{col}:{typ}"] = text.to_numpy()
        table.to_csv(folder / f"{name}.item", **kw)
    return folder


# ---------------------------------------------------------------------- convenience readers
def _validated(source: DataSource):
    """Validate ``source`` into a Dataset; fatal problems raise, bad rows go to the report's quarantine."""
    from fusionrec.data.validate import validate_source  # validate imports this module

    dataset, report = validate_source(source)
    report.raise_if_fatal()
    return dataset


def read_table(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    items_path: str | Path | None = None,
    item_columns: Mapping[str, str] | None = None,
    features: Mapping[str, Mapping[str, Any]] | None = None,
    name: str | None = None,
    fmt: str | None = None,
):
    """Read a CSV/Parquet/JSONL dataset into a Dataset (bad rows quarantined, see validate).

    Raises :class:`UserError` on a fatal problem (missing file, no user/item column...).
    """
    return _validated(table_source(path, columns, items_path, item_columns, features, name, fmt))


def read_mmrec(
    path: str | Path,
    name: str | None = None,
    features: Mapping[str, Mapping[str, Any]] | None = None,
    items_path: str | Path | None = None,
    item_columns: Mapping[str, str] | None = None,
):
    """Read an MMRec folder (``.inter`` with x_label + feature ``.npy``) into a Dataset with its split."""
    return _validated(mmrec_source(path, name, features, items_path, item_columns))


def read_recbole(
    path: str | Path,
    name: str | None = None,
    columns: Mapping[str, str] | None = None,
    item_columns: Mapping[str, str] | None = None,
):
    """Read RecBole atomic files (``.inter``, ``.item``, typed headers) into a Dataset."""
    return _validated(recbole_source(path, name, columns, item_columns))


__all__ = [
    "INTERACTION_ROLES",
    "ITEM_ROLES",
    "ROLE_ALIASES",
    "SPLIT_VALUES",
    "DataSource",
    "FeatureSpec",
    "RawTable",
    "discover_mmrec_features",
    "guess_format",
    "guess_kind",
    "mmrec_source",
    "parse_recbole_header",
    "read_mmrec",
    "read_raw",
    "read_recbole",
    "read_table",
    "recbole_source",
    "table_source",
    "write_recbole",
]
