"""Validation with quarantine: every dataset is loaded through these checks.

:func:`validate_source` reads a :class:`~fusionrec.data.readers.DataSource`,
checks it, sets bad rows aside and builds a :class:`Dataset` from the good ones.
It never drops a good row and never stops at the first problem: it collects a
:class:`ValidationReport` with one :class:`Issue` per kind of problem (with its
location and a fix) and a quarantine table with one line per bad row
(original line number, row content, reason, what was done with it).

Severities:

* ``fatal`` - nothing sensible can be loaded (file missing, no user/item column,
  unreadable file, zero good rows, a feature file that does not match the items).
  ``fusionrec data validate`` exits non-zero with one clear message.
* ``error`` - rows were quarantined (malformed lines, wrong types, unknown ids,
  duplicates, unsafe paths, non-finite feature rows). The rest loads; exit 0.
* ``warning`` / ``info`` - worth knowing (items without interactions, missing
  posters, unmapped columns); nothing was removed.

Checks on interaction rows (reason codes in the quarantine file):
``malformed_line``, ``missing_id``, ``bad_id``, ``bad_rating``, ``bad_timestamp``,
``bad_label``, ``bad_split``, ``unknown_item``, ``unknown_user``, ``duplicate_row``.
Item / user tables: ``malformed_line``, ``missing_id``, ``duplicate_item``,
``duplicate_user``, ``unknown_item`` (not in the MMRec id map), ``path_outside_root``,
``path_absolute``, ``file_missing``. Feature files: ``nonfinite_feature``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.data.readers import (
    INTERACTION_ROLES,
    ROLE_ALIASES,
    SPLIT_VALUES,
    DataSource,
    RawTable,
    mmrec_source,
    parse_recbole_header,
    read_raw,
    recbole_source,
    table_source,
)
from fusionrec.errors import UserError

SEVERITIES = ("fatal", "error", "warning", "info")
QUARANTINE_COLUMNS = ("file", "line", "unit", "reason", "column", "value", "action", "detail", "content")
_INT_RE = re.compile(r"^-?(0|[1-9][0-9]*)$")

# Why each reason matters and how to fix it; used in report text.
REASON_HELP: dict[str, tuple[str, str]] = {
    "malformed_line": ("line does not split into the header's fields", "fix quoting or the delimiter on these lines"),
    "missing_id": ("user or item id is empty", "fill in the id or delete the row"),
    "bad_id": ("id is not a non-negative integer (required by this format)", "use 0-based integer ids"),
    "bad_rating": ("rating is not a finite number", "write ratings as numbers, e.g. 4 or 3.5"),
    "bad_timestamp": ("timestamp is neither a number nor a date", "use unix seconds or ISO dates (2024-01-31)"),
    "bad_label": ("label is not a number", "use 0/1 labels"),
    "bad_split": ("split value is not train/valid/test (or 0/1/2)", "use train, valid or test"),
    "unknown_item": ("item id is not in the item table / feature files", "add the item or fix the id"),
    "unknown_user": ("user id is not in the user table", "add the user or fix the id"),
    "duplicate_row": ("exact repeat of an earlier row", "remove the repeat (the first copy is kept)"),
    "duplicate_item": ("item id repeats an earlier item row", "keep one row per item (the first is kept)"),
    "duplicate_user": ("user id repeats an earlier user row", "keep one row per user (the first is kept)"),
    "path_outside_root": ("media path leaves the dataset folder", "use paths relative to the dataset folder"),
    "path_absolute": ("media path is absolute", "use paths relative to the dataset folder"),
    "file_missing": ("media file does not exist", "add the file or clear the path"),
    "nonfinite_feature": ("feature row has NaN or inf", "recompute the feature (the row is masked as missing)"),
}


@dataclass
class Issue:
    """One kind of problem, with its first location and a few example locations."""

    code: str
    severity: str
    message: str
    file: str | None = None
    line: int | None = None
    column: str | None = None
    count: int = 1
    examples: list[str] = field(default_factory=list)
    fix: str | None = None
    unit: str = "line"

    @property
    def where(self) -> str:
        text = self.file or ""
        if self.line is not None:
            text += f" {self.unit} {self.line}"
        if self.column is not None:
            text += f", column {self.column!r}"
        return text.strip()

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code, "severity": self.severity, "message": self.message, "file": self.file,
            "line": self.line, "column": self.column, "count": self.count, "examples": self.examples,
            "fix": self.fix, "where": self.where,
        }


@dataclass
class ValidationReport:
    """What validation found: issues, quarantined rows and summary statistics."""

    name: str
    format: str
    issues: list[Issue] = field(default_factory=list)
    quarantine: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(QUARANTINE_COLUMNS)))
    stats: dict[str, Any] = field(default_factory=dict)
    quarantine_path: Path | None = None

    @property
    def fatal(self) -> bool:
        return any(i.severity == "fatal" for i in self.issues)

    @property
    def ok(self) -> bool:
        """True when nothing was quarantined and nothing is fatal."""
        return not any(i.severity in ("fatal", "error") for i in self.issues)

    @property
    def counts(self) -> dict[str, int]:
        """Quarantined rows per reason."""
        if len(self.quarantine) == 0:
            return {}
        return {str(k): int(v) for k, v in self.quarantine["reason"].value_counts().sort_index().items()}

    def by_code(self, code: str) -> list[Issue]:
        return [i for i in self.issues if i.code == code]

    def raise_if_fatal(self) -> None:
        """Raise the first fatal issue as a :class:`UserError` (one clear message)."""
        for issue in self.issues:
            if issue.severity == "fatal":
                others = sum(1 for i in self.issues if i.severity == "fatal") - 1
                what = issue.message + (f" (and {others} more fatal problem(s); see the report)" if others else "")
                raise UserError(what, issue.where or None, issue.fix)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "format": self.format, "fatal": self.fatal, "stats": self.stats,
            "quarantined_per_reason": self.counts, "issues": [i.to_dict() for i in self.issues],
            "quarantine_file": str(self.quarantine_path) if self.quarantine_path else None,
        }

    def to_text(self, max_examples: int = 5) -> str:
        s = self.stats
        lines = [f"dataset {self.name!r} ({self.format})"]
        if s:
            lines.append(
                f"  interactions: {s.get('rows_read', 0)} read, {s.get('rows_good', 0)} good, "
                f"{s.get('rows_quarantined', 0)} quarantined"
            )
            if "n_users" in s:
                lines.append(f"  users: {s['n_users']}, items: {s['n_items']}")
            if s.get("split"):
                lines.append("  split: " + ", ".join(f"{k}={v}" for k, v in s["split"].items()))
            for mod in s.get("modalities", []):
                lines.append(f"  modality {mod['name']} ({mod['kind']}): dim {mod['dim']}, "
                             f"coverage {mod['coverage']:.1%}")
            for key in ("text_coverage", "image_coverage", "audio_coverage"):
                if key in s:
                    lines.append(f"  {key.replace('_', ' ')}: {s[key]:.1%}")
        if not self.issues:
            lines.append("no problems found")
        order = {sev: n for n, sev in enumerate(SEVERITIES)}
        for issue in sorted(self.issues, key=lambda i: order[i.severity]):
            count = f" [{issue.count} row(s)]" if issue.count > 1 else ""
            lines.append(f"{issue.severity.upper()} {issue.code}{count}: {issue.message}")
            if issue.where:
                lines.append(f"    at {issue.where}")
            for ex in issue.examples[:max_examples]:
                lines.append(f"    - {ex}")
            if issue.count > max_examples and issue.examples:
                where_all = " (all listed in the quarantine file)" if issue.code in REASON_HELP else ""
                lines.append(f"    ... {issue.count - min(len(issue.examples), max_examples)} more{where_all}")
            if issue.fix:
                lines.append(f"    fix: {issue.fix}")
        if self.counts:
            lines.append("quarantined rows per reason: " + ", ".join(f"{k}={v}" for k, v in self.counts.items()))
        if self.quarantine_path:
            lines.append(f"quarantine file: {self.quarantine_path}")
        return "\n".join(lines)

    def write(self, directory: str | Path) -> Path:
        """Write ``quarantine.csv`` and ``report.json`` into ``directory``; returns the CSV path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "quarantine.csv"
        self.quarantine.to_csv(path, index=False)
        self.quarantine_path = path
        (directory / "report.json").write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return path


