"""Validation with quarantine: every dataset is loaded through these checks.

:func:`validate_source` reads a :class:`~fusionrec.data.sources.DataSource`,
checks it, sets bad rows aside and builds a Dataset from the good ones. It never
drops a good row and never stops at the first problem: it collects a
:class:`ValidationReport` with one :class:`Issue` per kind of problem (with its
location and a fix) and a quarantine table with one line per bad row.

Modules, one job each: :mod:`.report` (issues, report), :mod:`.checker`
(collecting issues and quarantined rows), :mod:`.values` (cells to types),
:mod:`.interactions` (interaction rows, ids, repeats), :mod:`.items` (item and
user tables), :mod:`.media` (media paths and patterns), :mod:`.features`
(``.npy`` files), :mod:`.build` (the one builder).

Reason codes of quarantined or reported rows: ``malformed_line``, ``missing_id``,
``bad_id``, ``bad_rating``, ``bad_timestamp``, ``bad_label``, ``bad_split``,
``unknown_item``, ``unknown_user``, ``duplicate_item``, ``duplicate_user``,
``path_outside_root``, ``path_absolute``, ``file_missing``, ``file_corrupt``,
``nonfinite_feature``; repeated events are ``repeated_interaction`` (info) and
byte-identical rows ``duplicate_row`` (a warning with ``repeats: duplicates``),
both kept.
"""
from __future__ import annotations

from fusionrec.data.validation.build import (
           source_from_frames,
           summarise,
           validate_source,
)
from fusionrec.data.validation.report import (
           REASON_HELP,
           SEVERITIES,
           Issue,
           ValidationReport,
)

__all__ = ["REASON_HELP", "SEVERITIES", "Issue", "ValidationReport", "source_from_frames", "summarise",
           "validate_source"]
