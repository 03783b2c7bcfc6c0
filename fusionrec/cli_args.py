"""The data arguments every command shares: ``--data``, ``--dataset``, ``--config``, ``--set``.

One dataset description serves every command. ``--data DIR`` reads ``DIR/fusionrec.yaml``
(written by ``fusionrec data init DIR``; ``--data some/file.yaml`` reads that file) as the
``data:`` section of the run, with ``data.root`` set to the file's folder so that every
relative path in it resolves there. A folder without ``fusionrec.yaml`` is inspected in
memory (the same guesses ``data init`` would write) and used with a note on stderr; when the
inspection cannot decide the user or item column the command stops and names
``fusionrec data init DIR``, which writes the guesses down for editing.

Resolution order of a run (later wins): model defaults, then the dataset preset *or* the
description, then ``--config run.yaml``, then ``--set section.key=value``.
"""
from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fusionrec import output
from fusionrec.config import (
    DataConfig,
    RunConfig,
    dataset_presets,
    parse_overrides,
    resolve_config,
)
from fusionrec.errors import UserError

DESCRIPTION_FILE = "fusionrec.yaml"
_YAML_SUFFIXES = (".yaml", ".yml")

DATA_HELP = (f"dataset folder (reads DIR/{DESCRIPTION_FILE}, written by `fusionrec data init DIR`) or a "
             f"description YAML; a folder without {DESCRIPTION_FILE} is inspected in memory and used "
             "with a note")


def add_data_arguments(parser: argparse.ArgumentParser, *, run_file: bool = True, overrides: bool = True,
                       presets: bool = True, data_help: str = DATA_HELP) -> None:
    """Add ``--data`` and (unless switched off) ``--dataset``, ``--config`` and ``--set`` to ``parser``."""
    group = parser.add_argument_group("data")
    group.add_argument("--data", metavar="DIR_OR_YAML", help=data_help)
    if presets:
        group.add_argument("--dataset", metavar="PRESET",
                           help=f"dataset preset ({', '.join(dataset_presets())}); an existing folder here "
                                "works like --data")
    if run_file:
        group.add_argument("--config", metavar="RUN_YAML", help="run YAML (data/model/train/eval sections)")
    if overrides:
        group.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                           help="override, e.g. --set train.lr=0.001 --set data.path=mydir (repeatable)")


def run_config_from_args(args: argparse.Namespace, model: str | None = None, *,
                         command: str = "fusionrec") -> RunConfig:
    """The RunConfig that ``--data/--dataset/--config/--set`` (and ``model``) describe.

    Raises :class:`UserError` when no dataset is named, when a description cannot be read,
    or when the merged configuration is invalid (with the offending key and the valid ones).
    """
    data_arg: str | None = getattr(args, "data", None)
    dataset: str | None = getattr(args, "dataset", None)
    config: str | None = getattr(args, "config", None)
    overrides = list(getattr(args, "overrides", None) or [])
    if data_arg and dataset:
        raise UserError("both --data and --dataset were given", command,
                        "keep one: --data DIR for your own folder, --dataset PRESET for a built-in preset")
    description: dict[str, Any] | None = None
    if data_arg:
        description = description_section(data_arg, option="--data")
    elif dataset and dataset not in dataset_presets() and Path(dataset).expanduser().exists():
        # a folder (or description file) given to --dataset is what --data is for
        description, dataset = description_section(dataset, option="--dataset"), None
    elif dataset is None and config is None:
        folder = _path_override(overrides)
        if folder is not None and Path(folder).expanduser().is_dir():
            # `--set data.path=mydir` alone: the folder is the dataset, as with --data mydir
            description = description_section(folder, option="--set data.path")
            overrides = [o for o in overrides if not _is_path_override(o)]
        elif folder is None:
            raise UserError("no dataset given", command,
                            "pass --data DIR (a folder with your files), --dataset PRESET "
                            f"({', '.join(dataset_presets())}) or --config run.yaml")
    try:
        return resolve_config(config, overrides, dataset=dataset, model=model, data=description)
    except ValidationError as err:
        raise _invalid_config(err, _blame(err, overrides, data_arg or dataset or config or "--set")) from None
    except FileNotFoundError as err:
        raise UserError(str(err), "--config", "pass the path of an existing run YAML file") from None
    except (ValueError, KeyError) as err:
        raise UserError(str(err), f"{command} arguments", "check --config / --set / --model") from None


