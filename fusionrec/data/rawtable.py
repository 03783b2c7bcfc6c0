"""Raw tables: one file parsed tolerantly, every value kept as text, bad lines set aside.

:func:`read_raw` parses CSV/TSV, Parquet or JSONL: malformed lines (wrong
field count, broken JSON) are collected with their physical line number
instead of aborting, and every good row remembers the line it started on so
later checks can point at it. :func:`raw_from_frame` wraps an in-memory
DataFrame the same way, so frames built in Python are validated like files.
"""
from __future__ import annotations

import codecs
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

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
        parts = [_as_text(sub[c]) for c in sub.columns]
        out = parts[0].astype(object)
        for p in parts[1:]:
            out = out + self.delimiter + p.astype(object)
        return list(out)


def _as_text(values: pd.Series) -> np.ndarray:
    """Cells as text; bytes that are not UTF-8 (or other odd objects) are shown, never raised on."""
    try:
        return values.astype(str).to_numpy()
    except (UnicodeDecodeError, TypeError, ValueError):
        return values.map(lambda v: v.decode("utf-8", errors="replace") if isinstance(v, bytes) else repr(v)
                          if not isinstance(v, str) else v).to_numpy()


def missing_file(path: Path, what: str) -> UserError:
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
        raise missing_file(path, "data file")
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


def _start_lines(table: pa.Table, bad: list[tuple[int | None, str, str]], first_line: int) -> np.ndarray:
    """Physical start line of every good record.

    Each physical line is either part of a good record (which may span lines through
    quoted newlines) or of a bad row, so good records are numbered by counting the
    newlines inside them and skipping the lines of the bad rows.
    """
    n = table.num_rows
    extra = np.zeros(n, dtype=np.int64)
    for col in table.columns:
        extra += pc.count_substring(col, "\n").to_numpy(zero_copy_only=False).astype(np.int64)
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
    return ordinal + first_line


def _scan_text(path: Path) -> tuple[str, str]:
    """``(encoding, first line)``: UTF-8 when every byte of the file decodes as UTF-8, else latin-1.

    The whole file is checked up front, in bounded chunks: pyarrow decodes the text of a
    malformed row as UTF-8 before calling the bad-row handler, and invalid bytes there fail
    inside pyarrow (a traceback printed from the callback, then the whole file rejected).
    Every byte string is valid latin-1, so that reading never fails.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    head = b""
    encoding = "utf-8"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 23):
            if b"\n" not in head and len(head) < (1 << 24):
                head += chunk[: 1 << 24]
            if encoding == "utf-8" and not (chunk.isascii() and decoder.getstate()[0] == b""):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    encoding = "latin-1"
            if encoding == "latin-1" and b"\n" in head:
                break
    if encoding == "utf-8":
        try:
            decoder.decode(b"", final=True)  # a multi-byte character cut off at the end of the file
        except UnicodeDecodeError:
            encoding = "latin-1"
    first = head.split(b"\n", 1)[0] + (b"\n" if b"\n" in head else b"")
    return encoding, first.decode(encoding).removeprefix("\ufeff")


def _read_delimited(path: Path, delimiter: str | None, names: list[str] | None) -> RawTable:
    encoding, first = _scan_text(path)
    if not first.strip():
        raise UserError("file is empty (no header line)", f"{path} line 1",
                        "write a header row naming the columns, e.g. user_id,item_id,rating,timestamp")
    delimiter = delimiter or _sniff_delimiter(path, first)
    if names is None:
        try:
            header = next(csv.reader([first.rstrip("\r\n")], delimiter=delimiter))
        except csv.Error as err:  # e.g. a stray carriage return inside the header line
            raise UserError(f"the header line cannot be parsed ({err})", f"{path} line 1",
                            "write the header as plain column names separated by the delimiter, without "
                            "carriage returns or unbalanced quotes inside a name") from None
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
        raise UserError(f"cannot parse the file as delimited text: {str(err)[:300]}", str(path),
                        "check quoting (an unterminated quote swallows the rest of the file) "
                        "and the delimiter") from None

    return _to_raw(path, table, bad, _start_lines(table, bad, first_line=skip + 1), delimiter, encoding)


def _to_raw(path: Path, table: pa.Table, bad: list[tuple[int | None, str, str]], line: np.ndarray,
            delimiter: str, encoding: str) -> RawTable:
    """The parsed Arrow table as a RawTable: blank lines dropped, empty cells NA, bad rows listed."""
    # A blank line parses as a row of empty fields: drop such rows silently (they carry no data).
    blank = np.ones(table.num_rows, dtype=bool)
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
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"cannot read Parquet file: {str(err)[:300]}", str(path),
                        "check that the file is a complete Parquet file (not truncated, not CSV renamed)") from None
    names = table.column_names
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UserError(f"duplicate column names {dup}", str(path), "give every column a distinct name")
    frame = parquet_frame(table, path)
    return RawTable(path, frame, np.arange(1, len(frame) + 1, dtype=np.int64), "row", delimiter=",")


def parquet_frame(table: pa.Table, path: Path) -> pd.DataFrame:
    """An Arrow table read from Parquet as a DataFrame validation can check (a UserError otherwise)."""
    # the pandas metadata stored in a file may disagree with its columns (an edited file): the columns count
    table = pa.table({name: _plain_column(col) for name, col in zip(table.column_names, table.columns)})
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as err:
        raise UserError(f"cannot convert the Parquet columns: {str(err)[:300]}", str(path),
                        "store ids, ratings and timestamps as plain numbers or strings") from None


def _plain_column(col: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Text for what validation cannot read natively: raw bytes (decoded), nested values (as JSON)."""
    typ = col.type
    if pa.types.is_dictionary(typ):
        return _plain_column(col.cast(typ.value_type))
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_fixed_size_binary(typ):
        return pa.array([None if v is None else v.decode("utf-8", errors="replace") for v in col.to_pylist()],
                        pa.string())
    if pa.types.is_nested(typ):
        return pa.array([None if v is None else json.dumps(v, default=str) for v in col.to_pylist()], pa.string())
    return col


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
        if nm in types:
            raise UserError(f"RecBole field {nm!r} appears twice ({nm}:{types[nm]} and {col})", where,
                            "give every field a distinct name")
        names.append(nm)
        types[nm] = typ
    return names, types


def raw_from_frame(frame: pd.DataFrame, name: str) -> RawTable:
    """An in-memory table as a RawTable; ``name`` stands in for the file in messages, rows count from 1."""
    frame = frame.reset_index(drop=True)
    return RawTable(Path(name), frame, np.arange(1, len(frame) + 1, dtype=np.int64), "row")


__all__ = ["RECBOLE_TYPES", "TABLE_FORMATS", "RawTable", "guess_format", "parquet_frame", "parse_recbole_header",
           "raw_from_frame", "read_raw"]