class _Fatal(Exception):
    """Internal: stop building after a fatal issue was recorded."""


# ---------------------------------------------------------------------- helpers
class _Checker:
    """Collects issues and quarantined rows while a source is processed."""

    def __init__(self, source: DataSource) -> None:
        self.source = source
        self.issues: list[Issue] = []
        self.quarantined: list[pd.DataFrame] = []

    def fatal(self, message: str, where: str | None = None, fix: str | None = None, code: str = "fatal") -> _Fatal:
        self.issues.append(Issue(code, "fatal", message, file=where, fix=fix))
        return _Fatal(message)

    def from_user_error(self, err: UserError, code: str) -> _Fatal:
        return self.fatal(err.what, err.where, err.fix, code)

    def note(self, code: str, severity: str, message: str, **kw: Any) -> None:
        self.issues.append(Issue(code, severity, message, **kw))

    def quarantine(
        self,
        raw: RawTable,
        rows: np.ndarray,
        reason: str,
        column: str | None,
        values: Any = None,
        action: str = "dropped",
        detail: str | list[str] | None = None,
        severity: str = "error",
    ) -> None:
        """Set the given rows of ``raw`` aside and record one summarising issue."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return
        lines = raw.line[rows]
        if values is None and column is not None and column in raw.frame.columns:
            values = raw.frame[column].to_numpy()[rows]
        vals = ["" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v)
                for v in (values if values is not None else [""] * len(rows))]
        details = detail if isinstance(detail, list) else [detail or REASON_HELP.get(reason, ("", ""))[0]] * len(rows)
        self._add(raw.path, raw.unit, lines, reason, column, vals, action, details, raw.row_text(rows), severity)

    def _add(self, path, unit, lines, reason, column, values, action, details, contents, severity) -> None:
        frame = pd.DataFrame(
            {
                "file": str(path), "line": np.asarray(lines, dtype=np.int64), "unit": unit, "reason": reason,
                "column": column or "", "value": values, "action": action, "detail": details, "content": contents,
            }
        )
        self.quarantined.append(frame)
        what, fix = REASON_HELP.get(reason, (reason, None))
        examples = []
        for ln, val, det in zip(frame["line"][:8], frame["value"][:8], frame["detail"][:8]):
            ex = f"{Path(path).name} {unit} {ln}"
            if column:
                ex += f", column {column!r}"
            if val != "":
                ex += f": {val[:80]!r}"
            if det and det != what:
                ex += f" ({det})"
            examples.append(ex)
        verb = {"dropped": "set aside", "field_cleared": "field cleared, row kept",
                "row_masked": "row masked as missing"}.get(action, action)
        self.issues.append(
            Issue(reason, severity, f"{what} - {len(frame)} row(s) {verb}", file=str(path),
                  line=int(frame["line"].iloc[0]), column=column, count=len(frame), examples=examples,
                  fix=fix, unit=unit)
        )

    def quarantine_frame(self) -> pd.DataFrame:
        if not self.quarantined:
            return pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
        return pd.concat(self.quarantined, ignore_index=True)[list(QUARANTINE_COLUMNS)]


def _read(check: _Checker, path: Path, fmt: str | None, what: str) -> RawTable:
    try:
        raw = read_raw(path, fmt)
    except UserError as err:
        raise check.from_user_error(UserError(f"{what}: {err.what}", err.where, err.fix), "unreadable_file")
    if check.source.format == "recbole":
        names, types = parse_recbole_header(list(raw.frame.columns), f"{path} line 1")
        raw.frame.columns = names
        raw.header_types = types
    if len(raw.malformed):
        m = raw.malformed
        check._add(path, raw.unit, m["line"].to_numpy(), "malformed_line", None, [""] * len(m), "dropped",
                   list(m["detail"]), list(m["content"]), "error")
    return raw


def _find_column(columns: list[str], role: str) -> str | None:
    for alias in ROLE_ALIASES.get(role, ()):
        if alias in columns:
            return alias
    lower = {c.lower(): c for c in columns}
    for alias in ROLE_ALIASES.get(role, ()):
        if alias.lower() in lower:
            return lower[alias.lower()]
    return None


def _resolve_roles(
    check: _Checker, raw: RawTable, mapping: dict[str, str], roles: tuple[str, ...], required: tuple[str, ...],
    what: str, option: str,
) -> dict[str, str]:
    columns = list(raw.frame.columns)
    resolved: dict[str, str] = {}
    for role in roles:
        col = mapping.get(role)
        if col is not None:
            if col in columns:
                resolved[role] = col
            elif role in required:
                raise check.fatal(
                    f"{what} has no column {col!r} (mapped to role {role!r}); its columns are {columns}",
                    f"{raw.path} line 1", f"map the right column, e.g. {option} {role}=<column>", "missing_column")
            else:
                check.note("missing_column", "error",
                           f"column {col!r} mapped to role {role!r} is not in the {what}; the role is ignored "
                           f"(columns are {columns})", file=f"{raw.path} line 1",
                           fix=f"fix the mapping ({option} {role}=<column>) or add the column")
            continue
        found = _find_column(columns, role)
        if found is not None and found not in resolved.values():
            resolved[role] = found
        elif role in required:
            raise check.fatal(
                f"{what} has no {role} column; its columns are {columns}", f"{raw.path} line 1",
                f"name the column {ROLE_ALIASES[role][0]!r} or map it with {option} {role}=<column>",
                "missing_column")
    return resolved


def _arrow_text(series: pd.Series) -> pa.ChunkedArray:
    """Cell values as an Arrow string array, whitespace-trimmed, empty cells null.

    Works in Arrow (C) because interaction files can have millions of rows.
    Numeric columns (Parquet) become their text form; whole floats lose the ``.0``
    so ids read from Parquet match ids read from CSV.
    """
    if pd.api.types.is_bool_dtype(series):
        arr = pa.chunked_array([pa.array([None if pd.isna(v) else str(v) for v in series.to_numpy(dtype=object)],
                                         type=pa.string())])
    elif pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(values)
        if pd.api.types.is_integer_dtype(series) or np.all(values[finite] == np.round(values[finite])):
            ints = pa.array(np.where(finite, values, 0).astype(np.int64), mask=~finite)
            arr = pa.chunked_array([pc.cast(ints, pa.string())])
        else:
            arr = pa.chunked_array([pc.cast(pa.array(values, mask=~finite), pa.string())])
    else:
        try:
            arr = pa.array(series.array, type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v)
                            for v in series.to_numpy(dtype=object)], type=pa.string())
        if isinstance(arr, pa.Array):
            arr = pa.chunked_array([arr])
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _np(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False) if isinstance(arr, pa.Array) else np.asarray(arr)


def _nulls(arr: pa.ChunkedArray) -> np.ndarray:
    return np.array(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)  # a writable copy


def _strip(series: pd.Series) -> pd.Series:
    """Trimmed text with empty cells as NA (an Arrow-backed pandas Series)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(_arrow_text(series)), index=series.index)


