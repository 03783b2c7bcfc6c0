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
from pydantic.fields import FieldInfo
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
    whats, wheres, fixes = [], [], []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        msg = e["msg"].removeprefix("Value error, ")
        wheres.append(".".join([where, *loc]))
        if e["type"] == "extra_forbidden":
            what, fix = _unknown_key(_fields_at(params_cls, loc[:-1]), loc, model)
        elif not loc:  # a rule across several fields: its message names them and what to change
            what, fix = f"{model}: {msg}", "change the parameters the message names"
        elif e["type"] == "missing":
            what, fix = f"{model}: {'.'.join(loc)} is missing", f"add {'.'.join(loc)}"
        else:
            what = f"{model}: {'.'.join(loc)}={e.get('input')!r} is not valid ({msg})"
            fix = _fix_for(params_cls, loc)
        whats.append(what)
        fixes.append(fix)
    return UserError("; ".join(whats), ", ".join(dict.fromkeys(wheres)),
                     "; ".join(dict.fromkeys(fixes)) + f" (`fusionrec models show {model}` lists them all)")


def _fields_at(params_cls: type[BaseModel], path: list[str]) -> dict[str, Any]:
    """The fields of the (nested) pydantic class found by following ``path`` from ``params_cls``."""
    cls: type[BaseModel] | None = params_cls
    for key in path:
        cls = nested_sections(cls).get(key)
        if cls is None:
            return {}
    return dict(cls.model_fields)


def _unknown_key(fields: dict[str, Any], loc: list[str], model: str) -> tuple[str, str]:
    key, valid = loc[-1], list(fields)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    owner = model if len(loc) == 1 else f"{model} {'.'.join(loc[:-1])}"
    what = f"{owner} has no parameter {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    listing = ", ".join(valid) if valid else "none: this model has no parameters"
    return what, (f"use {close[0]!r}; " if close else "") + f"valid parameters of {owner}: {listing}"


def _fix_for(params_cls: type[ModelParams], loc: list[str]) -> str:
    key = loc[0]
    field = params_cls.model_fields[key]
    choices = literal_choices(field.annotation)
    if choices and len(loc) == 1:
        return f"set {key} to one of {', '.join(map(repr, choices))}"
    if len(loc) > 1:  # inside a list, mapping or nested section: the message says which entry
        return f"correct {'.'.join(loc)} as the message says"
    kind = type_label(field.annotation) + _bounds(field.metadata)
    return f"set {key} to a {kind} (default {_field_default(field)})"


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
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
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
        rows.append(ParamRow(name, type_label(field.annotation) + _bounds(field.metadata), _field_default(field),
                             field.description or ""))
    return rows


def _field_default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is not None:
        return _default_text(field.default_factory())
    if field.default is PydanticUndefined:
        return "(required)"
    return _default_text(field.default)


def nested_sections(cls: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Fields of ``cls`` whose type is itself a pydantic class (``data.split``, a cascade's ``retriever``)."""
    nested = {}
    for name, field in cls.model_fields.items():
        for candidate in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested[name] = candidate
                break
    return nested


def _bounds(metadata: list[Any]) -> str:
    """``Field(ge=0, lt=1)`` -> ``" in [0, 1)"``; one-sided -> ``" >= 0"``; none -> ``""``."""
    low = high = None
    for m in metadata:
        for attr, sign in (("ge", "["), ("gt", "(")):
            if getattr(m, attr, None) is not None:
                low = (sign, getattr(m, attr))
        for attr, sign in (("le", "]"), ("lt", ")")):
            if getattr(m, attr, None) is not None:
                high = (sign, getattr(m, attr))
    if low and high:
        return f" in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f" {'>=' if low[0] == '[' else '>'} {low[1]}"
    if high:
        return f" {'<=' if high[0] == ']' else '<'} {high[1]}"
    return ""
