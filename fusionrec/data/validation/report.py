"""What validation found: :class:`Issue` (one kind of problem) and :class:`ValidationReport`.

Severities:

* ``fatal`` - nothing sensible can be loaded (file missing, no user/item column,
  unreadable file, zero good rows, a feature file that does not match the items).
  ``fusionrec data validate`` exits non-zero with one clear message.
* ``error`` - rows were quarantined (malformed lines, wrong types, unknown ids,
  unsafe paths, non-finite feature rows). The rest loads; exit 0.
* ``warning`` / ``info`` - worth knowing (items without interactions, missing or
  corrupt images, repeated events, unmapped columns); nothing was removed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fusionrec.errors import UserError

SEVERITIES = ("fatal", "error", "warning", "info")
QUARANTINE_COLUMNS = ("file", "line", "unit", "reason", "column", "value", "action", "detail", "content")

# Why each reason matters and how to fix it; used in report text.
REASON_HELP: dict[str, tuple[str, str]] = {
    "malformed_line": ("line does not split into the header's fields", "fix quoting or the delimiter on these lines"),
    "missing_id": ("user or item id is empty", "fill in the id or delete the row"),
    "bad_id": ("id is not a non-negative integer (required by this format)", "use 0-based integer ids"),
    "bad_rating": ("rating is not a finite number", "write ratings as numbers, e.g. 4 or 3.5"),
    "bad_timestamp": ("timestamp is neither a number nor a date",
                      "use unix seconds (or ms) or dates such as 2024-01-31 / 2024-01-31T12:00:00"),
    "bad_label": ("label is not a number", "use 0/1 labels"),
    "bad_split": ("split value is not train/valid/test (or 0/1/2)", "use train, valid or test"),
    "unknown_item": ("item id is not in the item table / feature files",
                     "add the item or fix the id (unknown_items: keep in fusionrec.yaml keeps such rows)"),
    "unknown_user": ("user id is not in the user table",
                     "add the user or fix the id (unknown_items: keep in fusionrec.yaml keeps such rows)"),
    "duplicate_row": ("byte-identical repeat of an earlier row (the log has no repeat semantics)",
                      ("nothing to do if these are real repeat events (repeats: events in fusionrec.yaml); "
                       "otherwise remove the copies")),
    "duplicate_item": ("item id repeats an earlier item row", "keep one row per item (the first is kept)"),
    "duplicate_user": ("user id repeats an earlier user row", "keep one row per user (the first is kept)"),
    "path_outside_root": ("media path leaves the dataset folder", "use paths relative to the dataset folder"),
    "path_absolute": ("media path is absolute", "use paths relative to the dataset folder"),
    "path_url": ("media path is a URL; fusionrec reads files in the dataset folder (the item's modality is masked)",
                 ("download the files into the dataset folder and map the role to their relative paths or a "
                 "pattern such as images/{item_id}.jpg")),
    "file_missing": ("media file does not exist (the item's modality is masked)",
                     "add the file at that path, or leave it: the item is used without this modality"),
    "file_corrupt": ("media file cannot be decoded (the item's modality is masked)",
                     ("replace the file with a valid image (JPEG/PNG/WebP), or delete it: the item is used "
                     "without this modality")),
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
    counted: str = "row"  # what `count` counts: rows, or items / users for per-id issues

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
            "fix": self.fix, "where": self.where, "counted": self.counted,
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
        """Rows set aside per reason (rows that were kept with one field cleared are not counted)."""
        return self._reasons(cleared=False)

    def cleared_counts(self) -> dict[str, int]:
        """Rows kept with one field cleared (e.g. a missing photo's path), per reason."""
        return self._reasons(cleared=True)

    def _reasons(self, cleared: bool) -> dict[str, int]:
        if len(self.quarantine) == 0:
            return {}
        q = self.quarantine
        rows = q[(q["action"] == "field_cleared") == cleared]
        return {str(k): int(v) for k, v in rows["reason"].value_counts().sort_index().items()}

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
            "quarantined_per_reason": self.counts,
            "cleared_per_reason": self.cleared_counts(), "issues": [i.to_dict() for i in self.issues],
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
            count = f" [{issue.count} {issue.counted}(s)]" if issue.count > 1 else ""
            lines.append(f"{issue.severity.upper()} {issue.code}{count}: {issue.message}")
            if issue.where:
                lines.append(f"    at {issue.where}")
            for ex in issue.examples[:max_examples]:
                lines.append(f"    - {ex}")
            if issue.count > max_examples and issue.examples:
                listed = len(self.quarantine) and issue.code in set(self.quarantine["reason"])
                where_all = " (all listed in the quarantine file)" if listed else ""
                lines.append(f"    ... {issue.count - min(len(issue.examples), max_examples)} more{where_all}")
            if issue.fix:
                lines.append(f"    fix: {issue.fix}")
        quarantined, cleared = self.counts, self.cleared_counts()
        if quarantined:
            lines.append("quarantined rows per reason: " + ", ".join(f"{k}={v}" for k, v in quarantined.items()))
        if cleared:
            lines.append("rows kept with a field cleared (listed in the quarantine file): "
                         + ", ".join(f"{k}={v}" for k, v in cleared.items()))
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


__all__ = ["QUARANTINE_COLUMNS", "REASON_HELP", "SEVERITIES", "Issue", "ValidationReport"]