def add_device_override(args: argparse.Namespace) -> None:
    """``--device X`` becomes ``--set train.device=X``; a name that is no device fails here, naming the flag."""
    device = getattr(args, "device", None)
    if not device:
        return
    from fusionrec.config import DEVICE_CHOICES, check_device_spec

    try:
        check_device_spec(device)
    except ValueError:
        raise UserError(f"--device {device!r} is not a device name", f"--device {device}",
                        f"use one of {', '.join(DEVICE_CHOICES)} (e.g. --device cpu; auto takes a GPU when "
                        "there is one)") from None
    args.overrides = [*args.overrides, f"train.device={device}"]


def data_config_from_args(args: argparse.Namespace) -> DataConfig | None:
    """The DataConfig of ``--data`` / ``--dataset`` alone (None when neither is given)."""
    data_arg: str | None = getattr(args, "data", None)
    dataset: str | None = getattr(args, "dataset", None)
    if data_arg and dataset:
        raise UserError("both --data and --dataset were given", "arguments",
                        "keep one: --data DIR for your own folder, --dataset PRESET for a built-in preset")
    if data_arg or (dataset and dataset not in dataset_presets() and Path(dataset).expanduser().exists()):
        return load_description(data_arg or dataset or "", option="--data" if data_arg else "--dataset")
    if dataset:
        if dataset not in dataset_presets():
            raise UserError(f"unknown dataset preset {dataset!r}", "--dataset",
                            f"use one of {dataset_presets()}, or pass your own folder with --data DIR")
        from fusionrec.data.loading import expand_preset

        return expand_preset(DataConfig(name=dataset))
    return None


def dataset_for_evaluation(args: argparse.Namespace, loaded: Any) -> Any:
    """The data ``fusionrec evaluate`` scores a saved model on: ``--data``/``--dataset`` when given
    (in the model's id space; unknown users and items left out, with a note), else the model's own."""
    cfg = data_config_from_args(args)
    if cfg is None:
        return loaded.dataset
    from fusionrec.data.loading import align_to, load_dataset

    # load_dataset splits as the description says, so the folder's own train part is what gets masked
    dataset, dropped = align_to(load_dataset(cfg), loaded.dataset)
    if len(dataset.interactions) == 0:
        raise UserError(f"no interaction of {cfg.name!r} involves a user and an item the model knows",
                        getattr(args, "data", None) or getattr(args, "dataset", None),
                        "evaluate on the data the model was trained on, or train on this folder: "
                        f"fusionrec train --data {getattr(args, 'data', None) or cfg.root or cfg.name}")
    if dropped:
        output.info(f"note: {dropped} interaction(s) of users or items the model never saw are left out")
    return dataset


# ---------------------------------------------------------------------- descriptions
def description_path(value: str | Path) -> Path:
    """``DIR`` -> ``DIR/fusionrec.yaml``; a ``.yaml`` file stays itself."""
    path = Path(value).expanduser()
    return path / DESCRIPTION_FILE if path.is_dir() else path


def load_description(value: str | Path, option: str = "--data") -> DataConfig:
    """The DataConfig a description (a folder or its YAML) holds, with ``root`` set to its folder.

    ``load_dataset(load_description("my_shop"))`` loads a described folder from Python. A folder
    without ``fusionrec.yaml`` is inspected in memory (see :mod:`fusionrec.data.describe`).
    """
    return DataConfig.model_validate(description_section(value, option))


def description_section(value: str | Path, option: str = "--data") -> dict[str, Any]:
    """Like :func:`load_description`, as the dict of the fields the description sets (for merging)."""
    path = Path(value).expanduser()
    if not path.exists():
        raise UserError(f"{option} {value}: no such folder or file", str(path.absolute()),
                        f"pass a dataset folder, e.g. {option} ./my_shop (create its description with "
                        "`fusionrec data init ./my_shop`)")
    if path.is_dir() and not (path / DESCRIPTION_FILE).is_file():
        return _inspect_in_memory(path)
    file = description_path(path)
    if file.suffix.lower() not in _YAML_SUFFIXES:
        raise UserError(f"{option} takes a dataset folder or its {DESCRIPTION_FILE}, not a data file",
                        str(file), f"pass the folder: {option} {file.parent} (describe it first with "
                                   f"`fusionrec data init {file.parent}`)")
    data = read_description_file(file)
    root = Path(str(data.get("root") or "."))
    data["root"] = str((root if root.is_absolute() else file.parent / root).resolve())
    return data


