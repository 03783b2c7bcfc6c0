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

from pydantic import ValidationError

from fusionrec.cli_args import DESCRIPTION_FILE, description_section
from fusionrec.config import DataConfig, dataset_presets, deep_merge
from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError

WHERE = "fusionrec.load_data(source=...)"

# Dataset -> (the DataConfig it was loaded from, the preset name or None). A weak map, so the
# Dataset class needs no new field and a dataset dropped by the user is not kept alive here.
_ORIGINS: weakref.WeakKeyDictionary[Dataset, tuple[DataConfig, str | None]] = weakref.WeakKeyDictionary()


def load_data(source: str | Path | DataConfig, **overrides: Any) -> Dataset:
    """Load, validate and split a dataset; returns a :class:`~fusionrec.data.dataset.Dataset`.

    ``source`` is one of

    * a folder holding a ``fusionrec.yaml`` data description (``fusionrec data init DIR`` writes it);
      a folder without one is inspected in memory, as ``--data DIR`` does, with a note on stderr,
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


def _read_source(source: str | Path) -> tuple[dict[str, Any], str, str | None]:
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() not in (".yaml", ".yml"):
        raise UserError(
            f"load_data takes a dataset folder or its {DESCRIPTION_FILE}, not a data file", str(path),
            f"pass the folder, fusionrec.load_data({str(path.parent)!r}) (describe it first with "
            f"`fusionrec data init {path.parent}`)",
        )
    if path.exists():
        # the reader behind every command's --data (an undescribed folder is inspected in memory)
        return description_section(path, option="fusionrec.load_data"), str(path), None
    name = str(source)
    if name in dataset_presets():
        from fusionrec.data.loading import preset_data

        return preset_data(name), f"dataset preset {name!r}", name
    raise UserError(
        f"{name!r} is neither a folder, a YAML file nor a dataset preset", WHERE,
        f"pass a folder holding {DESCRIPTION_FILE} (write one with `fusionrec data init DIR`), "
        f"its YAML path, or one of the presets {dataset_presets()}",
    )


def _validate(section: dict[str, Any], where: str) -> DataConfig:
    try:
        return DataConfig.model_validate(section)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in err.errors())
        raise UserError(f"invalid data description: {problems}", where,
                        f"correct those fields; valid fields are {sorted(DataConfig.model_fields)}") from None
