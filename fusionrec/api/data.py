"""``fusionrec.load_data``: a split Dataset from a folder, a YAML file, a preset name or a DataConfig.

The data description of a folder is ``DIR/fusionrec.yaml`` (written by
``fusionrec data init DIR``): a ``data:`` section, i.e. a
:class:`fusionrec.config.DataConfig`, whose relative paths resolve against the
folder (``root``). :func:`load_data` reads it exactly as ``--data DIR`` does on
the command line and remembers which description a returned Dataset came from,
so :meth:`fusionrec.Recommender.fit` encodes its features with the encoders that
description names, and a saved model records it.
"""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fusionrec.config import DataConfig, dataset_presets, deep_merge
from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError

DESCRIPTION_FILE = "fusionrec.yaml"
WHERE = "fusionrec.load_data(source=...)"

# Dataset -> (the DataConfig it was loaded from, the preset name or None). A weak map, so the
# Dataset class needs no new field and a dataset dropped by the user is not kept alive here.
_ORIGINS: weakref.WeakKeyDictionary[Dataset, tuple[DataConfig, str | None]] = weakref.WeakKeyDictionary()


def load_data(source: str | Path | DataConfig, **overrides: Any) -> Dataset:
    """Load, validate and split a dataset; returns a :class:`~fusionrec.data.dataset.Dataset`.

    ``source`` is one of

    * a folder holding a ``fusionrec.yaml`` data description (``fusionrec data init DIR`` writes it),
    * the path of such a YAML file,
    * a dataset preset name (``"demo"``, ``"ml100k"``, ... see ``fusionrec/configs/datasets/``),
    * a :class:`fusionrec.config.DataConfig`.

    ``overrides`` are DataConfig fields laid over the description, e.g.
    ``load_data("demo", demo={"n_users": 300, "n_items": 150})`` or
    ``load_data("shop", split={"method": "temporal"})``. Bad rows are quarantined as
    ``fusionrec data validate`` does; fatal problems raise :class:`~fusionrec.errors.UserError`.
    """
    from fusionrec.data.loading import load_dataset  # lazy: the readers are heavy

    cfg, preset = data_config(source, **overrides)
    dataset = load_dataset(cfg)
    _ORIGINS[dataset] = (cfg, preset)
    return dataset


def data_config(source: str | Path | DataConfig, **overrides: Any) -> tuple[DataConfig, str | None]:
    """The DataConfig ``source`` describes (see :func:`load_data`) and the preset it names, if any."""
    if isinstance(source, DataConfig):
        # exclude_unset keeps "which fields the caller set", which preset expansion relies on
        base, where, preset = source.model_dump(exclude_unset=True), "the DataConfig given", None
    elif isinstance(source, (str, Path)):
        base, where, preset = _read_source(source)
    else:
        raise UserError(f"load_data got a {type(source).__name__}, not a folder, YAML path, preset or DataConfig",
                        WHERE, "pass e.g. fusionrec.load_data('path/to/folder') or fusionrec.load_data('demo')")
    if overrides:
        base, where = deep_merge(base, overrides), f"{where} with overrides {sorted(overrides)}"
    return _validate(base, where), preset


def origin(dataset: Dataset) -> tuple[DataConfig, str | None] | None:
    """``(DataConfig, preset name or None)`` of a dataset returned by :func:`load_data`, else None."""
    return _ORIGINS.get(dataset)


def remember(dataset: Dataset, cfg: DataConfig, preset: str | None) -> None:
    """Record that ``dataset`` (e.g. a copy with features attached) comes from ``cfg``."""
    _ORIGINS[dataset] = (cfg, preset)


def read_description(path: str | Path) -> DataConfig:
    """Read a ``fusionrec.yaml`` data description; its relative paths resolve against its folder."""
    return _validate(_read_yaml(Path(path)), str(path))


def _read_source(source: str | Path) -> tuple[dict[str, Any], str, str | None]:
    path = Path(source).expanduser()
    if path.is_dir():
        yaml_path = path / DESCRIPTION_FILE
        if not yaml_path.is_file():
            raise UserError(
                f"folder {str(path)!r} has no data description ({DESCRIPTION_FILE})", WHERE,
                f"run `fusionrec data init {path}` to write one, then call load_data again",
            )
        return _read_yaml(yaml_path), str(yaml_path), None
    if path.is_file():
        return _read_yaml(path), str(path), None
    name = str(source)
    if name in dataset_presets():
        from fusionrec.data.loading import preset_data

        return preset_data(name), f"dataset preset {name!r}", name
    raise UserError(
        f"{name!r} is neither a folder, a YAML file nor a dataset preset", WHERE,
        f"pass a folder holding {DESCRIPTION_FILE} (write one with `fusionrec data init DIR`), "
        f"its YAML path, or one of the presets {dataset_presets()}",
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"cannot read the data description: {err}", str(path),
                        f"fix the YAML, or write a new one with `fusionrec data init {path.parent}`") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
        raise UserError("the file has no 'data:' section", str(path),
                        f"a data description is a 'data:' mapping; `fusionrec data init {path.parent}` writes one")
    section = dict(raw["data"])
    # relative paths in a description mean "inside its folder", wherever the caller runs from
    folder = path.resolve().parent
    root = section.get("root")
    section["root"] = str(folder / root) if root and not Path(str(root)).is_absolute() else str(root or folder)
    return section


def _validate(section: dict[str, Any], where: str) -> DataConfig:
    try:
        return DataConfig.model_validate(section)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in err.errors())
        raise UserError(f"invalid data description: {problems}", where,
                        f"correct those fields; valid fields are {sorted(DataConfig.model_fields)}") from None
