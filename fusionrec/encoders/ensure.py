"""``ensure_features``: give a dataset the modalities a model needs, from the feature store.

``fusionrec encode`` and ``fusionrec train`` / ``evaluate`` / ``ablate`` go through
this one function, with the same store folder (:func:`default_store_dir`) and the
same encoders (the data description's ``encoders`` section), so whatever
``encode`` wrote is what ``train`` reads: cached vectors are reused (content-hash
keys), only new or changed items are encoded.

Which encoders run, per modality:

* the data description's ``encoders`` (``{text: minilm, image: {name: clip-image,
  params: {model_path: ...}}}``), or, when it names none,
* the defaults chosen from the item frame's standard columns (the role table,
  :mod:`fusionrec.data.roles`): ``text`` -> ``minilm`` when items have text,
  ``image`` -> ``efficientnet-lite0`` when they have image paths.

Modalities the dataset already carries (precomputed ``data.features`` arrays,
MMRec ``.npy`` files) are used as they are and never re-encoded. An item without
usable content gets ``mask=False`` and is reported by id; it never stops a run.
"""
from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.data.roles import IMAGE_COLUMN, TEXT_COLUMN, split_list
from fusionrec.encoders.base import Encoder, content_hash
from fusionrec.errors import UserError

log = logging.getLogger("fusionrec.encoders")

# Per item modality shown in a run's log; the full list is in the records' "missing" counts.
SHOWN_ISSUES = 5


