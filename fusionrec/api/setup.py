"""Checks and configuration for :class:`fusionrec.Recommender`: model name, parameters, run config.

The run configuration is resolved the way ``fusionrec train`` resolves it (model
defaults, then a dataset preset's per-model tuning, then the caller's values), so a
model built from Python has the same parameters as one built from the command line.
"""
from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError

from fusionrec.config import (
    DataConfig,
    RunConfig,
    TrainConfig,
    deep_merge,
    resolve_config,
)
from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError
from fusionrec.models.registry import available_models, validate_params


def check_model(model: str) -> None:
    """A UserError, with the closest registered name, when ``model`` is not a registered model."""
    names = available_models()
    if model in names:
        return
    close = difflib.get_close_matches(str(model), names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UserError(f"unknown model {model!r}{hint}", "fusionrec.Recommender(model=...)",
                    f"use one of {names}; `fusionrec models` describes them")


def check_auto(params: dict[str, Any]) -> dict[str, Any]:
    """``Recommender("auto", budget=600, candidates=[...], blend=True)``: the options of
    :func:`fusionrec.train.auto.select_model`."""
    unknown = sorted(set(params) - {"budget", "candidates", "blend"})
    if unknown:
        raise UserError(f"Recommender('auto') takes budget, candidates and blend, not {unknown}",
                        "fusionrec.Recommender('auto', ...)", "e.g. fusionrec.Recommender('auto', budget=600)")
    return {"budget": float(params.get("budget", 600.0)), "candidates": params.get("candidates"),
            "blend": bool(params.get("blend", True))}


def check_params(model: str, params: dict[str, Any]) -> None:
    """Validate ``params`` against the model's typed ``Params`` (unknown keys, types, allowed values)."""
    validate_params(model, params, where=f"fusionrec.Recommender({model!r}, ...)")


def uses_content(model: str) -> bool:
    """True when the model reads item modalities, which are then taken from the feature store."""
    from fusionrec.encoders.ensure import model_uses_content

    return model_uses_content(model)


def data_origin(dataset: Dataset) -> tuple[DataConfig, str | None]:
    """The description ``dataset`` was loaded from, or a bare one named after it (built in Python)."""
    from fusionrec.api.data import origin

    found = origin(dataset)
    if found is not None:
        return found
    # a Dataset built in code (Dataset.from_frames): no files to re-read, default encoders
    return DataConfig(name=dataset.name, format="auto"), None


def build_run_config(model: str, params: dict[str, Any], dataset: Dataset, train: dict[str, Any]) -> RunConfig:
    """The RunConfig of fitting ``model`` on ``dataset``: CLI resolution plus the caller's values."""
    data_cfg, preset = data_origin(dataset)
    base = resolve_config(dataset=preset, model=model).model_dump(mode="json")
    base["data"] = data_cfg.model_dump(mode="json")  # the description actually loaded, not the preset's
    layered = deep_merge(base, {"model": {"params": params}})
    try:
        layered["train"] = TrainConfig.model_validate(deep_merge(base["train"], train)).model_dump(mode="json")
    except ValidationError as err:
        raise _train_error(err) from None
    return RunConfig.model_validate(layered)


def _train_error(err: ValidationError) -> UserError:
    """Unknown settings get the list of valid ones (and the closest); bad values get their default."""
    fields = TrainConfig.model_fields
    problems, fixes = [], []
    for e in err.errors():
        key = str(e["loc"][0]) if e["loc"] else "train"
        if e["type"] == "extra_forbidden":
            problems.append(f"{key!r} is not a training setting")
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
            fixes.append((f"use {close[0]!r}; " if close else "") + f"training settings are {sorted(fields)}")
        else:
            problems.append(f"{key}: {e['msg']}")
        if key in fields:
            fixes.append(f"give {key} a valid value (default {fields[key].get_default(call_default_factory=True)!r})")
    return UserError(f"invalid training setting(s): {'; '.join(problems)}", "fusionrec.Recommender.fit(...)",
                     "; ".join(dict.fromkeys(fixes)) or f"training settings are {sorted(fields)}")