def _to_float(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values as float64, a mask of cells that are present but not finite numbers, and a NA mask."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        na = series.isna().to_numpy()
    else:
        arr = _arrow_text(series)
        na = _nulls(arr)
        try:  # fast path: Arrow's cast parses clean numeric text in C
            values = np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = pd.to_numeric(pd.Series(_np(arr), dtype=object), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
        values = np.where(na, np.nan, values)
    bad = ~na & ~np.isfinite(values)
    return values, bad, na


def _to_seconds(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as float seconds: numbers as they are, otherwise parsed as dates."""
    values, bad, na = _to_float(series)
    present = ~na
    # a column that is mostly non-numeric holds dates (ISO strings etc.), not unix seconds
    if bad.sum() > 0.5 * max(int(present.sum()), 1):
        parsed = pd.to_datetime(series.astype(object), errors="coerce", utc=True, format="mixed")
        ok = parsed.notna().to_numpy()
        secs = np.full(len(series), np.nan)
        if ok.any():
            # subtracting the epoch is independent of the ns/us/s unit pandas picked
            secs[ok] = (parsed[ok] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
        values, bad = secs, present & ~ok
    return values, bad


def _int_mask(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where the text is a canonical integer (no leading zeros: '007' stays a string id)."""
    return np.array(pc.fill_null(pc.match_substring_regex(arr, _INT_RE.pattern), False)
                    .to_numpy(zero_copy_only=False), dtype=bool)  # a writable copy


def _ids_are_ints(*arrays: Any) -> bool:
    for arr in arrays:
        if len(arr) == 0:
            continue
        if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
            arr = pa.array(np.asarray(arr, dtype=object), type=pa.string())
        arr = arr.drop_null()
        if len(arr) and not _int_mask(arr).all():
            return False
    return True


def _arrow_col(p: pd.DataFrame, role: str, good_only: bool = True) -> pa.ChunkedArray:
    """An Arrow-backed id column of a checked part, optionally only its good rows."""
    arr = pa.array(p[role].array)
    if isinstance(arr, pa.Array):
        arr = pa.chunked_array([arr])
    return arr.filter(pa.array(p["_good"].to_numpy())) if good_only else arr


# ---------------------------------------------------------------------- main entry
def validate_source(
    source: DataSource, quarantine_dir: str | Path | None = None
) -> tuple[Dataset | None, ValidationReport]:
    """Check a source, quarantine bad rows and build a Dataset from the good ones.

    Returns ``(dataset, report)``; ``dataset`` is None when the report is fatal.
    With ``quarantine_dir`` the quarantine CSV and ``report.json`` are written there.
    """
    check = _Checker(source)
    report = ValidationReport(source.name, source.format)
    dataset = None
    try:
        dataset = _build(check, report)
    except _Fatal:
        dataset = None
    report.issues = check.issues
    report.quarantine = check.quarantine_frame()
    if report.fatal:
        dataset = None
    if quarantine_dir is not None:
        report.write(quarantine_dir)
    return dataset, report


def _build(check: _Checker, report: ValidationReport) -> Dataset:
    src = check.source
    stats = report.stats

    # ---------------- interactions: parse every file, map roles, check each row
    parts: list[pd.DataFrame] = []
    metas: list[tuple[RawTable, dict[str, str]]] = []  # the raw table and role map of each part
    rows_read = 0
    for path, forced_split in src.interactions:
        raw = _read(check, path, src.table_format, "interaction file")
        rows_read += len(raw.frame) + len(raw.malformed)
        roles = _resolve_roles(check, raw, src.columns, INTERACTION_ROLES, ("user", "item"),
                               "interaction file", "--columns")
        extra = [c for c in raw.frame.columns if c not in roles.values()]
        if extra:
            check.note("extra_columns", "info", f"columns not used by any role: {extra}", file=str(path),
                       fix="map them with --columns <role>=<column> if they matter")
        part = _check_interaction_rows(check, raw, roles, forced_split)
        part["_file"] = len(parts)
        parts.append(part)
        metas.append((raw, roles))
    stats["rows_read"] = rows_read

    # ---------------- side tables
    items = _load_items(check) if src.items_path is not None else None
    users = _load_users(check) if src.users_path is not None else None

    # ---------------- ids: integers when every id everywhere is an integer
    user_vals: list[Any] = [_arrow_col(p, "user") for p in parts]
    item_vals: list[Any] = [_arrow_col(p, "item") for p in parts]
    if items is not None:
        item_vals.append(items.ids)
    if users is not None:
        user_vals.append(users.ids)
    int_users = src.integer_ids or _ids_are_ints(*user_vals)
    int_items = src.integer_ids or _ids_are_ints(*item_vals)

    for p, (raw, roles) in zip(parts, metas):
        good = p["_good"].to_numpy().copy()
        for role, as_int in (("user", int_users), ("item", int_items)):
            if not as_int:
                continue
            ok_int = _int_mask(_arrow_col(p, role, good_only=False))
            if src.integer_ids:  # MMRec ids index rows of the feature files: no negatives
                ok_int &= ~np.asarray(pc.fill_null(pc.starts_with(_arrow_col(p, role, False), "-"), False)
                                      .to_numpy(zero_copy_only=False), dtype=bool)
            newly = good & ~ok_int
            check.quarantine(raw, p["_row"].to_numpy()[newly], "bad_id", roles[role])
            good &= ok_int
        p["_good"] = good

    def cast_ids(values: Any, as_int: bool, good: np.ndarray | None = None) -> np.ndarray:
        arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(
            np.asarray(values, dtype=object), type=pa.string())
        if good is not None:  # rows already set aside get a harmless placeholder key
            arr = pc.if_else(pa.array(good), arr, pa.scalar("0"))
        if as_int:
            return np.asarray(pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
        return np.asarray(_np(arr), dtype=object)

    for p in parts:
        good = p["_good"].to_numpy()
        p["user_key"] = cast_ids(_arrow_col(p, "user", False), int_users, good)
        p["item_key"] = cast_ids(_arrow_col(p, "item", False), int_items, good)
    item_keys_table = cast_ids(items.ids, int_items) if items is not None else None
    user_keys_table = cast_ids(users.ids, int_users) if users is not None else None

    # ---------------- feature files (their row count bounds MMRec's id space)
    feature_arrays = _load_features(check)
    ref_rows = None
    if src.integer_ids and feature_arrays:
        ref_rows = feature_arrays[0][1].shape[0]

    # ---------------- unknown ids and duplicates
    known_items = set(item_keys_table.tolist()) if (items is not None and not src.integer_ids) else None
    known_users = set(user_keys_table.tolist()) if users is not None else None
    for p, (raw, roles) in zip(parts, metas):
        good = p["_good"].to_numpy().copy()
        if known_items is not None:
            unknown = good & ~p["item_key"].isin(known_items).to_numpy()
            check.quarantine(raw, p["_row"].to_numpy()[unknown], "unknown_item", roles["item"],
                             detail=f"not among the {len(known_items)} ids of {src.items_path.name}")
            good &= ~unknown
        if ref_rows is not None:
            unknown = good & (p["item_key"].to_numpy(np.int64) >= ref_rows)
            check.quarantine(raw, p["_row"].to_numpy()[unknown], "unknown_item", roles["item"],
                             detail=f"feature files have only {ref_rows} rows (ids 0..{ref_rows - 1})")
            good &= ~unknown
        if known_users is not None:
            unknown = good & ~p["user_key"].isin(known_users).to_numpy()
            check.quarantine(raw, p["_row"].to_numpy()[unknown], "unknown_user", roles["user"],
                             detail=f"not among the ids of {src.users_path.name}")
            good &= ~unknown
        p["_good"] = good
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    good = frame["_good"].to_numpy().copy()
    dup_cols = ["user_key", "item_key"] + [c for c in ("rating", "timestamp", "label", "split") if c in frame]
    dup = np.zeros(len(frame), dtype=bool)
    if good.any():
        dup[good] = frame.loc[good, dup_cols].duplicated(keep="first").to_numpy()
    if dup.any():
        for file_id, (raw, _) in enumerate(metas):
            sel = dup & (frame["_file"].to_numpy() == file_id)
            check.quarantine(raw, frame["_row"].to_numpy()[sel], "duplicate_row", None,
                             detail="same values as an earlier row")
    good &= ~dup
    frame = frame[good].reset_index(drop=True)
    stats["rows_good"] = int(len(frame))
    stats["rows_quarantined"] = int(rows_read - len(frame))
    if len(frame) == 0:
        raise check.fatal("no usable interaction rows: every row was malformed or failed a check",
                          str(src.interactions[0][0]),
                          "look at the issues above (or the quarantine file) and fix the most common one",
                          "no_good_rows")

    # ---------------- id universes
    if src.integer_ids:
        top_user = int(frame["user_key"].max())
        user_ids = np.arange(top_user + 1, dtype=np.int64)
        if user_keys_table is not None and len(user_keys_table):
            user_ids = np.arange(max(top_user, int(np.max(user_keys_table))) + 1)
        n_items = int(frame["item_key"].max()) + 1
        if ref_rows is not None:
            n_items = ref_rows
        elif item_keys_table is not None and len(item_keys_table):
            n_items = max(n_items, int(np.max(item_keys_table)) + 1)
        item_ids = np.arange(n_items, dtype=np.int64)
    else:
        if user_keys_table is not None:
            user_ids = np.asarray(user_keys_table)
        else:
            uniq = pd.unique(frame["user_key"])
            user_ids = np.sort(uniq) if int_users else uniq
        if item_keys_table is not None:
            item_ids = np.asarray(item_keys_table)
        else:
            uniq = pd.unique(frame["item_key"])
            item_ids = np.sort(uniq) if int_items else uniq
    u_index = pd.Index(user_ids)
    i_index = pd.Index(item_ids)
    inter = pd.DataFrame(
        {
            "user": u_index.get_indexer(frame["user_key"]).astype(np.int64),
            "item": i_index.get_indexer(frame["item_key"]).astype(np.int64),
            "rating": frame["rating_v"].to_numpy(np.float32) if "rating_v" in frame else np.float32(np.nan),
            "timestamp": frame["timestamp_v"].to_numpy(np.float64) if "timestamp_v" in frame else np.nan,
            "label": frame["label_v"].to_numpy(np.float32) if "label_v" in frame else np.float32(1.0),
            "split": frame["split_v"].to_numpy(object) if "split_v" in frame else None,
        }
    )
    if "split_v" in frame and frame["split_v"].isna().any():
        # a split column with gaps is no split at all: leave it to the configured split method
        check.note("partial_split", "warning", "some rows have no split value; the file's split is ignored",
                   file=str(src.interactions[0][0]), fix="give every row train/valid/test or none at all")
        inter["split"] = None

    # ---------------- items frame aligned with internal item order
    item_frame = _align_items(items, item_keys_table, item_ids, src.integer_ids)
    users_without = None
    if users is not None:
        seen_u = np.zeros(len(user_ids), dtype=bool)
        seen_u[inter["user"].to_numpy()] = True
        users_without = user_ids[~seen_u]
    seen_i = np.zeros(len(item_ids), dtype=bool)
    seen_i[inter["item"].to_numpy()] = True
    if not seen_i.all() and (items is not None or feature_arrays):
        missing = item_ids[~seen_i]
        check.note("item_without_interactions", "warning",
                   f"{len(missing)} item(s) have no (good) interaction; they stay in the catalogue as cold items",
                   count=len(missing), examples=[f"item {m}" for m in missing[:8]],
                   fix="fine for cold-start; otherwise remove them from the item table")
    if users_without is not None and len(users_without):
        check.note("user_without_interactions", "warning",
                   f"{len(users_without)} user(s) in the user table have no (good) interaction",
                   count=len(users_without), examples=[f"user {u}" for u in users_without[:8]])

    # ---------------- modalities
    modalities = []
    for spec, feats in feature_arrays:
        mod = _make_modality(check, spec, feats, item_ids, len(item_ids))
        if mod is not None:
            modalities.append(mod)
    if any(i.severity == "fatal" for i in check.issues):
        raise _Fatal("fatal feature problem")

    dataset = Dataset(src.name, user_ids, item_ids, inter, item_frame, {m.name: m for m in modalities}, src.root)
    stats.update(summarise(dataset))
    return dataset


def _check_interaction_rows(check: _Checker, raw: RawTable, roles: dict[str, str], forced_split: str | None
                            ) -> pd.DataFrame:
    """Per-row type checks; returns a frame of canonical values with a ``_good`` flag."""
    f = raw.frame
    n = len(f)
    out = pd.DataFrame({"_row": np.arange(n, dtype=np.int64)})
    good = np.ones(n, dtype=bool)
    for role in ("user", "item"):
        ids = _arrow_text(f[roles[role]])
        out[role] = pd.arrays.ArrowExtensionArray(ids)
        missing = _nulls(ids)
        check.quarantine(raw, np.flatnonzero(good & missing), "missing_id", roles[role])
        good &= ~missing
    for role, reason in (("rating", "bad_rating"), ("label", "bad_label")):
        if role in roles:
            values, bad, na = _to_float(f[roles[role]])
            bad = bad | na  # a mapped rating/label column must hold a value on every row
            check.quarantine(raw, np.flatnonzero(good & bad), reason, roles[role])
            good &= ~bad
            out[f"{role}_v"] = values
    if "timestamp" in roles:
        values, bad = _to_seconds(f[roles["timestamp"]])
        check.quarantine(raw, np.flatnonzero(good & bad), "bad_timestamp", roles["timestamp"])
        good &= ~bad
        out["timestamp_v"] = values
    if forced_split is not None:
        out["split_v"] = forced_split
    elif "split" in roles:
        text = pc.utf8_lower(_arrow_text(f[roles["split"]]))
        keys = pa.array(list(SPLIT_VALUES), type=pa.string())
        pos = pc.index_in(text, value_set=keys)  # null where the value is not a known split name
        canon = pa.array(list(SPLIT_VALUES.values()), type=pa.string())
        mapped = _np(pc.take(canon, pos)) if len(text) else np.array([], dtype=object)
        bad = ~_nulls(text) & _nulls(pos)
        check.quarantine(raw, np.flatnonzero(good & bad), "bad_split", roles["split"])
        good &= ~bad
        out["split_v"] = np.asarray(mapped, dtype=object)
    out["_good"] = good
    return out


# ---------------------------------------------------------------------- side tables
@dataclass
class _SideTable:
    raw: RawTable
    ids: np.ndarray           # original id text per kept row
    frame: pd.DataFrame       # canonical columns per kept row
    roles: dict[str, list[str]] = field(default_factory=dict)  # text / attribute columns


def _split_list(value: str | None) -> list[str]:
    if not value:
        return []
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _load_items(check: _Checker) -> _SideTable | None:
    src = check.source
    raw = _read(check, src.items_path, None, "item table")
    f = raw.frame
    mapping = dict(src.item_columns)
    id_col = mapping.get("item") or _find_column(list(f.columns), "item")
    if id_col is None or id_col not in f.columns:
        raise check.fatal(f"item table has no item id column{f' {id_col!r}' if id_col else ''}; "
                          f"its columns are {list(f.columns)}", f"{raw.path} line 1",
                          "map it with --item-columns item=<column>", "missing_column")
    ids = _strip(f[id_col])
    keep = np.ones(len(f), dtype=bool)
    missing = ids.isna().to_numpy()
    check.quarantine(raw, np.flatnonzero(missing), "missing_id", id_col)
    keep &= ~missing
    dup = np.zeros(len(f), dtype=bool)
    dup[keep] = ids[keep].duplicated(keep="first").to_numpy()
    check.quarantine(raw, np.flatnonzero(dup), "duplicate_item", id_col)
    keep &= ~dup
    ids_arr = ids.to_numpy(dtype=object, na_value=None)
    source_ids = None

    # MMRec: translate the table's original ids into MMRec integer ids through the id map
    if mapping.get("id_map"):
        id_map = _read_id_map(check, mapping["id_map"])
        mapped = pd.Series(ids_arr).map(id_map)
        unmapped = keep & mapped.isna().to_numpy()
        check.quarantine(raw, np.flatnonzero(unmapped), "unknown_item", id_col,
                         detail=f"not in the id map {mapping['id_map']}", severity="warning")
        keep &= ~unmapped
        source_ids, ids_arr = ids_arr, mapped.to_numpy(dtype=object, na_value=None)

    canon = pd.DataFrame(index=np.arange(len(f)))
    canon["item_id"] = ids_arr
    if source_ids is not None:  # keep the table's own id (e.g. the MovieLens id) next to MMRec's
        canon["source_item_id"] = source_ids
    text_cols = _split_list(mapping.get("text"))
    if not text_cols and "text" not in mapping:
        # RecBole: token_seq columns hold words; plain tables: a 'text'/'title'/'description' column
        if raw.header_types:
            text_cols = [c for c, t in raw.header_types.items() if t == "token_seq" and c != id_col]
        else:
            text_cols = [c for c in f.columns if c.lower() in ("text", "title", "description", "overview", "tags")]
    absent = [c for c in text_cols if c not in f.columns]
    if absent:
        check.note("missing_column", "error", f"text column(s) {absent} not in the item table "
                   f"(columns are {list(f.columns)})", file=f"{raw.path} line 1",
                   fix="fix --item-columns text=<col1>,<col2>")
    text_cols = [c for c in text_cols if c in f.columns]
    if text_cols:
        pieces = [f[c].astype("string").str.strip() for c in text_cols]
        joined = pieces[0].fillna("")
        for piece in pieces[1:]:
            sep = np.where((joined.str.len() > 0) & piece.notna() & (piece.str.len() > 0), ". ", "")
            joined = joined + pd.Series(sep, index=joined.index) + piece.fillna("")
        canon["text"] = joined.replace("", pd.NA).to_numpy(dtype=object, na_value=None)
    for role in ("image_path", "audio_path"):
        spec = mapping.get(role)
        if spec is None:
            spec = role if role in f.columns else None
        if spec is None:
            continue
        canon[role] = _check_paths(check, raw, spec, role, keep)
    attr_cols = _split_list(mapping.get("attributes"))
    if not attr_cols and "attributes" not in mapping and raw.header_types:
        attr_cols = [c for c, t in raw.header_types.items() if t in ("token", "float") and c != id_col]
    for c in attr_cols:
        if c not in f.columns:
            check.note("missing_column", "error", f"attribute column {c!r} not in the item table",
                       file=f"{raw.path} line 1", fix="fix --item-columns attributes=<col1>,<col2>")
    used = {id_col, *(mapping.get(r) for r in ("image_path", "audio_path"))}
    for c in f.columns:  # every other column is kept as side data (attributes first)
        if c not in used and c not in canon.columns:
            canon[c] = f[c].to_numpy(dtype=object, na_value=None)
    roles = {"text": text_cols, "attributes": [c for c in attr_cols if c in f.columns]}
    return _SideTable(raw, ids_arr[keep], canon[keep].reset_index(drop=True), roles)


def _read_id_map(check: _Checker, spec: str) -> dict[str, str]:
    path = Path(spec)
    if not path.is_absolute():
        path = (check.source.root / path) if (check.source.root / path).exists() else \
            (check.source.interactions[0][0].parent / path)
    try:
        raw = read_raw(path)
    except UserError as err:
        raise check.from_user_error(UserError(f"id map: {err.what}", err.where, err.fix), "unreadable_file")
    if raw.frame.shape[1] < 2:
        raise check.fatal("id map needs two columns (original id, integer id)", str(path),
                          "write e.g. item_id<TAB>itemID", "bad_id_map")
    orig = _strip(raw.frame.iloc[:, 0]).to_numpy(dtype=object, na_value=None)
    new = _strip(raw.frame.iloc[:, 1]).to_numpy(dtype=object, na_value=None)
    return {o: n for o, n in zip(orig, new) if o is not None and n is not None}


_TEMPLATE_RE = re.compile(r"{([^{}]+)}")


def _check_paths(check: _Checker, raw: RawTable, spec: str, role: str, keep: np.ndarray) -> np.ndarray:
    """Media paths relative to the dataset root; unsafe or missing ones are cleared and quarantined.

    ``spec`` is a column name or a template like ``images/{item_id}.jpg``. A path is
    accepted only if it is relative and, after resolving ``..`` and symlinks, stays
    inside the root folder; then the file must exist.
    """
    f = raw.frame
    root = check.source.root.resolve()
    if "{" in spec:
        fields = _TEMPLATE_RE.findall(spec)
        absent = [c for c in fields if c not in f.columns]
        if absent:
            check.note("missing_column", "error", f"{role} template {spec!r} names missing column(s) {absent}",
                       file=f"{raw.path} line 1", fix=f"use columns of the item table: {list(f.columns)}")
            return np.full(len(f), None, dtype=object)
        values = pd.Series(spec, index=f.index, dtype=object)
        for c in fields:
            col = _strip(f[c]).fillna("")
            values = pd.Series([v.replace("{" + c + "}", x) for v, x in zip(values, col)], index=f.index)
        templated = True
    else:
        values = _strip(f[spec]).astype(object).where(f[spec].notna(), None)
        templated = False
    out = np.full(len(f), None, dtype=object)
    parents: dict[str, Path] = {}  # resolved folders: media files usually share a few folders
    reasons: dict[str, list[int]] = {"path_absolute": [], "path_outside_root": [], "file_missing": []}
    details: dict[str, list[str]] = {k: [] for k in reasons}
    for i, value in enumerate(values):
        if not keep[i] or value is None or value is pd.NA or str(value) == "":
            continue
        text = str(value)
        p = Path(text)
        if p.is_absolute() or re.match(r"^[A-Za-z]:[\\/]", text):
            reasons["path_absolute"].append(i)
            details["path_absolute"].append("absolute path")
            continue
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
            reasons["path_outside_root"].append(i)
            details["path_outside_root"].append(f"cannot resolve: {err}")
            continue
        if not resolved.is_relative_to(root):
            reasons["path_outside_root"].append(i)
            via = "symlink escapes" if (root / p).is_symlink() or ".." not in p.parts else "'..' leaves"
            details["path_outside_root"].append(f"{via} {root} -> {resolved}")
            continue
        if not resolved.is_file():
            reasons["file_missing"].append(i)
            details["file_missing"].append(f"no file {root / p}")
            continue
        out[i] = text
    for reason, rows in reasons.items():
        if rows:
            # a missing poster named by a template is ordinary coverage, not a data error
            severity = "warning" if (reason == "file_missing" and templated) else "error"
            check.quarantine(raw, np.asarray(rows), reason, spec if not templated else role,
                             values=[values.iloc[r] for r in rows], action="field_cleared",
                             detail=details[reason], severity=severity)
    return out


def _load_users(check: _Checker) -> _SideTable | None:
    src = check.source
    raw = _read(check, src.users_path, None, "user table")
    f = raw.frame
    id_col = src.user_columns.get("user") or _find_column(list(f.columns), "user")
    if id_col is None or id_col not in f.columns:
        raise check.fatal(f"user table has no user id column; its columns are {list(f.columns)}",
                          f"{raw.path} line 1", "name it user_id", "missing_column")
    ids = _strip(f[id_col])
    keep = ids.notna().to_numpy().copy()  # pandas hands out read-only views (copy-on-write)
    check.quarantine(raw, np.flatnonzero(~keep), "missing_id", id_col)
    dup = np.zeros(len(f), dtype=bool)
    dup[keep] = ids[keep].duplicated(keep="first").to_numpy()
    check.quarantine(raw, np.flatnonzero(dup), "duplicate_user", id_col)
    keep &= ~dup
    return _SideTable(raw, ids.to_numpy(dtype=object, na_value=None)[keep], f[keep].reset_index(drop=True))


def _align_items(items: _SideTable | None, keys: np.ndarray | None, item_ids: np.ndarray, integer_ids: bool
                 ) -> pd.DataFrame:
    if items is None:
        return pd.DataFrame({"item_id": item_ids})
    frame = items.frame.copy()
    frame["item_id"] = keys
    frame = frame.set_index("item_id")
    frame = frame[~frame.index.duplicated(keep="first")]
    aligned = frame.reindex(pd.Index(item_ids)).reset_index(names="item_id")
    # a hint for encoders: which columns were joined into `text`, which are attributes
    aligned.attrs["roles"] = items.roles
    return aligned


# ---------------------------------------------------------------------- features
def _load_features(check: _Checker) -> list[tuple[Any, np.ndarray]]:
    out = []
    for spec in check.source.features:
        if not spec.path.is_file():
            check.issues.append(Issue("missing_file", "fatal", f"feature file for modality {spec.name!r} not found",
                                      file=str(spec.path),
                                      fix="fix data.features.<name>.path or remove the modality"))
            continue
        try:
            feats = np.load(spec.path, allow_pickle=False)
        except (ValueError, OSError) as err:
            check.issues.append(Issue("unreadable_file", "fatal", f"cannot read feature file: {err}",
                                      file=str(spec.path), fix="save features with numpy.save as a 2-D array"))
            continue
        if feats.ndim != 2 or not np.issubdtype(feats.dtype, np.number):
            check.issues.append(Issue("bad_feature_shape", "fatal",
                                      f"feature file must be a 2-D numeric array (items x dim), got shape "
                                      f"{feats.shape} dtype {feats.dtype}", file=str(spec.path),
                                      fix="save one row per item: numpy.save(path, matrix)"))
            continue
        out.append((spec, feats))
    return out


def _make_modality(check: _Checker, spec: Any, feats: np.ndarray, item_ids: np.ndarray, n_items: int
                   ) -> FeatureModality | None:
    present = np.ones(feats.shape[0], dtype=bool)
    if spec.missing is not None:
        try:
            missing = np.load(spec.missing, allow_pickle=False)
        except (ValueError, OSError) as err:
            check.issues.append(Issue("unreadable_file", "fatal", f"cannot read missing-mask file: {err}",
                                      file=str(spec.missing), fix="save a boolean vector with numpy.save"))
            return None
        missing = np.asarray(missing).reshape(-1)
        if missing.shape[0] != feats.shape[0]:
            check.issues.append(Issue("feature_rows", "fatal",
                                      f"missing-mask has {missing.shape[0]} entries but the feature file has "
                                      f"{feats.shape[0]} rows", file=str(spec.missing),
                                      fix="one boolean per feature row (True = missing)"))
            return None
        present &= ~missing.astype(bool)
    if spec.ids is not None:
        row_ids = _read_row_ids(spec.ids)
        index = pd.Index(item_ids.astype(str))
        pos = index.get_indexer(pd.Index(row_ids.astype(str)))
        aligned = np.zeros((n_items, feats.shape[1]), dtype=np.float32)
        mask = np.zeros(n_items, dtype=bool)
        ok = pos >= 0
        aligned[pos[ok]] = feats[ok]
        mask[pos[ok]] = present[ok]
        if (~ok).any():
            check.note("unknown_item", "warning", f"{int((~ok).sum())} feature row(s) name items that are not "
                       "in the dataset; ignored", file=str(spec.ids), count=int((~ok).sum()))
        feats, present = aligned, mask
    elif feats.shape[0] != n_items:
        check.issues.append(Issue(
            "feature_rows", "fatal",
            f"feature file for {spec.name!r} has {feats.shape[0]} rows but the dataset has {n_items} items "
            "(row i must be item i)", file=str(spec.path),
            fix="regenerate the features for the current item list, or give data.features."
                f"{spec.name}.ids a file listing the item id of every row"))
        return None
    as32 = np.asarray(feats, dtype=np.float32)  # float64 -> float32 may overflow to inf: check after the cast
    finite = np.isfinite(as32).all(axis=1)
    bad_rows = np.flatnonzero(~finite & present)
    if len(bad_rows):
        n_bad = (~np.isfinite(as32[bad_rows])).sum(axis=1)
        check._add(spec.path, "row", bad_rows, "nonfinite_feature", spec.name,
                   [f"item {item_ids[r]}" for r in bad_rows], "row_masked",
                   [f"{k} non-finite value(s) (0-based row = item index)" for k in n_bad],
                   [""] * len(bad_rows), "error")
    return FeatureModality(spec.name, spec.kind, as32, present & finite, str(spec.path))


def _read_row_ids(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False).reshape(-1)
    return np.asarray([line.strip() for line in path.read_text().splitlines() if line.strip()], dtype=object)


# ---------------------------------------------------------------------- summaries
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


# ---------------------------------------------------------------------- path-level API
def source_for_path(
    path: str | Path,
    fmt: str | None = None,
    columns: dict[str, str] | None = None,
    items_path: str | Path | None = None,
    item_columns: dict[str, str] | None = None,
    features: dict[str, dict[str, Any]] | None = None,
    name: str | None = None,
) -> DataSource:
    """Build a DataSource for a file or folder, detecting the format when ``fmt`` is None/auto."""
    path = Path(path)
    if not path.exists():
        raise UserError("data path not found", str(path), "pass an existing file or folder")
    fmt = None if fmt in (None, "auto") else fmt
    if fmt is None:
        fmt = detect_format(path)
    if fmt == "mmrec":
        return mmrec_source(path, name, features or None, items_path, item_columns, columns)
    if fmt == "recbole":
        return recbole_source(path, name, columns, item_columns, features)
    if fmt in ("csv", "parquet", "jsonl", "tsv"):
        return table_source(path, columns, items_path, item_columns, features, name,
                            None if path.is_dir() else ("csv" if fmt == "tsv" else fmt))
    raise UserError(f"unknown data format {fmt!r}", str(path), "use csv, parquet, jsonl, mmrec or recbole")


def detect_format(path: Path) -> str:
    """mmrec / recbole / csv / parquet / jsonl from a path (``.inter`` headers tell MMRec from RecBole)."""
    inter: Path | None = None
    if path.is_dir():
        inters = sorted(path.glob("*.inter"))
        if inters:
            inter = inters[0]
        else:
            for ext, fmt in ((".csv", "csv"), (".tsv", "csv"), (".parquet", "parquet"), (".jsonl", "jsonl")):
                if any(path.glob(f"*{ext}")):
                    return fmt
            raise UserError("cannot tell the data format: no .inter/.csv/.parquet/.jsonl files", str(path),
                            "pass --format csv|parquet|jsonl|mmrec|recbole")
    elif path.suffix == ".inter":
        inter = path
    if inter is not None:
        with open(inter, "r", encoding="utf-8", errors="replace") as fh:
            header = fh.readline()
        return "recbole" if ":token" in header or ":float" in header else "mmrec"
    from fusionrec.data.readers import guess_format

    return guess_format(path)


def validate_path(
    path: str | Path,
    fmt: str | None = None,
    quarantine_dir: str | Path | None = None,
    **kw: Any,
) -> tuple[Dataset | None, ValidationReport]:
    """Validate a file or folder (see :func:`source_for_path` for keyword arguments).

    A problem that prevents even describing the source (path missing) comes back as
    a fatal report rather than an exception, so callers handle one shape.
    """
    try:
        source = source_for_path(path, fmt, **kw)
    except UserError as err:
        report = ValidationReport(str(kw.get("name") or Path(path).name), str(fmt or "auto"))
        report.issues.append(Issue("unreadable_source", "fatal", err.what, file=err.where, fix=err.fix))
        if quarantine_dir is not None:
            report.write(quarantine_dir)
        return None, report
    return validate_source(source, quarantine_dir)


def load_validated(cfg: Any, quarantine_dir: str | Path | None = None) -> tuple[Dataset, ValidationReport]:
    """Load a dataset from a DataConfig *through* validation (bad rows quarantined, good rows kept).

    Applies k-core and the configured split like :func:`fusionrec.data.loading.load_dataset`.
    Raises :class:`UserError` when the report is fatal.
    """
    from fusionrec.data.loading import load_dataset_with_report

    return load_dataset_with_report(cfg, quarantine_dir=quarantine_dir)


__all__ = [
    "Issue", "ValidationReport", "validate_source", "validate_path", "load_validated", "source_for_path",
    "detect_format", "summarise", "REASON_HELP",
]