def default_store_dir() -> Path:
    """``$FUSIONREC_CACHE/features`` (default ``~/.cache/fusionrec/features``): shared by encode and train."""
    base = os.environ.get("FUSIONREC_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "fusionrec") / "features"


def _has_values(items: pd.DataFrame, column: str) -> bool:
    if column not in items.columns:
        return False
    col = items[column]
    return bool(col.notna().any() and col.astype("string").str.strip().str.len().fillna(0).gt(0).any())


def default_encoder_spec(items: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Default encoders for what the item frame holds (standard columns of the role table)."""
    spec: dict[str, dict[str, Any]] = {}
    if _has_values(items, TEXT_COLUMN):
        spec["text"] = {"name": "minilm", "params": {}}
    if _has_values(items, IMAGE_COLUMN):
        spec["image"] = {"name": "efficientnet-lite0", "params": {}}
    return spec


def normalise_encoder_spec(encoders: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{modality: "minilm" | {name, params: {...}} | {name, **params}}`` -> ``{modality: {name, params}}``."""
    from fusionrec.encoders.registry import DEFAULT_ENCODERS

    out: dict[str, dict[str, Any]] = {}
    for modality, entry in (encoders or {}).items():
        if entry is None or isinstance(entry, str):
            name, params = entry, {}
        elif isinstance(entry, Mapping):
            flat = dict(entry)
            name = flat.pop("name", None)
            params = dict(flat.pop("params", None) or {})
            params.update(flat)  # the flat form {name: minilm, template: ...} is accepted too
        else:
            raise UserError(
                f"encoder spec for modality {modality!r} is {entry!r}",
                "data.encoders", f"write '{modality}: minilm' or '{modality}: {{name: clip-image, params: "
                "{model_path: /models/clip}}'",
            )
        name = name or DEFAULT_ENCODERS.get(str(modality))
        if name is None:
            raise UserError(
                f"no encoder named for modality {modality!r} and it has no default",
                f"data.encoders.{modality}", f"name one, e.g. '{modality}: {{name: clip-image, params: "
                f"{{model_path: /models/clip}}}}'; defaults exist for {sorted(DEFAULT_ENCODERS)}",
            )
        out[str(modality)] = {"name": str(name), "params": params}
    return out


def encoder_spec(data_cfg: Any, items: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The encoders a data description asks for, or the defaults for its items."""
    declared = getattr(data_cfg, "encoders", None) if data_cfg is not None else None
    spec = normalise_encoder_spec(declared) if declared else default_encoder_spec(items)
    item_columns = getattr(data_cfg, "item_columns", None) or {}
    for role, kind in (("image_path", "image"), ("audio_path", "audio")):
        if role in item_columns and not item_columns[role]:
            # the description switched this medium off (image_path: ""): its encoder has nothing to read
            for modality in [m for m, e in spec.items() if _kind_of(e["name"]) == kind]:
                log.info("encoders.%s is skipped: item_columns.%s is empty in the data description",
                         modality, role)
                spec.pop(modality)
    described = split_list(item_columns.get("attributes"))
    for entry in spec.values():
        # the attribute encoder reads the columns the description names as attributes
        if entry["name"] == "attributes" and described and not entry.get("params"):
            entry["params"] = {"columns": described}
    return spec


def _kind_of(encoder_name: str) -> str:
    from fusionrec.encoders.registry import encoder_class

    return encoder_class(encoder_name).kind


def build_spec_encoders(spec: Mapping[str, Mapping[str, Any]], device: str | None = None) -> list[Encoder]:
    """Encoders for ``{modality: {name, params}}``; a modality named unlike its kind names the output.

    ``device`` (the run's ``train.device``: auto, cpu, cuda...) is where encoders with a ``device``
    run, unless their params name one; it is set on the encoder, not recorded in its spec, so a
    model trained on a GPU is served by an encoder on the serving machine's CPU."""
    from fusionrec.encoders.registry import build_encoder, encoder_class

    encoders = []
    for modality, entry in spec.items():
        params = dict(entry.get("params") or {})
        if modality != encoder_class(entry["name"]).kind:
            params.setdefault("modality", modality)  # e.g. clip_image: clip-image
        encoder = build_encoder(entry["name"], **params)
        if device is not None and "device" not in params and hasattr(encoder, "device"):
            encoder.device = device
        encoders.append(encoder)
    return encoders


def features_hash(modality: FeatureModality) -> str:
    """Content hash of a modality's vectors and mask (what the model actually saw)."""
    feats = np.ascontiguousarray(modality.features, dtype=np.float32)
    return content_hash(str(feats.shape), feats.tobytes(), np.asarray(modality.mask, dtype=np.uint8).tobytes())


def modality_record(modality: FeatureModality, **extra: Any) -> dict[str, Any]:
    """One modality's entry of the run record (results.json ``features`` / model ``features.json``)."""
    return {
        "kind": modality.kind, "dim": modality.dim, "n_items": modality.n_items,
        "n_present": int(modality.mask.sum()), "coverage": round(modality.coverage, 6),
        "content_hash": features_hash(modality), **extra,
    }


# Records of encoder-made modalities, per dataset object (a weak map: the Dataset class stays
# a plain data holder, and a record dies with its dataset).
_RECORDS: weakref.WeakKeyDictionary[Dataset, dict[str, dict[str, Any]]] = weakref.WeakKeyDictionary()


def remember_record(dataset: Dataset, name: str, record: dict[str, Any]) -> None:
    """Keep how modality ``name`` of ``dataset`` was made (called by :func:`encode_dataset`)."""
    _RECORDS.setdefault(dataset, {})[name] = record


def feature_records(dataset: Dataset, names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """How each modality of ``dataset`` (or only ``names``) was made, with the hash of its vectors.

    Encoder-made modalities carry encoder name, id and params; anything else
    (``data.features`` arrays, MMRec ``.npy`` files) is recorded as ``precomputed``
    with its source. A record whose vectors changed since is replaced by a fresh one.
    """
    stored = _RECORDS.get(dataset, {})
    out: dict[str, dict[str, Any]] = {}
    for name, mod in dataset.modalities.items():
        if names is not None and name not in names:
            continue
        rec = stored.get(name)
        if rec is None or rec.get("content_hash") != features_hash(mod):
            rec = modality_record(mod, encoder="precomputed", source=mod.source)
        out[name] = rec
    return out


def ensure_features(
    dataset: Dataset,
    data_cfg: Any = None,
    modalities: Sequence[str] | None = None,
    store_dir: str | Path | None = None,
    progress: bool = True,
    device: str | None = None,
) -> tuple[Dataset, dict[str, dict[str, Any]]]:
    """Attach every modality the data description names, reusing the feature store.

    ``modalities``: only these (None = every modality of the description, or of
    the defaults). ``store_dir``: the feature store (None = :func:`default_store_dir`).
    Returns the dataset (modalities attached in place) and one record per modality
    (see :func:`feature_records`): encoder name, id and params, content hash of the
    vectors, coverage, and how many items were cached / encoded / missing. ``device``: where the
    encoders run (:func:`build_spec_encoders`).
    """
    from fusionrec.encoders.pipeline import encode_dataset

    wanted = None if modalities is None else [str(m) for m in modalities]
    spec = encoder_spec(data_cfg, dataset.items)
    for name in wanted or []:
        if name not in spec and name not in dataset.modalities:
            spec[name] = _default_for(name, spec, dataset)
    todo = {m: s for m, s in spec.items() if m not in dataset.modalities and (wanted is None or m in wanted)}
    if todo:
        encoders = build_spec_encoders(todo, device)
        store = Path(store_dir).expanduser() if store_dir is not None else default_store_dir()
        report = encode_dataset(dataset, encoders, store_dir=store, progress=progress)
        for rep in report.modalities.values():
            _log_missing(rep.modality, rep.issues)
    return dataset, feature_records(dataset, wanted)


# Models that read item modalities, for model classes that do not declare ``uses_content``.
CONTENT_MODELS = ("vbpr", "two_tower", "mmgraph", "content_knn", "content_cf")
FEATURES_FILE = "features.json"


def model_uses_content(model_name: str) -> bool:
    """True when the model reads item modalities (its class says so with ``uses_content``)."""
    from fusionrec.models.registry import model_class

    return bool(getattr(model_class(model_name), "uses_content", model_name in CONTENT_MODELS))


def features_for_run(dataset: Dataset, cfg: Any, progress: bool | None = None) -> Dataset:
    """``dataset`` with the modalities ``cfg.model`` needs (nothing to do for ID-only models).

    ``cfg`` is a :class:`fusionrec.config.RunConfig`; its ``data`` section names the
    encoders and ``data.modalities`` narrows them. The store is :func:`default_store_dir`
    (what ``fusionrec encode`` writes), so an earlier ``encode`` makes this free.
    """
    if not model_uses_content(cfg.model.name):
        return dataset
    show = bool(getattr(cfg.train, "progress", True)) if progress is None else progress
    return ensure_features(dataset, cfg.data, cfg.data.modalities, progress=show,
                           device=getattr(cfg.train, "device", None))[0]


def run_features(dataset: Dataset, cfg: Any) -> dict[str, dict[str, Any]]:
    """The run record's ``features``: every modality the model was given (``data.modalities``).

    Empty for ID-only models: they read no modality, so none belongs in their record.
    """
    if not model_uses_content(cfg.model.name):
        return {}
    return feature_records(dataset, cfg.data.modalities)


def write_features_json(records: dict[str, dict[str, Any]], model_dir: str | Path) -> Path:
    """``<model dir>/features.json``: encoder name, id, params and content hash per modality.

    ``fusionrec serve`` rebuilds the encoders of new items from it, so posted items
    are encoded by the same models (and preprocessing) the served model was trained on.
    """
    import json

    path = Path(model_dir) / FEATURES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "modalities": records}, indent=2, sort_keys=True))
    return path


def read_features_json(model_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The per-modality records of a saved model ({} for models saved before features.json existed)."""
    import json

    path = Path(model_dir) / FEATURES_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("modalities", {}))
    except (OSError, ValueError) as err:
        raise UserError(f"{FEATURES_FILE} is unreadable ({err})", str(path),
                        "re-save the model with `fusionrec train` (it rewrites features.json)") from err


def _default_for(name: str, spec: Mapping[str, Any], dataset: Dataset) -> dict[str, Any]:
    """The default encoder of a modality asked for by name (``data.modalities``) that nothing else makes."""
    from fusionrec.encoders.registry import DEFAULT_ENCODERS, available_encoders

    if name in DEFAULT_ENCODERS:
        return {"name": DEFAULT_ENCODERS[name], "params": {}}
    have = sorted({*spec, *dataset.modalities})
    raise UserError(
        f"modality {name!r} is asked for but the data has no such features and no encoder makes it",
        f"data.modalities (the data has or can encode {have})",
        f"drop it from data.modalities, or name its encoder in the data description: encoders: {{{name}: "
        f"{{name: <one of {available_encoders()}>, params: {{...}}}}}}",
    )


def _log_missing(modality: str, issues: list) -> None:
    """Items without this modality keep their others: say which, never stop the run."""
    if not issues:
        return
    more = f" (and {len(issues) - SHOWN_ISSUES} more)" if len(issues) > SHOWN_ISSUES else ""
    reasons = {i.reason for i in issues}
    if len(reasons) == 1:  # one reason for all: say it once, then the items
        shown = f"{reasons.pop()}: " + ", ".join(str(i.item_id) for i in issues[:SHOWN_ISSUES])
    else:
        shown = "; ".join(f"{i.item_id}: {i.reason}" for i in issues[:SHOWN_ISSUES])
    log.warning("%d item(s) have no %s (mask=False, they keep their other modalities): %s%s",
                len(issues), modality, shown, more)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


__all__ = [
    "build_spec_encoders",
    "default_encoder_spec",
    "default_store_dir",
    "encoder_spec",
    "ensure_features",
    "feature_records",
    "features_for_run",
    "features_hash",
    "modality_record",
    "model_uses_content",
    "normalise_encoder_spec",
    "read_features_json",
    "remember_record",
    "run_features",
    "write_features_json",
]
