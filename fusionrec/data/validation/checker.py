"""The checker: collects issues and quarantined rows while a source is turned into a Dataset.

It never stops at the first problem: each check records one :class:`Issue` per
kind of problem and the bad rows it set aside; only a fatal problem stops the
build (by raising :class:`Fatal`, caught by the builder).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.rawtable import RawTable, parse_recbole_header, read_raw
from fusionrec.data.roles import ROLE_ALIASES, find_column
from fusionrec.data.sources import DataSource
from fusionrec.data.validation.report import QUARANTINE_COLUMNS, REASON_HELP, Issue
from fusionrec.errors import UserError


class Fatal(Exception):
    """Internal: stop building after a fatal issue was recorded."""


class Checker:
    """Collects issues and quarantined rows while a source is processed."""

    def __init__(self, source: DataSource) -> None:
        self.source = source
        self.issues: list[Issue] = []
        self.quarantined: list[pd.DataFrame] = []

    def fatal(self, message: str, where: str | None = None, fix: str | None = None, code: str = "fatal") -> Fatal:
        self.issues.append(Issue(code, "fatal", message, file=where, fix=fix))
        return Fatal(message)

    def from_user_error(self, err: UserError, code: str) -> Fatal:
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


def read_checked(check: Checker, path: Path, fmt: str | None, what: str) -> RawTable:
    """Read one file of the source (or take its in-memory table); malformed lines are quarantined."""
    in_memory = check.source.tables.get(str(path))
    if in_memory is not None:
        return in_memory
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


def resolve_roles(
    check: Checker, raw: RawTable, mapping: dict[str, str], roles: tuple[str, ...], required: tuple[str, ...],
    what: str, option: str, auto: tuple[str, ...] | None = None,
) -> dict[str, str]:
    """Role -> column for one table: explicit mappings first, then the role table's aliases.

    Only roles in ``auto`` (default: all of ``roles``) are found by name; a
    mapped role that the table does not know is reported, never silently ignored.
    """
    columns = list(raw.frame.columns)
    resolved: dict[str, str] = {}
    auto = roles if auto is None else auto
    unknown = [r for r in mapping if r not in roles]
    if unknown:
        check.note("unknown_role", "error", f"unknown role(s) {unknown} in the {what} mapping; ignored",
                   file=option, fix=f"use roles among {list(roles)}, e.g. {option} {roles[0]}=<column>")
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
        found = find_column(columns, role) if role in auto else None
        if found is not None and found not in resolved.values():
            resolved[role] = found
        elif role in required:
            raise check.fatal(
                f"{what} has no {role} column; its columns are {columns}", f"{raw.path} line 1",
                f"name the column {ROLE_ALIASES[role][0]!r} or map it with {option} {role}=<column>",
                "missing_column")
    return resolved


__all__ = ["Checker", "Fatal", "read_checked", "resolve_roles"]
