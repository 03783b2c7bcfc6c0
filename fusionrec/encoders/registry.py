"""Encoder registry: names used in configs and on the CLI -> encoder classes (imported lazily).

Defaults of each encoder live in ``fusionrec/configs/encoders/<name>.yaml``
(not in code), merged under the parameters given by the caller:

>>> enc = build_encoder("minilm", template="{title}. {plot}")
>>> enc = build_encoder("efficientnet-lite0", batch_size=32)   # unknown keys -> UserError
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from fusionrec.config import load_yaml_resource
from fusionrec.encoders.base import Encoder
from fusionrec.errors import UserError

_ENCODERS: dict[str, str] = {
    "minilm": "fusionrec.encoders.text:MiniLMEncoder",
    "sentence-transformer": "fusionrec.encoders.text:SentenceTransformerEncoder",
    "efficientnet-lite0": "fusionrec.encoders.image:EfficientNetLiteEncoder",
    "clip-image": "fusionrec.encoders.clip:CLIPImageEncoder",
    "clip-text": "fusionrec.encoders.clip:CLIPTextEncoder",
    "logmel": "fusionrec.encoders.audio:LogMelAudioEncoder",
    "attributes": "fusionrec.encoders.attributes:AttributeEncoder",
}

# What `fusionrec encode --modalities text,image` uses when no encoder is named.
DEFAULT_ENCODERS: dict[str, str] = {
    "text": "minilm",
    "image": "efficientnet-lite0",
    "audio": "logmel",
    "attribute": "attributes",
}


def register(name: str, target: str) -> None:
    """Add an encoder: ``target`` is ``"package.module:ClassName"`` (an :class:`Encoder` subclass)."""
    if ":" not in target:
        raise ValueError(f"encoder target {target!r} must look like 'package.module:ClassName'")
    _ENCODERS[name] = target


def available_encoders() -> list[str]:
    return sorted(_ENCODERS)


def encoder_class(name: str) -> type[Encoder]:
    if name not in _ENCODERS:
        raise UserError(
            f"unknown encoder {name!r}",
            fix=f"use one of {available_encoders()} (or register your own with fusionrec.encoders.register)",
        )
    module_name, cls_name = _ENCODERS[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, Encoder)):
        raise TypeError(f"{_ENCODERS[name]} is not an Encoder subclass")
    return cls


def default_params(name: str) -> dict[str, Any]:
    """The YAML defaults of an encoder (empty when it has no defaults file)."""
    if name not in _ENCODERS:
        encoder_class(name)  # raises the helpful error
    return load_yaml_resource(f"encoders/{name}.yaml", missing_ok=True)


def build_encoder(name: str, **params: Any) -> Encoder:
    """Instantiate encoder ``name`` with its YAML defaults overridden by ``params``."""
    cls = encoder_class(name)
    merged = {**default_params(name), **params}
    accepted = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(merged) - set(accepted) - {"self"})
        if unknown:
            raise UserError(
                f"encoder {name!r} has no parameter(s) {unknown}",
                fix=f"valid parameters: {sorted(set(accepted) - {'self'})}",
            )
    encoder = cls(**merged)
    # what was asked for (not the YAML defaults): the run records it, and serving rebuilds the
    # same encoder from it (defaults come from the same YAML files there)
    encoder.spec = {"name": name, "params": dict(params)}
    return encoder


def build_encoders(spec: Mapping[str, str | Mapping[str, Any] | None] | Sequence[str]) -> list[Encoder]:
    """Encoders from a config section: ``{modality: name | {name: ..., **params} | None}``.

    ``None`` (or a list of modality names) picks the default encoder of that modality::

        build_encoders({"text": {"name": "minilm", "template": "{title}. {plot}"}, "image": None})
        build_encoders(["text", "image"])

    A key that is not a modality kind names the produced modality (``clip_image: clip-image``).
    """
    from fusionrec.data.dataset import MODALITY_KINDS

    if not isinstance(spec, Mapping):
        spec = {m: None for m in spec}
    encoders: list[Encoder] = []
    for modality, entry in spec.items():
        if entry is None or isinstance(entry, str):
            name, params = entry, {}
        else:
            params = dict(entry)
            name = params.pop("name", None)
        name = name or DEFAULT_ENCODERS.get(modality)
        if name is None:
            raise UserError(
                f"no encoder named for modality {modality!r} and it has no default",
                fix=f"give one, e.g. {modality}: {{name: clip-image, model_path: ...}}; defaults exist for "
                f"{sorted(DEFAULT_ENCODERS)}",
            )
        if modality not in MODALITY_KINDS:
            params.setdefault("modality", modality)
        encoders.append(build_encoder(name, **params))
    return encoders
