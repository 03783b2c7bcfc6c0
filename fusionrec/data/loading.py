"""``load_dataset(cfg)``: one entry point from a DataConfig to a split Dataset.

Order of work: expand a preset (``fusionrec/configs/datasets/<name>.yaml``) ->
read and validate the files (bad rows quarantined, see
:mod:`fusionrec.data.validate`) -> k-core filter -> split (``predefined`` keeps
the file's own split).

Paths may start with ``shared://``: they are resolved inside the shared
datasets folder, which is ``$FUSIONREC_SHARED_DATA`` or the repository's
sibling ``../shared/data``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from fusionrec.config import DataConfig, dataset_presets, deep_merge, load_yaml_resource
from fusionrec.data.dataset import Dataset
from fusionrec.data.sources import (
    DataSource,
    detect_format,
    mmrec_source,
    recbole_source,
    table_source,
)
from fusionrec.data.split import apply_split_config, kcore_filter
from fusionrec.data.validation import ValidationReport, summarise, validate_source
from fusionrec.errors import UserError

log = logging.getLogger(__name__)

SHARED_PREFIX = "shared://"
SHARED_ENV = "FUSIONREC_SHARED_DATA"
# presets that read ../shared/data (``demo`` is generated)
SHARED_PRESETS = ("amazon-baby", "lastfm2k", "ml100k-mmrec", "ml100k", "ml1m")


def _shared_candidates() -> list[Path]:
    env = os.environ.get(SHARED_ENV)
    if env:
        return [Path(env).expanduser()]
    repo = Path(__file__).resolve().parents[2]
    cands = [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    return list(dict.fromkeys(c.resolve() for c in cands))


def shared_data_root() -> Path:
    """The shared datasets folder; a UserError says where it looked and how to point at it."""
    cands = _shared_candidates()
    for cand in cands:
        if cand.is_dir():
            return cand
    raise UserError(
        "the shared datasets folder was not found",
        "looked in: " + ", ".join(str(c) for c in cands),
        f"set {SHARED_ENV}=/path/to/shared/data (the folder holding ml100k/, ml1m/, lastfm2k/, amazon-baby/)",
    )


def resolve_path(value: str | Path | None, base: Path | None = None) -> Path | None:
    """Resolve ``shared://...`` against the shared folder and relative paths against ``base``/cwd."""
    if value is None or value == "":
        return None
    text = str(value)
    if text.startswith(SHARED_PREFIX):
        path = shared_data_root() / text[len(SHARED_PREFIX):]
        if not path.exists():
            raise UserError("shared dataset file not found", str(path),
                            f"check that {shared_data_root()} is the complete shared data folder")
        return path
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None and not path.exists() and (base / path).exists():
        return base / path
    return path


def preset_data(name: str) -> dict[str, Any]:
    """The ``data:`` section of a dataset preset."""
    if name not in dataset_presets():
        raise UserError(f"unknown dataset preset {name!r}", "data.name",
                        f"use one of {dataset_presets()} or give data.format and data.path")
    return load_yaml_resource(f"datasets/{name}.yaml").get("data", {})


def expand_preset(cfg: DataConfig) -> DataConfig:
    """Fill a config from its preset when it names one without saying how to read it.

    ``format: shared`` always means "read preset ``name``"; a config that names a
    preset but never set ``format`` (e.g. ``DataConfig(name="ml100k")``) gets the
    preset too. Fields the caller did set win over the preset's.
    """
    explicit = cfg.model_dump(exclude_unset=True)
    use_preset = cfg.format == "shared" or ("format" not in explicit and cfg.name in dataset_presets()
                                            and cfg.name != "demo")
    if not use_preset:
        return cfg
    base = preset_data(cfg.name)
    if cfg.format == "shared":
        explicit.pop("format", None)
    return DataConfig.model_validate(deep_merge(base, explicit))


def _resolve_features(features: dict[str, Any], base: Path | None) -> dict[str, dict[str, Any]]:
    out = {}
    for name, spec in features.items():
        spec = {"path": spec} if isinstance(spec, (str, Path)) else dict(spec)
        for key in ("path", "missing", "ids"):
            if spec.get(key):
                spec[key] = str(_resolve_under(spec[key], base))
        out[name] = spec
    return out


def description_root(cfg: DataConfig) -> Path | None:
    """The folder a description's relative paths resolve against (``data.root``), or None."""
    if not cfg.root:
        return None
    root = resolve_path(cfg.root)
    assert root is not None
    if not root.is_dir():
        raise UserError("data.root is not a folder", str(root),
                        "set data.root to the dataset folder (the folder holding fusionrec.yaml)")
    return root


def _resolve_under(value: str | Path | None, root: Path | None) -> Path | None:
    """Relative paths of a description with a root live inside that root, wherever the cwd is."""
    if value is None or value == "":
        return None
    text = str(value)
    if root is not None and not text.startswith(SHARED_PREFIX) and not Path(text).expanduser().is_absolute():
        return root / text
    return resolve_path(text, root)


