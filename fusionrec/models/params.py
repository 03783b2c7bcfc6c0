"""Typed model hyper-parameters: the base class, validation with clear errors, and descriptions.

Every model declares its hyper-parameters once, as a nested ``Params`` class
(a :class:`ModelParams`: pydantic, ``extra="forbid"``, each field typed with a
default and a one-line ``description``). This module holds what all of them
share and imports neither torch nor any model, so validating a run's
configuration, ``fusionrec models`` and the configuration reference stay cheap.

* :func:`check_params` validates a dict against a ``Params`` class and turns
  pydantic's errors into one :class:`~fusionrec.errors.UserError` that names
  the key, the value, the allowed values and, for an unknown key, the closest
  valid one (``embeding_size`` -> ``embedding_size``);
* :func:`param_rows` / :func:`type_label` describe the fields for
  ``fusionrec models show`` and ``docs/reference/configuration.md``.
"""
from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticUndefined

from fusionrec.errors import UserError


class ModelParams(BaseModel):
    """Base of every model's ``Params``: unknown keys are errors, defaults are validated, values are frozen."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


def _modality_list(value: Any) -> Any:
    """``"text,image"`` (what ``--set`` gives) -> ``["text", "image"]``; ``"all"``/``""`` -> None (all)."""
    if isinstance(value, str):
        if value.strip() in ("", "all", "null", "none"):
            return None
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


# Item modalities a model reads; None = every modality of the run's data.modalities.
Modalities = Annotated[list[str] | None, BeforeValidator(_modality_list)]

FeatureNorm = Literal["standard", "l2", "center_l2", "none"]


# ---------------------------------------------------------------------- validation
def check_params(params_cls: type[ModelParams], params: Mapping[str, Any] | BaseModel | None,
                 model: str, where: str = "model.params") -> ModelParams:
    """``params`` validated against ``params_cls`` (defaults filled in), or a UserError naming every problem."""
    if isinstance(params, params_cls):
        return params
    if isinstance(params, BaseModel):
        params = params.model_dump()
    if params is not None and not isinstance(params, Mapping):
        raise UserError(f"{model}: parameters must be a mapping of name -> value, got {type(params).__name__}",
                        where, f"write them as {where}.KEY=VALUE or a YAML mapping under {where}")
    try:
        return params_cls.model_validate(dict(params or {}))
    except ValidationError as err:
        raise _user_error(err, params_cls, model, where) from None


def _user_error(err: ValidationError, params_cls: type[ModelParams], model: str, where: str) -> UserError:
    valid = list(params_cls.model_fields)
    whats, wheres, fixes = [], [], []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        key = loc[0] if loc else ""
        path = ".".join([where, *loc]) if loc else where
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            whats.append(f"{model} has no parameter {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            listing = ", ".join(valid) if valid else "none: this model has no parameters"
            fixes.append((f"use {close[0]!r}; " if close else "") + f"valid parameters of {model}: {listing}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            whats.append(f"{model}: {'.'.join(loc) or 'parameters'}={e.get('input')!r} is not valid ({msg})")
            fixes.append(_fix_for(params_cls, key, loc))
        wheres.append(path)
    return UserError("; ".join(whats), ", ".join(dict.fromkeys(wheres)),
                     "; ".join(dict.fromkeys(fixes)) + f" (`fusionrec models show {model}` lists them all)")


def _fix_for(params_cls: type[ModelParams], key: str, loc: list[str]) -> str:
    field = params_cls.model_fields.get(key)
    if field is None:
        return f"check {'.'.join(loc)}"
    choices = literal_choices(field.annotation)
    if choices and len(loc) == 1:
        return f"set {key} to one of {', '.join(map(repr, choices))}"
    return f"set {key} to a {type_label(field.annotation)} (default {_default_text(field.default)})"


# ---------------------------------------------------------------------- descriptions
def literal_choices(annotation: Any) -> tuple[Any, ...]:
    """The values of a Literal (also inside ``X | None``); empty for other types."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) is Literal:
                return typing.get_args(arg)
    return ()


def type_label(annotation: Any) -> str:
    """Short readable type: ``int``, ``float | null``, ``linear | mlp``, ``list[int]``, ``dict[str, float]``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is Annotated:
        return type_label(args[0])
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_label(a) for a in args)
    if origin in (list, tuple, dict, set):
        return f"{origin.__name__}[{', '.join(type_label(a) for a in args if a is not Ellipsis)}]"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, BaseModel):
        return str(value.model_dump(mode="json", exclude_defaults=True) or "{}")
    return str(value)


@dataclass(frozen=True)
class ParamRow:
    """One documented field: name, type label, default (as text) and its one-line meaning."""

    name: str
    type: str
    default: str
    description: str


def param_rows(params_cls: type[BaseModel]) -> list[ParamRow]:
    """Every field of a pydantic class, in declaration order."""
    rows = []
    for name, field in params_cls.model_fields.items():
        if field.default is PydanticUndefined and field.default_factory is not None:
            default = field.default_factory()
        else:
            default = field.default
        rows.append(ParamRow(name, type_label(field.annotation), _default_text(default),
                             field.description or ""))
    return rows
