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
from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError
from fusionrec.models.base import RecModel
from fusionrec.models.registry import model_class

FORMAT_VERSION = 1


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


def load_dataset_artifact(directory: str | Path) -> Dataset:
    """Read a dataset written by :func:`save_dataset`."""
    directory = Path(directory)
    meta_path = directory / "dataset.json"
    if not meta_path.is_file():
        raise UserError("no saved dataset found", str(meta_path),
                        "point at a directory written by fusionrec train (its model/ folder)")
    meta = json.loads(meta_path.read_text())
    interactions = pd.read_parquet(directory / "interactions.parquet")
    items = pd.read_parquet(directory / "items.parquet")
    if items.shape[1] == 0:
        # a column-less item table does not keep its row count through parquet
        items = pd.DataFrame(index=pd.RangeIndex(len(meta["item_ids"])))
    modalities = {}
    for m in meta.get("modalities", []):
        feats = np.load(directory / "modalities" / f"{m['file']}.features.npy", allow_pickle=False)
        mask = np.load(directory / "modalities" / f"{m['file']}.mask.npy", allow_pickle=False)
        modalities[m["name"]] = FeatureModality(m["name"], m["kind"], feats, mask, m.get("source", ""))
    users_file = directory / "users.parquet"
    users = pd.read_parquet(users_file) if users_file.is_file() else None
    if users is not None:
        users = users.astype(object).where(users.notna(), None)
    return Dataset(meta["name"], meta["user_ids"], meta["item_ids"], interactions, items, modalities,
                   meta.get("root"), users=users)


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
    """Load a model saved by :func:`save_model`, ready to score (eval mode)."""
    directory = Path(directory)
    meta_path = directory / "model.yaml"
    if not meta_path.is_file():
        raise UserError("not a saved fusionrec model (model.yaml is missing)", str(directory),
                        "pass the model/ folder of a run, e.g. runs/<run>/model")
    meta = yaml.safe_load(meta_path.read_text())
    cfg = RunConfig.model_validate(yaml.safe_load((directory / "config.yaml").read_text()) or {})
    dataset = load_dataset_artifact(directory / "dataset")
    data = dataset.train_data(cfg.data.modalities)
    try:
        cls = model_class(meta["name"])
    except UserError as err:
        raise UserError(
            f"saved model {meta['name']!r} is not registered in this installation", str(meta_path),
            "install/import the package that registers it (fusionrec.models.registry.register)",
        ) from err
    params = cls.validate_params(meta.get("params") or {}, where=f"{meta_path}: params")
    model = cls(data, params)
    state = load_file(str(directory / "weights.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(
            f"weights do not match model {meta['name']!r} (missing {list(missing)[:5]}, "
            f"unexpected {list(unexpected)[:5]})",
            str(directory / "weights.safetensors"), "re-save the model with the current fusionrec version",
        )
    model.eval()
    return LoadedModel(model=model, dataset=dataset, config=cfg)


def _plain(value: Any) -> Any:
    """Params as YAML-safe plain types (tuples -> lists, numpy scalars -> python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
