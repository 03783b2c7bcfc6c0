"""Model registry: name -> class (imported lazily), kind and one-line summary; typed parameters.

Each model declares its hyper-parameters once, as its nested ``Params`` class
(:mod:`fusionrec.models.params`). :func:`validate_params` checks a parameter dict
against it (unknown key -> a UserError that suggests the closest valid one) and
fills in the typed defaults; :func:`build_model` validates and builds. The same
validation runs in :func:`fusionrec.config.resolve_config`, so the CLI and Python
build identical models, and a typo fails before any data is loaded.

This module imports neither torch nor the model modules at import time:
``fusionrec models`` lists the table below without loading any model.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fusionrec.errors import UserError

if TYPE_CHECKING:  # pragma: no cover - typing only (importing them pulls torch)
    from fusionrec.data.dataset import TrainData
    from fusionrec.models.base import RecModel

ModelKind = Literal["ID-only", "multimodal", "ranker", "rating"]
KINDS: tuple[str, ...] = ("ID-only", "multimodal", "ranker", "rating")


@dataclass(frozen=True)
class ModelEntry:
    """Where a model's class lives (``"package.module:Class"``), its kind and what it is, in one line."""

    target: str
    kind: str
    summary: str


# Modules are imported only when a model is used, so a broken optional model never stops
# the others from loading and listing stays instant.
_MODELS: dict[str, ModelEntry] = {
    "pop": ModelEntry("fusionrec.models.popularity:Popularity", "ID-only",
                      "most popular items (training frequency), the same list for everyone"),
    "itemknn": ModelEntry("fusionrec.models.itemknn:ItemKNN", "ID-only",
                          "item-item cosine neighbours on the training matrix (closed form)"),
    "bpr": ModelEntry("fusionrec.models.bpr:BPRMF", "ID-only", "matrix factorisation with the BPR loss (MMRec's)"),
    "lightgcn": ModelEntry("fusionrec.models.lightgcn:LightGCN", "ID-only",
                           "linear graph propagation over the user-item graph, BPR loss"),
    "ease": ModelEntry("fusionrec.models.ease:EASE", "ID-only",
                       "closed-form item-item linear autoencoder (catalogues up to 20k items)"),
    "vbpr": ModelEntry("fusionrec.models.vbpr:VBPR", "multimodal",
                       "BPR with item vectors = ID embedding + linear map of the item content"),
    "two_tower": ModelEntry("fusionrec.models.two_tower:TwoTower", "multimodal",
                            "user tower x aligned, fused content item tower; cold items from content"),
    "content_knn": ModelEntry("fusionrec.models.content:ContentKNN", "multimodal",
                              "content similarity to the user's history (content-only baseline, no training)"),
    "mmgraph": ModelEntry("fusionrec.models.mmgraph:MMGraph", "multimodal",
                          "LightGCN + modality kNN graphs + content aligned with the ID space"),
    "content_cf": ModelEntry("fusionrec.models.content_cf:ContentCF", "multimodal",
                             "users x content-only item tower, full softmax: for item cold start"),
    "dcn": ModelEntry("fusionrec.models.ranker:DCNRanker", "ranker",
                      "DCN-v2 pointwise ranker over ID, history and modality fields (AUC / log loss)"),
    "multitask": ModelEntry("fusionrec.models.multitask:MultiTaskRanker", "ranker",
                            "click and conversion together (ESMM: CTR x CVR over impressions; shared-bottom / "
                            "MMoE towers)"),
    "biased_mf": ModelEntry("fusionrec.models.rating:BiasedMF", "rating",
                            "rating prediction: global mean + user/item biases + factors, squared error (MAE/RMSE)"),
    "content_rating": ModelEntry("fusionrec.models.rating_content:ContentRating", "rating",
                                 "rating regression over IDs and item content: rates items never rated in training"),
    "cascade": ModelEntry("fusionrec.models.cascade:Cascade", "ranker",
                          "retrieve the top-N with one model, re-rank them with another (default ease -> dcn)"),
    "sasrec": ModelEntry("fusionrec.models.sequential.sasrec:SASRec", "ID-only",
                         "next item from the time-ordered history: causal self-attention with positions"),
    "gru4rec": ModelEntry("fusionrec.models.sequential.gru4rec:GRU4Rec", "ID-only",
                          "next item from the time-ordered history: a GRU over the item sequence"),
    "mm_sasrec": ModelEntry("fusionrec.models.sequential.sasrec:MMSASRec", "multimodal",
                            "SASRec over fused content (+ ID) item vectors: unseen items recommendable"),
    "mm_gru4rec": ModelEntry("fusionrec.models.sequential.gru4rec:MMGRU4Rec", "multimodal",
                             "GRU4Rec over fused content (+ ID) item vectors: unseen items recommendable"),
    "seq_content_knn": ModelEntry("fusionrec.models.sequential.content_knn:SeqContentKNN", "multimodal",
                                  "content similarity to the user's latest items (next-item content baseline)"),
}


def register(name: str, target: str, kind: str = "ID-only", summary: str = "") -> None:
    """Register ``name`` -> ``"package.module:ClassName"`` (kind: ID-only, multimodal, ranker or rating)."""
    if kind not in KINDS:
        raise ValueError(f"model kind {kind!r} is not one of {KINDS}")
    _MODELS[name] = ModelEntry(target, kind, summary)


def available_models() -> list[str]:
    return sorted(_MODELS)


def model_entry(name: str) -> ModelEntry:
    """The registry row of ``name``; an unknown name is a UserError suggesting the closest."""
    if name not in _MODELS:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=1, cutoff=0.5)
        raise UserError(f"unknown model {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                        "model.name", f"choose one of {', '.join(available_models())} (`fusionrec models` "
                                      "describes them)")
    return _MODELS[name]


def model_class(name: str) -> type[RecModel]:
    module, cls = model_entry(name).target.split(":")
    return getattr(importlib.import_module(module), cls)


def validate_params(name: str, params: Mapping[str, Any] | None = None,
                    where: str = "model.params") -> dict[str, Any]:
    """``params`` checked against model ``name``'s typed ``Params``, with every default filled in.

    Raises a UserError for an unknown key (listing the valid ones and the closest match),
    a value of the wrong type or out of range, or a choice that does not exist.
    """
    return model_class(name).validate_params(params, where).model_dump(mode="json")


def default_params(name: str) -> dict[str, Any]:
    """The typed defaults of model ``name`` as a plain dict."""
    return validate_params(name, {})


def build_model(name: str, data: TrainData, params: Mapping[str, Any] | None = None) -> RecModel:
    """Model ``name`` built on ``data`` with ``params`` (validated; missing keys take the typed defaults)."""
    return model_class(name)(data, dict(params or {}))