def read_description_file(file: Path) -> dict[str, Any]:
    """Parse a description YAML into its ``data:`` mapping, checked against :class:`DataConfig`."""
    try:
        content = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{file} line {mark.line + 1}" if mark is not None else str(file)
        raise UserError(f"the data description is not valid YAML: {getattr(err, 'problem', err)}", where,
                        "fix the YAML at that line, or write it again with "
                        f"`fusionrec data init {file.parent} --force`") from None
    if not isinstance(content, dict) or not isinstance(content.get("data", {}), dict):
        raise UserError("the data description must be a mapping with a 'data:' section", str(file),
                        f"write it again with `fusionrec data init {file.parent} --force`")
    # the file is a `data:` section; a bare mapping of DataConfig fields is accepted too
    data = dict(content["data"]) if "data" in content else dict(content)
    try:
        DataConfig.model_validate({k: v for k, v in data.items() if k != "root"})
    except ValidationError as err:
        raise _invalid_config(err, str(file), prefix="data") from None
    return data


def _inspect_in_memory(folder: Path) -> dict[str, Any]:
    # lazy: reads the folder's tables
    from fusionrec.data.describe import describe_folder

    description = describe_folder(folder)
    if description.blocking:
        raise UserError(f"{folder} has no {DESCRIPTION_FILE} and its files could not be read unaided: "
                        + "; ".join(description.blocking), str(folder),
                        f"run `fusionrec data init {folder}`, fix the TODO lines of {folder / DESCRIPTION_FILE}, "
                        "and run this command again")
    output.info(f"note: {folder} has no {DESCRIPTION_FILE}; using the roles guessed now "
                f"({description.one_line()}). Run `fusionrec data init {folder}` to write them down and review "
                "them.")
    data = dict(description.data)
    data["root"] = str(folder.resolve())
    return data


# ---------------------------------------------------------------------- helpers
def _is_path_override(pair: str) -> bool:
    return pair.split("=", 1)[0].strip() == "data.path"


def _path_override(overrides: list[str]) -> str | None:
    try:
        value = parse_overrides(overrides).get("data", {})
    except ValueError:
        return None  # reported with the other override problems by resolve_config
    path = value.get("path") if isinstance(value, dict) else None
    return str(path) if path else None


def _blame(err: ValidationError, overrides: list[str], default: str) -> str:
    """Point at the --set that produced the bad key, else at the file or folder it came from."""
    key = ".".join(str(p) for p in err.errors()[0]["loc"])
    for pair in overrides:
        if pair.split("=", 1)[0].strip() == key:
            return f"--set {pair}"
    return default


def _invalid_config(err: ValidationError, where: str, prefix: str = "") -> UserError:
    """A pydantic error as one UserError: which key, what is wrong, and the closest valid key."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = ".".join([prefix, *loc] if prefix else loc)
    if first["type"] == "extra_forbidden":
        section = _section_model(loc[:-1], prefix)
        valid = sorted(section.model_fields) if section is not None else []
        close = difflib.get_close_matches(loc[-1], valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return UserError(f"unknown setting {key!r}", where, f"{hint}valid keys here: {', '.join(valid)}")
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return UserError(f"invalid setting {key!r}: {first['msg']}{more}", where,
                     f"correct {key} (got {first.get('input')!r})")


def _section_model(loc: list[str], prefix: str) -> type | None:
    model: Any = DataConfig if prefix == "data" else RunConfig
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if annotation is None or not hasattr(annotation, "model_fields"):
            return None
        model = annotation
    return model


__all__ = [
    "DATA_HELP", "DESCRIPTION_FILE", "add_data_arguments", "data_config_from_args", "dataset_for_evaluation",
    "description_path", "description_section", "load_description", "read_description_file", "run_config_from_args",
]
