"""Validation entry points by path or config (the checks themselves live in :mod:`fusionrec.data.validation`).

Kept as the stable import point: ``validate_source``, ``ValidationReport``,
``validate_path``, ``load_validated``, ``detect_format``, ``summarise`` and
``source_for_path`` are importable from here as before.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fusionrec.data.dataset import Dataset
from fusionrec.data.loading import load_dataset_with_report
from fusionrec.data.sources import detect_format, source_for_path
from fusionrec.data.validation import (
    REASON_HELP,
    SEVERITIES,
    Issue,
    ValidationReport,
    source_from_frames,
    summarise,
    validate_source,
)
from fusionrec.errors import UserError


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
    return load_dataset_with_report(cfg, quarantine_dir=quarantine_dir)


__all__ = [
    "REASON_HELP", "SEVERITIES", "Issue", "ValidationReport", "detect_format", "load_validated", "source_for_path",
    "source_from_frames", "summarise", "validate_path", "validate_source",
]
