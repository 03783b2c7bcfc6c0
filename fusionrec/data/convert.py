"""``fusionrec data convert``: a Dataset as a self-contained RecBole folder that loads with the same modalities.

The folder gets

* ``<name>.inter`` (+ ``<name>.train/valid/test.inter`` when split) and ``<name>.item``
  (see :func:`fusionrec.data.readers.write_recbole`);
* every media file the items name (``image_path``/``audio_path``), hard-linked when the
  file system allows it, else copied, under the same relative path, so the ``.item``
  file's paths are relative to the new folder;
* every feature modality as ``<modality>_feat.npy`` (row j = item j of the ``.item``
  file) with ``<modality>_missing.npy`` where items lack it;
* ``fusionrec.yaml``: the data description (format, text / media / feature roles and
  kinds, the split), so ``--data OUT`` reads it back as it was.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fusionrec.data.dataset import Dataset
from fusionrec.data.init_cmd import DESCRIPTION_FILE
from fusionrec.data.readers import write_recbole
from fusionrec.data.roles import AUDIO_COLUMN, IMAGE_COLUMN, TEXT_COLUMN
from fusionrec.errors import UserError


@dataclass
class ConvertResult:
    """What a conversion wrote: the folder, media files linked / copied, feature files."""

    folder: Path
    linked: int = 0
    copied: int = 0
    features: list[str] = field(default_factory=list)


def _place(src: Path, dst: Path, result: ConvertResult) -> None:
    """Hard-link ``src`` at ``dst`` (no extra space), or copy it across file systems."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
        result.linked += 1
    except OSError:  # another device, or a file system without hard links
        shutil.copy2(src, dst)
        result.copied += 1


def _carry_media(dataset: Dataset, out: Path, result: ConvertResult) -> dict[str, list[str | None]]:
    """Media files into ``out`` under their normalised relative paths; the new path per item."""
    rewritten: dict[str, list[str | None]] = {}
    for column in (IMAGE_COLUMN, AUDIO_COLUMN):
        if column not in dataset.items.columns:
            continue
        if dataset.root is None:
            raise UserError(f"the dataset has {column} values but no root folder to find the files in",
                            f"dataset {dataset.name!r}", "load it from its folder (fusionrec data convert PATH) "
                            "or build it with Dataset.from_frames(..., root=<folder>)")
        paths: list[str | None] = []
        for value in dataset.items[column].tolist():
            if value is None or (isinstance(value, float) and np.isnan(value)) or str(value) == "":
                paths.append(None)
                continue
            # validated paths stay inside the root, so the normalised form stays inside `out`
            rel = Path(os.path.normpath(str(value))).as_posix()
            src = dataset.root / str(value)
            if not src.is_file():
                paths.append(None)  # gone since validation: the item keeps no path, like a missing file
                continue
            _place(src, out / rel, result)
            paths.append(rel)
        rewritten[column] = paths
    return rewritten


def _write_features(dataset: Dataset, out: Path, result: ConvertResult) -> dict[str, dict[str, str]]:
    described: dict[str, dict[str, str]] = {}
    for name, mod in dataset.modalities.items():
        entry = {"path": f"{name}_feat.npy", "kind": mod.kind}
        np.save(out / entry["path"], mod.features)
        if not mod.mask.all():
            entry["missing"] = f"{name}_missing.npy"
            np.save(out / entry["missing"], ~mod.mask)
        described[name] = entry
        result.features.append(entry["path"])
    return described


def _description(dataset: Dataset, name: str, features: dict[str, dict[str, str]]) -> dict[str, Any]:
    item_columns = {"item": "item_id"}
    roles = dataset.items.attrs.get("roles", {})
    if TEXT_COLUMN in dataset.items.columns:
        item_columns["text"] = TEXT_COLUMN  # the joined text, exactly what the encoders read
    for column in (IMAGE_COLUMN, AUDIO_COLUMN):
        if column in dataset.items.columns:
            item_columns[column] = column
    # an empty list stops the RecBole reader from taking every token column as an attribute
    item_columns["attributes"] = ",".join(roles.get("attributes") or [])
    data: dict[str, Any] = {"name": name, "format": "recbole", "path": f"{name}.inter",
                            "item_columns": item_columns, "features": features}
    if dataset.has_split:
        data["split"] = {"method": "predefined"}
    return {"data": data}


def convert_dataset(dataset: Dataset, out: str | Path, name: str | None = None) -> ConvertResult:
    """Write ``dataset`` into ``out`` as RecBole files + its media and features + ``fusionrec.yaml``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # RecBole file names are <stem>.<kind>: a dot in the stem would cut it short on reading
    name = (name or dataset.name).replace(".", "_")
    result = ConvertResult(out)
    rewritten = _carry_media(dataset, out, result)
    items = dataset.items.copy()
    for column, paths in rewritten.items():
        items[column] = paths
    # same ids, interactions and modalities; only the media paths now point inside `out`
    moved = Dataset(dataset.name, dataset.user_ids, dataset.item_ids, dataset.interactions, items,
                    dataset.modalities, out)
    write_recbole(moved, out, name)
    features = _write_features(dataset, out, result)
    text = yaml.safe_dump(_description(dataset, name, features), sort_keys=False)
    (out / DESCRIPTION_FILE).write_text("# written by `fusionrec data convert`; paths are relative to this folder\n"
                                        + text)
    return result


__all__ = ["ConvertResult", "convert_dataset"]