def source_from_config(cfg: DataConfig) -> DataSource:
    """A DataSource for csv/parquet/jsonl/mmrec/recbole/auto configs (paths resolved).

    With ``cfg.root`` (a description written by ``fusionrec data init``) every relative path,
    media patterns included, resolves against that folder; otherwise against the current
    directory, falling back to the interaction file's folder.
    """
    root = description_root(cfg)
    if cfg.path is None:
        raise UserError(f"data.path is not set for format {cfg.format!r}", "data.path",
                        "set data.path to the interaction file or dataset folder (or use a preset name)")
    path = _resolve_under(cfg.path, root)
    assert path is not None
    base = root or (path if path.is_dir() else path.parent)
    items_path = _resolve_under(cfg.items_path, base)
    users_path = _resolve_under(cfg.users_path, base)
    item_columns = dict(cfg.item_columns)
    if item_columns.get("id_map"):
        item_columns["id_map"] = str(_resolve_under(item_columns["id_map"], base))
    features = _resolve_features(cfg.features, base)
    fmt = cfg.format
    if fmt == "auto":
        if not path.exists():
            raise UserError("data path not found", str(path), "set data.path to an existing file or folder")
        fmt = detect_format(path)
    if fmt == "mmrec":
        source = mmrec_source(path, cfg.name, features or None, items_path, item_columns, cfg.columns)
    elif fmt == "recbole":
        source = recbole_source(path, cfg.name, cfg.columns, item_columns, features)
    elif fmt in ("csv", "parquet", "jsonl"):
        source = table_source(path, cfg.columns, items_path, item_columns, features, cfg.name,
                              None if path.is_dir() else fmt, users_path=users_path)
    else:
        raise UserError(f"format {fmt!r} cannot be read from files", "data.format",
                        "use csv, parquet, jsonl, mmrec, recbole, auto, demo, synthetic or shared")
    if users_path is not None:  # mmrec/recbole sources find their own user file; the description wins
        source.users_path = users_path
    if cfg.user_columns:
        source.user_columns = {**source.user_columns, **cfg.user_columns}
    if root is not None:
        source.root = root  # media patterns in the description are relative to its folder
    source.repeats = cfg.repeats
    source.unknown_items = cfg.unknown_items
    return source


def _log_report(report: ValidationReport) -> None:
    # quarantined rows are worth a warning; expected gaps (missing posters) only at info level
    for issue in report.issues:
        if issue.severity == "error":
            log.warning("%s: %s (%s)", issue.code, issue.message, issue.where)
        elif issue.severity == "warning":
            log.info("%s: %s (%s)", issue.code, issue.message, issue.where)


def load_dataset_with_report(
    cfg: DataConfig, quarantine_dir: str | Path | None = None
) -> tuple[Dataset, ValidationReport]:
    """Like :func:`load_dataset` and also return the validation report (written to ``quarantine_dir``)."""
    cfg = expand_preset(cfg)
    if cfg.format == "demo":
        # imported lazily: only the demo needs the generator
        from fusionrec.data.demo import make_demo_dataset

        dataset = make_demo_dataset(**cfg.demo)
        report = ValidationReport(dataset.name, "demo")
    elif cfg.format == "synthetic":
        from fusionrec.data.synthetic import make_synthetic_dataset

        dataset = make_synthetic_dataset(**cfg.synthetic)
        report = ValidationReport(dataset.name, "synthetic")
    else:
        source = source_from_config(cfg)
        dataset, report = validate_source(source, quarantine_dir)
        report.raise_if_fatal()
        _log_report(report)
        assert dataset is not None
    if cfg.kcore and cfg.kcore > 1:
        dataset = kcore_filter(dataset, cfg.kcore)
    split = cfg.split
    # A file that ships its own split (MMRec x_label, a split column, RecBole benchmark files)
    # keeps it unless the config explicitly asks for another method: SplitConfig's default
    # 'random' must not silently replace a benchmark's official split.
    explicit = "split" in cfg.model_fields_set and "method" in split.model_fields_set
    if dataset.has_split and not explicit:
        log.info("keeping the split that %s ships with (set data.split.method to re-split)", dataset.name)
    else:
        dataset = apply_split_config(dataset, split)
    report.stats.update(summarise(dataset))
    return dataset, report


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load, validate, k-core filter and split the dataset a DataConfig describes.

    ``cfg.format``: ``demo`` (synthetic shop), ``shared`` (preset ``cfg.name``),
    ``csv``/``parquet``/``jsonl`` (with ``columns``/``items_path``/``item_columns``/
    ``features``), ``mmrec``, ``recbole`` or ``auto``. Bad rows are quarantined (see
    :func:`fusionrec.data.validate.load_validated` to get the report); fatal
    problems raise :class:`UserError`.
    """
    return load_dataset_with_report(cfg)[0]


def align_to(dataset: Dataset, reference: Dataset) -> tuple[Dataset, int]:
    """``dataset``'s interactions in ``reference``'s user and item id spaces (e.g. a saved model's).

    Ids are matched as strings; interactions of users or items ``reference`` does not know are
    left out and counted (a model cannot score what it never saw). The result keeps
    ``reference``'s item table and modalities, so the model scores it as it was trained.
    """
    users = pd.Index([str(u) for u in reference.user_ids]).get_indexer([str(u) for u in dataset.user_ids])
    items = pd.Index([str(i) for i in reference.item_ids]).get_indexer([str(i) for i in dataset.item_ids])
    inter = dataset.interactions
    u = users[inter["user"].to_numpy()]
    i = items[inter["item"].to_numpy()]
    keep = (u >= 0) & (i >= 0)
    frame = inter[keep].copy()
    frame["user"], frame["item"] = u[keep], i[keep]
    aligned = Dataset(dataset.name, reference.user_ids, reference.item_ids, frame, reference.items,
                      reference.modalities, reference.root, users=reference.users)
    return aligned, int((~keep).sum())


def load_preset(name: str, **overrides: Any) -> Dataset:
    """``load_preset("ml100k-mmrec")``: load a named dataset preset (overrides are DataConfig fields)."""
    data = deep_merge(preset_data(name), overrides)
    return load_dataset(DataConfig.model_validate(data))


__all__ = [
    "SHARED_PRESETS",
    "align_to",
    "description_root",
    "expand_preset",
    "load_dataset",
    "load_dataset_with_report",
    "load_preset",
    "preset_data",
    "resolve_path",
    "shared_data_root",
    "source_from_config",
]
