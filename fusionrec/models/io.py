"""Model artifacts without pickle: a saved model can be loaded without executing code.

Layout of ``directory``::

    model.yaml            name, class, params (exactly as used), format version
    config.yaml           the resolved RunConfig of the run
    weights.safetensors   the state dict (parameters and persistent buffers)
    dataset/
      dataset.json        name, root, user_ids, item_ids, modality index
      interactions.parquet
      items.parquet
      users.parquet         user attributes (only when the data has a user table)
      modalities/<name>.features.npy, <name>.mask.npy   (np.load(allow_pickle=False))

Loading rebuilds the :class:`~fusionrec.data.dataset.Dataset`, its
``TrainData`` view (with the same modalities as the run), constructs the model
through the registry with the stored params (validated against the model's
typed ``Params``: a renamed or unknown key is reported, never ignored), and
loads the weights. Everything non-weight a model derives from data (LightGCN's graph, ItemKNN's user
histories) is rebuilt from the stored dataset, so it is consistent by construction.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
import yaml
from safetensors.torch import load_file, save_file

from fusionrec.config import RunConfig
from fusionrec.data.checked_files import (
    inside,
    read_json,
    read_npy,
    read_parquet,
    read_yaml_mapping,
)
from fusionrec.data.dataset import MODALITY_KINDS, Dataset, FeatureModality
from fusionrec.data.validation.features import is_real
from fusionrec.errors import UserError
from fusionrec.models.base import RecModel
from fusionrec.models.registry import model_class

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
# what to do about a damaged model folder
RESAVE = ("the model folder is damaged: copy it again from where it was written, or train and save the model "
          "again (fusionrec train)")


@dataclass
class LoadedModel:
    """What :func:`load_model` returns: the ready model (eval mode), its dataset and run config."""

    model: RecModel
    dataset: Dataset
    config: RunConfig


# ---------------------------------------------------------------------- dataset
def _jsonable_id(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float)) or value is None:
        return value
    # ids are scalars in practice; anything else is stored by its text form
    return str(value)


def save_dataset(dataset: Dataset, directory: str | Path) -> Path:
    """Write ``dataset`` as parquet + npy + JSON under ``directory``."""
    directory = Path(directory)
    (directory / "modalities").mkdir(parents=True, exist_ok=True)
    dataset.interactions.to_parquet(directory / "interactions.parquet", index=False)
    _items_to_parquet(dataset.items, directory / "items.parquet")
    if dataset.users is not None:  # user attributes (the attribute user tower rebuilds its vocabulary)
        _items_to_parquet(dataset.users, directory / "users.parquet")
    mods = []
    for name, mod in dataset.modalities.items():
        stem = _safe_stem(name)
        np.save(directory / "modalities" / f"{stem}.features.npy", mod.features, allow_pickle=False)
        np.save(directory / "modalities" / f"{stem}.mask.npy", mod.mask, allow_pickle=False)
        mods.append({"name": name, "kind": mod.kind, "source": mod.source, "file": stem})
    meta = {
        "format_version": FORMAT_VERSION,
        "name": dataset.name,
        "root": str(dataset.root) if dataset.root is not None else None,
        "user_ids": [_jsonable_id(u) for u in dataset.user_ids],
        "item_ids": [_jsonable_id(i) for i in dataset.item_ids],
        "modalities": mods,
    }
    (directory / "dataset.json").write_text(json.dumps(meta))
    return directory


def _fs_bytes(path: str) -> bytes | None:
    """``path`` as the OS sees it; None when it cannot be (a lone surrogate such as ``"\\ud800"``)."""
    try:
        return os.fsencode(path)
    except UnicodeEncodeError:
        return None


def _media_root(meta: dict[str, Any], meta_path: Path) -> str | None:
    """The folder media paths resolve against, as saved: a path the OS can take, or None."""
    root = meta.get("root")
    if root is None:
        return None
    encoded = _fs_bytes(root) if isinstance(root, str) else None
    if not encoded or b"\x00" in encoded or len(encoded) > 4096:  # 4096: Linux's PATH_MAX
        raise UserError(f"'root' must be the path of the dataset's folder, got {str(root)[:80]!r}", str(meta_path),
                        "set 'root' to the folder holding the item media, or null; or save the model again "
                        "with fusionrec train")
    return root


def load_dataset_artifact(directory: str | Path) -> Dataset:
    """Read a dataset written by :func:`save_dataset`; a damaged file is a UserError naming it."""
    directory = Path(directory)
    meta_path = directory / "dataset.json"
    if not meta_path.is_file():
        raise UserError("no saved dataset found", str(meta_path),
                        "point at a directory written by fusionrec train (its model/ folder)")
    meta = read_json(meta_path, RESAVE)
    user_ids = _id_list(meta, "user_ids", meta_path)
    item_ids = _id_list(meta, "item_ids", meta_path)
    interactions = read_parquet(inside(directory, "interactions.parquet", "interaction table", RESAVE), RESAVE)
    items = read_parquet(inside(directory, "items.parquet", "item table", RESAVE), RESAVE)
    if items.shape[1] == 0:
        # a column-less item table does not keep its row count through parquet
        items = pd.DataFrame(index=pd.RangeIndex(len(item_ids)))
    mods = meta.get("modalities", [])
    if not isinstance(mods, list) or not all(isinstance(m, dict) for m in mods):
        raise UserError("'modalities' must be a list of objects", str(meta_path), RESAVE)
    modalities = {}
    for m in mods:
        mod = _load_modality(directory, m, meta_path, len(item_ids))
        modalities[mod.name] = mod
    users = None
    if (directory / "users.parquet").is_file():  # user attributes (an attribute user tower rebuilds from them)
        users = read_parquet(inside(directory, "users.parquet", "user table", RESAVE), RESAVE)
        users = users.astype(object).where(users.notna(), None)
    try:
        return Dataset(str(meta.get("name") or directory.parent.name), user_ids, item_ids, interactions, items,
                       modalities, _media_root(meta, meta_path), users=users)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        # the files read but do not fit together (ids out of range, missing columns, wrong row counts)
        raise UserError(f"the saved dataset is inconsistent: {str(err)[:300]}", str(directory), RESAVE) from None


def _id_list(meta: dict[str, Any], key: str, where: Path) -> list[Any]:
    ids = meta.get(key)
    if not isinstance(ids, list) or not all(isinstance(i, (str, int, float)) and not isinstance(i, bool)
                                            for i in ids):
        raise UserError(f"{key!r} must be a list of ids (strings or numbers), got {type(ids).__name__}",
                        str(where), RESAVE)
    if len(set(ids)) != len(ids):
        raise UserError(f"{key!r} lists the same id more than once", str(where), RESAVE)
    return ids


def _load_modality(directory: Path, m: dict[str, Any], meta_path: Path, n_items: int) -> FeatureModality:
    """One saved modality; its ``file`` must be a plain name inside ``modalities/`` (never a path out)."""
    name, stem = m.get("name"), m.get("file")
    if not isinstance(name, str) or not isinstance(stem, str) or stem != _safe_stem(stem):
        raise UserError(f"modality entry {m!r} needs a 'name' and a plain 'file' name (letters, digits, - _ .)",
                        str(meta_path), RESAVE)
    kind = m.get("kind")
    if kind not in MODALITY_KINDS:
        raise UserError(f"modality {name!r} has kind {kind!r}, not one of {MODALITY_KINDS}", str(meta_path), RESAVE)
    folder = directory / "modalities"
    feats_path = inside(folder, f"{stem}.features.npy", f"modality {name!r}", RESAVE)
    mask_path = inside(folder, f"{stem}.mask.npy", f"modality {name!r}", RESAVE)
    feats, mask = read_npy(feats_path, RESAVE), read_npy(mask_path, RESAVE)
    if feats.ndim != 2 or feats.shape[0] != n_items or not is_real(feats.dtype):
        raise UserError(f"modality {name!r} features have shape {feats.shape} ({feats.dtype}); expected "
                        f"({n_items}, dim) real numbers, one row per item", str(feats_path), RESAVE)
    with np.errstate(over="ignore"):
        finite = np.isfinite(feats.astype(np.float32)).all()
    if not finite:  # saved features are validated and finite: anything else is damage
        raise UserError(f"modality {name!r} features hold NaN or infinite values (or values too large for "
                        "float32)", str(feats_path), RESAVE)
    if mask.shape != (n_items,) or not (mask.dtype == bool or is_real(mask.dtype)):
        raise UserError(f"modality {name!r} mask has shape {mask.shape} ({mask.dtype}); expected ({n_items},) "
                        "booleans", str(mask_path), RESAVE)
    return FeatureModality(name, kind, feats, mask, str(m.get("source", "")))


def _safe_stem(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "modality"


def _items_to_parquet(items: pd.DataFrame, path: Path) -> None:
    try:
        items.to_parquet(path, index=False)
    except (pa.ArrowException, TypeError, ValueError) as first:  # ArrowInvalid / ArrowTypeError
        # Mixed-type object columns (e.g. ints and strings) are not representable in
        # parquet; store them as text rather than fall back to pickle.
        fixed = items.copy()
        for col in fixed.columns:
            if fixed[col].dtype == object:
                fixed[col] = fixed[col].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                                            else str(v))
        try:
            fixed.to_parquet(path, index=False)
        except (pa.ArrowException, TypeError, ValueError) as second:  # pragma: no cover - exotic column types
            raise UserError(
                f"cannot store the item table as parquet: {second}", str(path),
                "make item columns plain numbers or strings",
            ) from first


# ---------------------------------------------------------------------- model
def save_model(model: RecModel, cfg: RunConfig, dataset: Dataset, directory: str | Path) -> Path:
    """Save ``model`` (weights, params), the resolved ``cfg`` and ``dataset`` under ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for key, value in model.state_dict().items():
        if value.is_sparse or value.layout != torch.strided:
            raise UserError(
                f"model {model.name!r} has a sparse tensor {key!r} in its state dict",
                type(model).__name__, "register derived sparse matrices as plain attributes, not buffers",
            )
        # clone: safetensors refuses tensors that share storage
        tensors[key] = value.detach().cpu().contiguous().clone()
    save_file(tensors, str(directory / "weights.safetensors"), metadata={"model": model.name})
    meta = {
        "format_version": FORMAT_VERSION,
        "name": model.name,
        "class": f"{type(model).__module__}:{type(model).__name__}",
        "params": _plain(model.params),
    }
    (directory / "model.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    cfg.save(directory / "config.yaml")
    save_dataset(dataset, directory / "dataset")
    return directory


def load_model(directory: str | Path) -> LoadedModel:
    """Load a model saved by :func:`save_model`, ready to score (eval mode).

    Every file of the folder is checked as it is read: a damaged, truncated or
    hostile one (python YAML tags, paths or symlinks leading out of the folder)
    stops the load with a :class:`UserError` that names it.
    """
    directory = Path(directory)
    meta_path = directory / "model.yaml"
    if not meta_path.is_file():
        raise UserError("not a saved fusionrec model (model.yaml is missing)", str(directory),
                        "pass the model/ folder of a run, e.g. runs/<run>/model")
    meta, cfg = check_model_folder(directory)
    name, params = meta["name"], meta.get("params") or {}
    dataset = load_dataset_artifact(directory / "dataset")
    try:
        cls = model_class(name)
    except UserError as err:
        raise UserError(
            f"saved model {name!r} is not registered in this installation", str(meta_path),
            "install/import the package that registers it (fusionrec.models.registry.register)",
        ) from err
    params = cls.validate_params(params, where=f"{meta_path}: params")
    try:
        data = dataset.train_data(cfg.data.modalities)
        model = cls(data, params)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:
        # only reachable with files that read but do not fit the model (edited params, swapped datasets)
        raise UserError(f"cannot rebuild model {name!r} from the saved files: {str(err)[:300]}",
                        str(directory), RESAVE) from None
    _load_weights(model, inside(directory, WEIGHTS, "the weights file", RESAVE))
    model.eval()
    return LoadedModel(model=model, dataset=dataset, config=cfg)


def check_model_folder(directory: str | Path) -> tuple[dict[str, Any], RunConfig]:
    """The cheap checks of a model folder, before anything large is read: ``(model.yaml, run config)``.

    ``model.yaml`` and ``config.yaml`` parse as plain YAML of the right shape, the weights
    file is a regular file inside the folder, and ``features.json`` / ``serve_meta.json``
    (when present) are well formed. Raises :class:`UserError` naming the file otherwise.
    """
    directory = Path(directory)
    meta_path = directory / "model.yaml"
    meta = read_yaml_mapping(inside(directory, meta_path.name, "model.yaml", RESAVE), RESAVE)
    name, params = meta.get("name"), meta.get("params") or {}
    if not isinstance(name, str) or not name:
        raise UserError("model.yaml names no model ('name: <model>' is missing)", str(meta_path), RESAVE)
    if not isinstance(params, dict):
        raise UserError(f"'params' must be a mapping, got {type(params).__name__}", str(meta_path), RESAVE)
    cfg = _load_run_config(directory / "config.yaml")
    weights = inside(directory, WEIGHTS, "the weights file", RESAVE)
    if not weights.is_file():
        raise UserError("the weights file is missing" + (" (not a regular file)" if weights.exists() else ""),
                        str(weights), RESAVE)
    check_sidecars(directory)
    return meta, cfg


def _load_run_config(path: Path) -> RunConfig:
    from pydantic import ValidationError

    raw = read_yaml_mapping(inside(path.parent, path.name, "the run config", RESAVE), RESAVE)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise UserError(f"invalid setting {key!r} in the saved run config: {first['msg']}", str(path),
                        RESAVE) from None


def _load_weights(model: RecModel, path: Path) -> None:
    """Read the safetensors file and check every tensor's name and shape before loading it."""
    from safetensors import SafetensorError

    if not path.is_file():
        raise UserError("the weights file is missing", str(path), RESAVE)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise UserError(f"the weights file is damaged or not safetensors ({str(err)[:200]})", str(path),
                        RESAVE) from None
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise UserError(
            f"weights do not match model {model.name!r} (missing {missing[:5]}, unexpected {unexpected[:5]})",
            str(path), "re-save the model with the current fusionrec version",
        )
    wrong = [f"{k}: saved {tuple(state[k].shape)}, model {tuple(v.shape)}" for k, v in own.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise UserError(f"weights have the wrong shapes for model {model.name!r} and its saved dataset: "
                        + "; ".join(wrong[:3]), str(path), RESAVE)
    model.load_state_dict(state, strict=True)


def check_sidecars(directory: Path) -> None:
    """``features.json`` and ``serve_meta.json`` (when present) are JSON objects of the expected shape."""
    features = directory / "features.json"
    if features.exists() or features.is_symlink():
        content = read_json(inside(directory, features.name, "features.json", RESAVE), RESAVE)
        mods = content.get("modalities", {})
        if not isinstance(mods, dict) or not all(isinstance(v, dict) for v in mods.values()):
            raise UserError("'modalities' must map each modality to an object", str(features), RESAVE)
    meta = directory / "serve_meta.json"
    if meta.exists() or meta.is_symlink():
        content = read_json(inside(directory, meta.name, "serve_meta.json", RESAVE),
                            "delete serve_meta.json (the service then replays every stored event)")
        seq = content.get("trained_upto_seq", 0)
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise UserError(f"'trained_upto_seq' must be a whole number >= 0, got {seq!r}", str(meta),
                            "delete serve_meta.json (the service then replays every stored event)")


def _plain(value: Any) -> Any:
    """Params as YAML-safe plain types (tuples -> lists, numpy scalars -> python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
