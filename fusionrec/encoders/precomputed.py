"""Precomputed feature arrays (``.npy``/``.npz``/``.parquet``) as a modality of a Dataset.

Datasets often ship embeddings made elsewhere (lastfm2k's VGGish and Whisper audio
arrays, MMRec's ``image_feat.npy``). :func:`load_feature_array` lines their rows up
with the dataset's items and makes absence explicit: rows that are all-NaN, or listed
in ``missing`` (e.g. MMRec's ``image_missing.npy`` where the mean vector was written
in), get ``mask=False`` instead of being used as if they were real content.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.data.dataset import MODALITY_KINDS, Dataset, FeatureModality
from fusionrec.errors import UserError


def _read_array(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if len(keys) != 1:
                    raise UserError(f"{path.name} holds arrays {keys}; expected exactly one", where=str(path),
                                    fix="save one array per file, or extract the one you mean")
                return z[keys[0]]
        if suffix == ".parquet":
            import pandas as pd

            return pd.read_parquet(path).to_numpy(np.float32)
    except UserError:
        raise
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read feature file: {err}", where=str(path),
                        fix="pass a float .npy/.npz/.parquet array with one row per item") from err
    raise UserError(f"unsupported feature file type {suffix!r}", where=str(path), fix="use .npy, .npz or .parquet")


def load_feature_array(
    path: str | Path,
    dataset: Dataset,
    name: str,
    kind: str = "other",
    row_ids: Sequence[Any] | np.ndarray | None = None,
    missing: str | Path | np.ndarray | None = None,
    zero_rows_missing: bool = True,
    attach: bool = True,
) -> FeatureModality:
    """Load a feature array whose row ``r`` belongs to item ``row_ids[r]`` (an original id).

    ``row_ids=None`` means row ``j`` is the dataset's internal item ``j`` (MMRec
    convention; the row count must then equal ``dataset.n_items``). Items with no
    row, all-NaN rows, rows flagged in ``missing`` (a bool array or ``.npy`` path) and,
    when ``zero_rows_missing``, all-zero rows get ``mask=False``. float64 arrays
    (VGGish) are cast to float32.
    """
    if kind not in MODALITY_KINDS:
        raise UserError(f"feature kind {kind!r} is not one of {MODALITY_KINDS}", fix="e.g. kind='audio'")
    path = Path(path)
    raw = _read_array(path)
    if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.number):
        raise UserError(f"feature array has shape {raw.shape} and dtype {raw.dtype}; expected a 2-D number array",
                        where=str(path), fix="save an [n_items, dim] float array")
    raw = raw.astype(np.float32)
    flags = np.zeros(len(raw), dtype=bool)
    if missing is not None:
        flags = np.load(missing) if isinstance(missing, (str, Path)) else np.asarray(missing)
        flags = flags.astype(bool).ravel()
        if flags.shape != (len(raw),):
            raise UserError(f"missing-row flags have {flags.size} entries for {len(raw)} rows", where=str(path),
                            fix="pass one boolean per feature row")
    valid = ~flags & np.isfinite(raw).all(axis=1)
    if zero_rows_missing:
        valid &= np.abs(raw).sum(axis=1) > 0
    feats = np.zeros((dataset.n_items, raw.shape[1]), dtype=np.float32)
    mask = np.zeros(dataset.n_items, dtype=bool)
    if row_ids is None:
        if len(raw) != dataset.n_items:
            raise UserError(
                f"feature file has {len(raw)} rows but dataset {dataset.name!r} has {dataset.n_items} items",
                where=str(path),
                fix="pass row_ids (the original item id of every row) when rows are not in item order",
            )
        feats[valid] = raw[valid]
        mask[:] = valid
    else:
        row_ids = list(row_ids)
        if len(row_ids) != len(raw):
            raise UserError(f"{len(row_ids)} row ids for {len(raw)} feature rows", where=str(path),
                            fix="pass exactly one original item id per row")
        index = {_key(i): j for j, i in enumerate(dataset.item_ids)}
        unknown = 0
        for r, rid in enumerate(row_ids):
            j = index.get(_key(rid))
            if j is None:
                unknown += 1
                continue
            if valid[r]:
                feats[j] = raw[r]
                mask[j] = True
        if unknown == len(row_ids):
            raise UserError(f"none of the {len(row_ids)} row ids is an item of dataset {dataset.name!r}",
                            where=str(path), fix="row_ids must be original item ids (as in the item table)")
    modality = FeatureModality(name, kind, feats, mask, source=f"precomputed {path}")
    if attach:
        dataset.add_modality(modality)
    return modality


def _key(value: Any) -> str:
    # Original ids may arrive as int, numpy int or str ("80" vs 80): compare as text.
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)
