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
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitConfig(_Section):
    """How interactions are divided; ``predefined`` keeps the source's own split."""

    method: Literal["predefined", "random", "leave_last_out", "temporal", "cold_start", "user_cold_start"] = Field(
        "random", description="predefined: the data's split column; random: per user; leave_last_out: each "
                              "user's last events; temporal: one global time cut; cold_start: whole items; "
                              "user_cold_start: whole users (new users, from attributes and first events)")
    ratios: tuple[float, float, float] = Field((0.8, 0.1, 0.1), description="train / valid / test shares")
    seed: int = Field(999, description="seed of the random, cold_start and user_cold_start splits")
    min_interactions: int = Field(10, description="users with fewer interactions get n-2/1/1 (MMRec's rule)")
    # "round" is how ml100k/mmrec/ was made
    rounding: Literal["mmrec", "round"] = Field(
        "mmrec", description="per-user counts: mmrec = MMRec's notebook (valid+test = int(0.2 n), halved); "
                             "round = round(0.8 n) / round(0.1 n) / rest")
    new_items: float = Field(0.0, ge=0, lt=1, description=(
        "leave_last_out: share of items held out as new arrivals (their training events removed, seeded by "
        "seed), so some next items were never seen in training"))


EncoderSpec = str | dict[str, Any]


class DataConfig(_Section):
    """The ``data:`` section: where a dataset lives and what each column means.

    ``fusionrec data init DIR`` writes one as ``DIR/fusionrec.yaml``; ``--data DIR`` reads it
    back with ``root`` set to DIR, and every relative path in it (``path``, ``items_path``,
    ``users_path``, feature files, media patterns) is resolved against ``root``.
    """

    name: str = Field("demo", description="dataset name; a preset name (fusionrec/configs/datasets) loads "
                                          "that preset")
    format: Literal["demo", "auto", "csv", "parquet", "jsonl", "mmrec", "recbole", "shared", "synthetic"] = Field(
        "demo", description="reader: auto detects it from the files; demo generates the synthetic shop; "
                            "shared reads preset `name`; synthetic generates a catalogue of any size")
    root: str | None = Field(None, description="folder that relative paths resolve against (set from the "
                                               "description file's folder)")
    path: str | None = Field(None, description="interaction file or dataset folder")
    columns: dict[str, str] = Field(default_factory=dict, description=(
        "interaction roles -> column names in the file: user, item, rating, timestamp, label, split, weight"))
    items_path: str | None = Field(None, description="item table (text, media paths, attributes)")
    item_columns: dict[str, str] = Field(default_factory=dict, description=(
        "item roles -> columns: item, text (a,b,c), image_path / audio_path (a column or a pattern such "
        "as images/{item_id}.jpg), attributes"))
    users_path: str | None = Field(None, description="user table")
    user_columns: dict[str, str] = Field(default_factory=dict, description="user roles -> columns: user, "
                                                                           "attributes")
    features: dict[str, dict[str, Any]] = Field(default_factory=dict, description=(
        "precomputed feature files: modality name -> {path, kind}"))
    encoders: dict[str, EncoderSpec] = Field(default_factory=dict, description=(
        "modality name -> encoder registry name (minilm) or {name: clip-image, params: {...}}"))
    positive_rating: float | None = Field(None, description="ratings below it are negative feedback, never "
                                                            "training positives (null: every rating counts)")
    unknown_items: Literal["keep", "quarantine"] = Field("keep", description=(
        "interactions whose item (user) has no row in the item (user) table: keep (the table describes "
        "only some of them; the others have no text or attributes, reported as a warning) or quarantine "
        "(the table is complete, so such an id is a mistake: the rows are set aside)"))
    repeats: Literal["events", "duplicates"] = Field("events", description=(
        "events: repeated user-item rows are real repeat behaviour (kept, reported as info); duplicates: "
        "byte-identical rows are reported as a warning (still kept)"))
    modalities: list[str] | None = Field(None, description="which modalities the model sees (null = all)")
    kcore: int = Field(0, description="keep users and items with at least k interactions (0 or 1 = off)")
    split: SplitConfig = Field(default_factory=SplitConfig, description="how interactions are divided")
    demo: dict[str, Any] = Field(default_factory=dict, description="demo generator arguments (n_users, "
                                                                   "n_items, seed)")
    synthetic: dict[str, Any] = Field(default_factory=dict, description="synthetic catalogue arguments "
                                      "(n_items, n_users, interactions_per_item, dim, seed; "
                                      "fusionrec.data.synthetic.SyntheticParams)")


class ModelConfig(_Section):
    """The ``model:`` section: which model, and its parameters."""

    name: str = Field("bpr", description="registered model name (`fusionrec models` lists them)")
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "the model's parameters (Models below); unset keys take the model's typed defaults"))


DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def check_device_spec(spec: Any) -> str:
    """``spec`` lower-cased and stripped when it is one of :data:`DEVICE_CHOICES`; a ValueError naming the
    bad value and the choices otherwise (torch-free: :func:`fusionrec.train.device.resolve_device` then
    checks that the device exists)."""
    text = str(spec if spec is not None else "auto").strip().lower()
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise ValueError(f"device {spec!r} is not one of {', '.join(DEVICE_CHOICES)} "
                         f"(e.g. --set train.device=cuda:0 or --set train.device=cpu)")
    return text


class TrainConfig(_Section):
    """The ``train:`` section: the optimiser, early stopping on validation, seeds."""

    epochs: int = Field(300, description="maximum training epochs")
    batch_size: int = Field(2048, description="batch size (pairs, rows or users, by the model's batch kind)")
    lr: float = Field(1e-3, description="Adam learning rate")
    weight_decay: float = Field(0.0, description="Adam weight decay")
    patience: int = Field(20, description="evaluations without valid improvement before stopping")
    ema_decay: float | None = Field(None, gt=0, lt=1, description=(
        "exponential moving average of the weights, updated after every optimizer step with this decay "
        "(e.g. 0.97: about 33 steps); validation, model choice and the returned model use the averaged "
        "weights (null: the raw weights)"))
    eval_every: int = Field(1, description="validate every N epochs")
    valid_metric: str = Field("recall@20", description="validation metric for early stopping and model "
                                                       "choice, e.g. recall@20, ndcg@10, auc, logloss")
    seeds: list[int] = Field(default_factory=lambda: [2024], description="one run per seed (tables: mean and "
                                                                         "std over seeds)")
    num_threads: int | None = Field(None, description="torch threads (null: torch default)")
    device: str = Field("auto", description=(
        "where training and evaluation compute: auto (a GPU when torch sees one, else the CPU), cpu, cuda, "
        "cuda:N or mps; the text, image and CLIP encoders run there too (docs/guide/device.md)"))
    checkpoint: bool = Field(True, description="write a checkpoint after each epoch")
    resume: bool = Field(False, description="continue from the run's checkpoint")
    progress: bool = Field(True, description="report progress per epoch")
    tensorboard: str | None = Field(None, description=(
        "folder for TensorBoard logs (loss, valid metrics, learning rate, seconds per epoch, item embedding "
        "projector), one subfolder per run and seed; needs pip install 'fusionrec[track]'"))
    mlflow: str | None = Field(None, description=(
        "MLflow tracking URI (a database such as sqlite:///mlflow.db, or a tracking server) to log params and "
        "per-epoch metrics to; needs pip install 'fusionrec[mlflow]'"))

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        # the name only: whether that device exists is checked when the run starts (fusionrec.train.device)
        return check_device_spec(v)

    @field_validator("valid_metric")
    @classmethod
    def _metric_lower(cls, v: str) -> str:
        # which metrics exist depends on eval.ks/metrics and the model: the run checks it before
        # loading any data (fusionrec.train.valid_metric.check_valid_metric), naming the valid choices
        return v.strip().lower()


class EvalConfig(_Section):
    """The ``eval:`` section: full-ranking evaluation."""

    ks: list[int] = Field(default_factory=lambda: [10, 20, 50], description="cutoffs K of the @K metrics")
    protocol: Literal["full", "mmrec"] = Field("full", description=(
        "full: mask train positives (and valid positives when scoring test); mmrec: mask only train "
        "positives, exactly as MMRec does"))
    metrics: list[str] = Field(
        default_factory=lambda: ["recall", "ndcg", "precision", "map", "mrr", "hit"],
        description="ranking metrics computed at every K",
    )
    beyond_accuracy: bool = Field(True, description="coverage, diversity, novelty on the test split")
    batch_users: int = Field(1024, description="users scored per batch")
    candidates: Literal["all", "test_items"] = Field("all", description=(
        "all: rank the whole catalogue; test_items: rank only the test items (cold-start protocol)"))
    new_user_events: list[int] = Field(default_factory=list, description=(
        "user cold start (data.split.method: user_cold_start): also report the test users' metrics when "
        "their first N events are given, for each N, e.g. [0, 1, 3] (0 = attributes alone)"))
    max_users: int = Field(0, ge=0, description=(
        "rank all items for a seeded random sample of at most this many users per split (0 = every user); "
        "for catalogues with millions of users. The sample size is reported as n_users, the split's users "
        "as n_users_total"))


class RunConfig(_Section):
    data: DataConfig = Field(default_factory=DataConfig, description="the dataset")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the model")
    train: TrainConfig = Field(default_factory=TrainConfig, description="training")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation")
    output_dir: str = Field("runs", description="folder the runs are written under")

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
    # a model whose natural selection metric is not the preset's (rating models: rmse; multi-task
    # rankers: the mean task AUC) is chosen on it unless the user's file or --set names one
    from fusionrec.models.registry import model_class

    own_metric = getattr(model_class(model_name), "default_valid_metric", None)
    if own_metric and "valid_metric" not in (layered.get("train") or {}):
        merged = deep_merge(merged, {"train": {"valid_metric": own_metric}})
    return RunConfig.model_validate(merged)
