"""Run configuration: YAML files validated by pydantic, overridable from the CLI.

Resolution order (later wins):
1. the model's typed defaults (its ``Params`` class; ``fusionrec models show NAME``), under ``model.params``,
2. the dataset's defaults ``fusionrec/configs/datasets/<dataset>.yaml`` (whole sections),
3. a user YAML file (``--config run.yaml``),
4. ``--set section.key=value`` overrides (values parsed as YAML: ``--set train.lr=1e-3``).

Every run writes the resolved config as ``config.yaml`` next to its results.
"""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitConfig(_Section):
    """How interactions are divided; ``predefined`` keeps the source's own split."""

    method: Literal["predefined", "random", "leave_last_out", "temporal", "cold_start"] = "random"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 999
    min_interactions: int = 10  # MMRec's rule: fewer -> n-2/1/1
    # per-user counts for the others: "mmrec" = MMRec's notebook (valid+test = int(0.2 n), halved);
    # "round" = round(0.8 n) / round(0.1 n) / rest, which is how ml100k/mmrec/ was made.
    rounding: Literal["mmrec", "round"] = "mmrec"


EncoderSpec = str | dict[str, Any]


class DataConfig(_Section):
    """The ``data:`` section: where a dataset lives and what each column means.

    ``fusionrec data init DIR`` writes one as ``DIR/fusionrec.yaml``; ``--data DIR`` reads it
    back with ``root`` set to DIR, and every relative path in it (``path``, ``items_path``,
    ``users_path``, feature files, media patterns) is resolved against ``root``.
    """

    name: str = "demo"
    format: Literal["demo", "auto", "csv", "parquet", "jsonl", "mmrec", "recbole", "shared"] = "demo"
    # folder that relative paths resolve against (set from the description file's folder)
    root: str | None = None
    path: str | None = None
    # column mapping for tabular readers: role -> column name in the file
    columns: dict[str, str] = Field(default_factory=dict)
    items_path: str | None = None
    item_columns: dict[str, str] = Field(default_factory=dict)
    users_path: str | None = None
    user_columns: dict[str, str] = Field(default_factory=dict)
    # feature files: modality name -> {path, kind}
    features: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # modality name -> encoder registry name ("minilm") or {name: clip-image, params: {...}}
    encoders: dict[str, EncoderSpec] = Field(default_factory=dict)
    # ratings below this are negative feedback (never training positives); None: every rating counts
    positive_rating: float | None = None
    # "events": repeated user-item rows are real repeat behaviour (kept, reported as info);
    # "duplicates": byte-identical rows are reported as a warning (still kept)
    repeats: Literal["events", "duplicates"] = "events"
    modalities: list[str] | None = None  # which modalities the model sees (None = all)
    kcore: int = 0
    split: SplitConfig = Field(default_factory=SplitConfig)
    # demo generator knobs
    demo: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(_Section):
    name: str = "bpr"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Section):
    epochs: int = 300
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 20          # epochs without valid improvement before stopping
    eval_every: int = 1
    valid_metric: str = "recall@20"
    seeds: list[int] = Field(default_factory=lambda: [2024])
    num_threads: int | None = None  # torch threads (None: torch default)
    checkpoint: bool = True
    resume: bool = False
    progress: bool = True

    @field_validator("valid_metric")
    @classmethod
    def _metric_has_k(cls, v: str) -> str:
        if "@" not in v and v not in ("auc", "logloss"):
            raise ValueError(f"valid_metric {v!r} must look like 'recall@20' or 'ndcg@10'")
        return v.lower()


class EvalConfig(_Section):
    ks: list[int] = Field(default_factory=lambda: [10, 20, 50])
    # full: mask train positives (and valid positives when scoring test);
    # mmrec: mask only train positives, exactly as MMRec does.
    protocol: Literal["full", "mmrec"] = "full"
    metrics: list[str] = Field(
        default_factory=lambda: ["recall", "ndcg", "precision", "map", "mrr", "hit"]
    )
    beyond_accuracy: bool = True  # coverage, diversity, novelty on the test split
    batch_users: int = 1024
    candidates: Literal["all", "test_items"] = "all"  # cold-start protocol ranks test items only


