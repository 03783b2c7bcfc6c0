"""Precomputed feature files (``.npy``): shape checks, id alignment, missing masks, non-finite rows."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.checked_files import read_npy
from fusionrec.data.dataset import FeatureModality
from fusionrec.data.validation.checker import Checker
from fusionrec.data.validation.report import Issue
from fusionrec.errors import UserError


def load_features(check: Checker) -> list[tuple[Any, np.ndarray]]:
    """Every feature file of the source as ``(spec, matrix)``; unreadable or ill-shaped ones are fatal."""
    out = []
    for spec in check.source.features:
        if not spec.path.is_file():
            check.issues.append(Issue("missing_file", "fatal", f"feature file for modality {spec.name!r} not found",
                                      file=str(spec.path),
                                      fix="fix data.features.<name>.path or remove the modality"))
            continue
        try:
            feats = read_npy(spec.path, "save features with numpy.save as a 2-D array (items x dim)")
        except UserError as err:
            check.issues.append(Issue("unreadable_file", "fatal", f"cannot read feature file: {err.what}",
                                      file=str(spec.path), fix=err.fix))
            continue
        if feats.ndim != 2 or not is_real(feats.dtype):
            check.issues.append(Issue("bad_feature_shape", "fatal",
                                      f"feature file must be a 2-D array of real numbers (items x dim), got shape "
                                      f"{feats.shape} dtype {feats.dtype}", file=str(spec.path),
                                      fix="save one row per item: numpy.save(path, matrix)"))
            continue
        out.append((spec, feats))
    return out


def make_modality(check: Checker, spec: Any, feats: np.ndarray, item_ids: np.ndarray, n_items: int,
                  n_table: int | None = None) -> FeatureModality | None:
    """One feature file as a modality in internal item order (aligned by ``spec.ids`` when given).

    ``n_table`` is the item table's length: items after it are known only from the events.
    """
    present = np.ones(feats.shape[0], dtype=bool)
    if spec.missing is not None:
        try:
            missing = read_npy(spec.missing, "save a boolean vector with numpy.save (True = missing)")
        except UserError as err:
            check.issues.append(Issue("unreadable_file", "fatal", f"cannot read missing-mask file: {err.what}",
                                      file=str(spec.missing), fix=err.fix))
            return None
        if not (missing.dtype == bool or is_real(missing.dtype)):
            check.issues.append(Issue("bad_feature_shape", "fatal", f"missing-mask has dtype {missing.dtype}, "
                                      "not boolean", file=str(spec.missing),
                                      fix="save a boolean vector with numpy.save (True = missing)"))
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
        try:
            row_ids = read_row_ids(spec.ids)
        except UserError as err:
            check.issues.append(Issue("unreadable_file", "fatal", f"cannot read the row id file: {err.what}",
                                      file=str(spec.ids), fix=err.fix))
            return None
        if len(row_ids) != feats.shape[0]:
            check.issues.append(Issue("feature_rows", "fatal",
                                      f"the row id file lists {len(row_ids)} ids but the feature file has "
                                      f"{feats.shape[0]} rows", file=str(spec.ids),
                                      fix="list the item id of every feature row, in row order"))
            return None
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
    elif n_table is not None and feats.shape[0] == n_table < n_items:
        # rows follow the item table; items only the events name come after it, with no features
        feats = np.concatenate([feats, np.zeros((n_items - n_table, feats.shape[1]), dtype=feats.dtype)])
        present = np.concatenate([present, np.zeros(n_items - n_table, dtype=bool)])
    elif feats.shape[0] != n_items:
        check.issues.append(Issue(
            "feature_rows", "fatal",
            f"feature file for {spec.name!r} has {feats.shape[0]} rows but the dataset has {n_items} items "
            "(row i must be item i)", file=str(spec.path),
            fix="regenerate the features for the current item list, or give data.features."
                f"{spec.name}.ids a file listing the item id of every row"))
        return None
    with np.errstate(over="ignore"):  # float64 -> float32 may overflow to inf: reported just below
        as32 = np.asarray(feats, dtype=np.float32)
    finite = np.isfinite(as32).all(axis=1)
    bad_rows = np.flatnonzero(~finite & present)
    if len(bad_rows):
        n_bad = (~np.isfinite(as32[bad_rows])).sum(axis=1)
        check._add(spec.path, "row", bad_rows, "nonfinite_feature", spec.name,
                   [f"item {item_ids[r]}" for r in bad_rows], "row_masked",
                   [f"{k} non-finite value(s) (0-based row = item index)" for k in n_bad],
                   [""] * len(bad_rows), "error")
    return FeatureModality(spec.name, spec.kind, as32, present & finite, str(spec.path))


def is_real(dtype: np.dtype) -> bool:
    """Integers or floats (not complex, strings, dates or records): what a feature matrix may hold."""
    return bool(np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating))


def read_row_ids(path: Path) -> np.ndarray:
    """The item id of every feature row: a ``.npy`` vector or a text file with one id per line."""
    fix = "list the item id of every feature row: numpy.save(path, ids) or one id per line"
    if path.suffix == ".npy":
        return read_npy(path, fix).reshape(-1)
    if not path.is_file():
        raise UserError("file not found", str(path), fix)
    text = path.read_bytes().decode("utf-8", errors="replace")
    return np.asarray([line.strip() for line in text.splitlines() if line.strip()], dtype=object)


__all__ = ["is_real", "load_features", "make_modality", "read_row_ids"]
