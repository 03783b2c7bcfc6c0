"""Readers: CSV / TSV / Parquet / JSONL tables with a column mapping, MMRec and RecBole folders.

Reading happens in layers, each in its own module:

* :mod:`fusionrec.data.rawtable` parses one file tolerantly (every value kept
  as text, malformed lines set aside with their line number);
* :mod:`fusionrec.data.sources` describes a whole dataset as a
  :class:`DataSource` (files + column roles from :mod:`fusionrec.data.roles`);
* :mod:`fusionrec.data.validation` checks a source, quarantines bad rows and
  builds the :class:`~fusionrec.data.dataset.Dataset`.

This module holds the conveniences over that one path (:func:`read_table`,
:func:`read_mmrec`, :func:`read_recbole`), the RecBole writer, and re-exports
the names that used to live here.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from fusionrec.data.dataset import Dataset
from fusionrec.data.rawtable import (  # noqa: F401  (re-exported)
    RECBOLE_TYPES,
    TABLE_FORMATS,
    RawTable,
    guess_format,
    parse_recbole_header,
    read_raw,
)
from fusionrec.data.roles import (  # noqa: F401  (re-exported: the role table used to live here)
    INTERACTION_ROLES,
    ITEM_ROLES,
    ROLE_ALIASES,
    SPLIT_VALUES,
    USER_ROLES,
)
from fusionrec.data.sources import (  # noqa: F401  (re-exported)
    DataSource,
    FeatureSpec,
    discover_mmrec_features,
    feature_specs,
    guess_kind,
    mmrec_source,
    recbole_source,
    table_source,
)
from fusionrec.data.validation import validate_source


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
def _validated(source: DataSource) -> Dataset:
    """Validate ``source`` into a Dataset; fatal problems raise, bad rows go to the report's quarantine."""
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
    "INTERACTION_ROLES", "ITEM_ROLES", "ROLE_ALIASES", "SPLIT_VALUES", "DataSource", "FeatureSpec", "RawTable",
    "discover_mmrec_features", "guess_format", "guess_kind", "mmrec_source", "parse_recbole_header", "read_mmrec",
    "read_raw", "read_recbole", "read_table", "recbole_source", "table_source", "write_recbole",
]