class RunConfig(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output_dir: str = "runs"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        return path


# ---------------------------------------------------------------------- loading
def load_yaml_resource(relative: str, missing_ok: bool = False) -> dict[str, Any]:
    """Read ``fusionrec/configs/<relative>`` from the installed package."""
    res = resources.files("fusionrec").joinpath("configs").joinpath(relative)
    if not res.is_file():
        if missing_ok:
            return {}
        raise FileNotFoundError(f"no config resource fusionrec/configs/{relative}")
    return yaml.safe_load(res.read_text()) or {}


def dataset_presets() -> list[str]:
    folder = resources.files("fusionrec").joinpath("configs").joinpath("datasets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["train.lr=0.01", "model.params.n_layers=2"]`` -> nested dict (values parsed as YAML)."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"override {pair!r} must look like section.key=value, e.g. train.lr=0.001")
        dotted, raw = pair.split("=", 1)
        keys = [k for k in dotted.strip().split(".") if k]
        if not keys:
            raise ValueError(f"override {pair!r} has an empty key")
        node = result
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if isinstance(child, dict):
                node = child
                continue
            # a ValueError, like every other malformed override (callers turn it into a UserError)
            raise ValueError(f"override {pair!r} conflicts with an earlier override of {key!r}")
        node[keys[-1]] = _parse_value(raw)
    return result


def _parse_value(raw: str) -> Any:
    """YAML value, except that YAML 1.1 leaves ``1e-3`` a string: numbers become floats."""
    if not raw.strip():
        return ""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def resolve_config(
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    dataset: str | None = None,
    model: str | None = None,
    data: dict[str, Any] | None = None,
) -> RunConfig:
    """Merge model defaults, dataset preset, user file and overrides into one RunConfig.

    ``data`` is a data description (the ``data:`` section of a ``fusionrec.yaml``): it sits
    under the user file and the overrides, and replaces the preset lookup (a user's folder
    that happens to be called ``ml1m`` must not pick up the ml1m preset's files).
    """
    user: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        user = yaml.safe_load(path.read_text()) or {}
    if data is not None:
        user = deep_merge({"data": data}, user)
    cli = parse_overrides(overrides)
    if dataset:
        if dataset not in dataset_presets():
            # an unknown name would otherwise fall through to DataConfig's demo default
            from fusionrec.errors import UserError

            raise UserError(
                f"unknown dataset preset {dataset!r}", "--dataset",
                f"use one of {dataset_presets()}, or pass your own folder with --data DIR "
                "(describe it with `fusionrec data init DIR`)",
            )
        cli = deep_merge({"data": {"name": dataset}}, cli)
    if model:
        cli = deep_merge({"model": {"name": model}}, cli)

    layered = deep_merge(user, cli)
    layered_data = layered.get("data", {})
    ds_name = layered_data.get("name")
    preset: dict[str, Any] = {}
    if data is None and ds_name and ds_name in dataset_presets():
        preset = load_yaml_resource(f"datasets/{ds_name}.yaml")
    elif layered_data.get("path") and "format" not in layered_data:
        # data.path without a format (e.g. --set data.path=mydir) means "detect it", not the demo default
        layered = deep_merge(layered, {"data": {"format": "auto"}})
        if not ds_name:
            layered["data"]["name"] = Path(str(layered_data["path"])).stem or "data"
    merged = deep_merge(preset, layered)

    model_section = dict(merged.get("model") or {})
    model_name = model_section.get("name", ModelConfig().name)
    # local import: the registry imports this module
    from fusionrec.models.registry import validate_params

    # dataset presets may carry per-model params: data-specific tuning beats model defaults, and
    # the model's typed Params fill the rest -- validated here, so a typo fails before data loads
    per_model = (preset.get("model_params") or {}).get(model_name, {})
    merged.pop("model_params", None)
    params = validate_params(model_name, {**per_model, **(model_section.get("params") or {})})
    merged["model"] = {**model_section, "name": model_name, "params": params}
    return RunConfig.model_validate(merged)
