"""Model registry: name -> class, and default hyper-parameters from YAML."""
from __future__ import annotations

import importlib
from typing import Any

from fusionrec.config import load_yaml_resource
from fusionrec.data.dataset import TrainData
from fusionrec.models.base import RecModel

# name -> "module:Class"; modules are imported lazily so that a broken optional
# model never stops the others from loading.
_MODELS: dict[str, str] = {
    "pop": "fusionrec.models.popularity:Popularity",
    "itemknn": "fusionrec.models.itemknn:ItemKNN",
    "bpr": "fusionrec.models.bpr:BPRMF",
    "lightgcn": "fusionrec.models.lightgcn:LightGCN",
    "vbpr": "fusionrec.models.vbpr:VBPR",
    "two_tower": "fusionrec.models.two_tower:TwoTower",
    "content_knn": "fusionrec.models.content:ContentKNN",
    "mmgraph": "fusionrec.models.mmgraph:MMGraph",
    "ease": "fusionrec.models.ease:EASE",
    "dcn": "fusionrec.models.ranker:DCNRanker",
    "cascade": "fusionrec.models.cascade:Cascade",
    "content_cf": "fusionrec.models.content_cf:ContentCF",
}


def register(name: str, target: str) -> None:
    """Register ``name`` -> ``"package.module:ClassName"``."""
    _MODELS[name] = target


def available_models() -> list[str]:
    return sorted(_MODELS)


def model_class(name: str) -> type[RecModel]:
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {available_models()}")
    module, cls = _MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def default_params(name: str) -> dict[str, Any]:
    """Defaults from ``fusionrec/configs/models/<name>.yaml`` (empty if there is none)."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {available_models()}")
    return load_yaml_resource(f"models/{name}.yaml", missing_ok=True)


def build_model(name: str, data: TrainData, params: dict[str, Any] | None = None) -> RecModel:
    merged = default_params(name)
    merged.update(params or {})
    return model_class(name)(data, merged)
