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

from fusionrec.config import DataConfig, dataset_presets, deep_merge, load_yaml_resource
from fusionrec.data.dataset import Dataset
from fusionrec.data.readers import DataSource, mmrec_source, recbole_source, table_source
from fusionrec.data.split import apply_split_config, kcore_filter
from fusionrec.data.validate import ValidationReport, summarise, validate_source
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
                spec[key] = str(resolve_path(spec[key], base))
        out[name] = spec
    return out


def source_from_config(cfg: DataConfig) -> DataSource:
    """A DataSource for csv/parquet/jsonl/mmrec/recbole/auto configs (paths resolved)."""
    if cfg.path is None:
        raise UserError(f"data.path is not set for format {cfg.format!r}", "data.path",
                        "set data.path to the interaction file or dataset folder (or use a preset name)")
    path = resolve_path(cfg.path)
    assert path is not None
    base = path if path.is_dir() else path.parent
    items_path = resolve_path(cfg.items_path, base)
    item_columns = dict(cfg.item_columns)
    if item_columns.get("id_map"):
        item_columns["id_map"] = str(resolve_path(item_columns["id_map"], base))
    features = _resolve_features(cfg.features, base)
    fmt = cfg.format
    if fmt == "auto":
        from fusionrec.data.validate import detect_format

        if not path.exists():
            raise UserError("data path not found", str(path), "set data.path to an existing file or folder")
        fmt = detect_format(path)
    if fmt == "mmrec":
        return mmrec_source(path, cfg.name, features or None, items_path, item_columns, cfg.columns)
    if fmt == "recbole":
        return recbole_source(path, cfg.name, cfg.columns, item_columns, features)
    if fmt in ("csv", "parquet", "jsonl"):
        return table_source(path, cfg.columns, items_path, item_columns, features, cfg.name,
                            None if path.is_dir() else fmt)
    raise UserError(f"format {fmt!r} cannot be read from files", "data.format",
                    "use csv, parquet, jsonl, mmrec, recbole, auto, demo or shared")


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
        from fusionrec.data.demo import make_demo_dataset  # engineer C's generator, imported lazily

        dataset = make_demo_dataset(**cfg.demo)
        report = ValidationReport(dataset.name, "demo")
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


def load_preset(name: str, **overrides: Any) -> Dataset:
    """``load_preset("ml100k-mmrec")``: load a named dataset preset (overrides are DataConfig fields)."""
    data = deep_merge(preset_data(name), overrides)
    return load_dataset(DataConfig.model_validate(data))


__all__ = [
    "load_dataset", "load_dataset_with_report", "load_preset", "expand_preset", "source_from_config",
    "shared_data_root", "resolve_path", "preset_data", "SHARED_PRESETS",
]
