"""Read what ``fusionrec train`` and ``fusionrec ablate`` wrote: the inputs of a report.

A **run folder** (``fusionrec train``) holds ``results.json`` (per-seed and mean ± std
metrics), ``train_history.json`` (per seed, per epoch: loss, learning rate, seconds, valid
metrics), ``config.yaml`` and ``model/`` (the first seed's model with its dataset).

An **ablation folder** (``fusionrec ablate --runs DIR``) holds one run folder per variant
(``00_text_concat_on/``...). The variant labels are rebuilt from the variants' configs:
whatever differs between them (modalities, fusion, alignment, any other key) names them.
The report's detailed sections use the variant with the best mean *valid* score, so the
choice never looks at test numbers.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fusionrec.errors import UserError
from fusionrec.evaluate.metrics import LOWER_IS_BETTER

RESULTS = "results.json"
HISTORY = "train_history.json"
# config keys that differ between variants without being what was ablated
_IGNORED_KEYS = ("output_dir", "train.seeds", "train.tensorboard", "train.mlflow", "train.resume")


@dataclass
class RunFolder:
    """One ``fusionrec train`` run folder, read back."""

    path: Path
    results: dict[str, Any]
    config: dict[str, Any]
    history: dict[str, list[dict[str, Any]]]
    label: str = ""

    @property
    def model_name(self) -> str:
        return str(self.results.get("model", "?"))

    @property
    def dataset_name(self) -> str:
        return str(self.results.get("dataset", "?"))

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.results.get("seeds", [])]

    @property
    def valid_metric(self) -> str:
        return str(self.results.get("valid_metric", "recall@20"))

    @property
    def model_dir(self) -> Path | None:
        folder = self.path / "model"
        return folder if (folder / "model.yaml").is_file() else None

    def checkpoint(self, seed: int) -> Path | None:
        path = self.path / "checkpoints" / f"seed{seed}" / "checkpoint.pt"
        return path if path.is_file() else None

    def valid_score(self) -> float:
        """Mean valid score of ``valid_metric`` over seeds (NaN when absent)."""
        block = self.results.get("valid", {}).get(self.valid_metric)
        return float(block["mean"]) if block else float("nan")

    def valid_rank_key(self) -> float:
        """Larger is better on valid: the score, negated for log loss / MAE / RMSE; -inf when absent."""
        score = self.valid_score()
        if math.isnan(score):
            return -math.inf
        return -score if self.valid_metric in LOWER_IS_BETTER else score


@dataclass
class Report:
    """The folders one report covers: plain runs and ablations, each with a display name."""

    runs: list[RunFolder] = field(default_factory=list)
    ablations: list[tuple[str, list[RunFolder]]] = field(default_factory=list)

    def detailed(self) -> list[RunFolder]:
        """The runs the per-run sections show: every plain run, and each ablation's valid-best variant."""
        out = list(self.runs)
        for _, variants in self.ablations:
            out.append(best_on_valid(variants))
        return out


def best_on_valid(variants: list[RunFolder]) -> RunFolder:
    """The variant with the best mean valid score (never a test number)."""
    return max(variants, key=RunFolder.valid_rank_key)


def read_run(path: str | Path, label: str | None = None) -> RunFolder:
    """Read one run folder; a folder without ``results.json`` is a clear error."""
    path = Path(path)
    results_path = path / RESULTS
    if not results_path.is_file():
        raise UserError(f"{path} is not a run folder ({RESULTS} is missing)", str(path),
                        "pass a folder printed by `fusionrec train` (run directory: ...) or the --runs folder "
                        "of `fusionrec ablate`")
    try:
        results = json.loads(results_path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{results_path} is not valid JSON ({err.msg}, line {err.lineno})", str(results_path),
                        "re-run the training; the run was probably interrupted while writing it") from None
    history_path = path / HISTORY
    history = json.loads(history_path.read_text()) if history_path.is_file() else {}
    config_path = path / "config.yaml"
    config = (yaml.safe_load(config_path.read_text()) or {}) if config_path.is_file() else {}
    return RunFolder(path, results, config, history, label or f"{results.get('model', '?')} ({path.name})")


def is_ablation(path: Path) -> bool:
    """An ablation folder: no results.json itself, run folders below it."""
    return not (path / RESULTS).is_file() and any((p / RESULTS).is_file() for p in path.iterdir() if p.is_dir())


def read_ablation(path: str | Path) -> list[RunFolder]:
    """Every variant of an ablation folder, labelled by the config keys that differ between them."""
    path = Path(path)
    folders = sorted(p for p in path.iterdir() if p.is_dir() and (p / RESULTS).is_file())
    runs = [read_run(p) for p in folders]
    flat = [_flatten(r.config) for r in runs]
    keys = sorted({k for f in flat for k in f})
    varying = [k for k in keys if not k.startswith(_IGNORED_KEYS) and len({repr(f.get(k)) for f in flat}) > 1]
    for run, values in zip(runs, flat):
        parts = [f"{_short_key(k)}={_value_text(values.get(k))}" for k in varying]
        run.label = ", ".join(parts) if parts else run.path.name
    return runs


def collect(paths: list[str | Path]) -> Report:
    """Read every folder given on the command line into a :class:`Report`."""
    if not paths:
        raise UserError("no run folder given", "fusionrec report", "pass one or more run folders: "
                        "fusionrec report runs/<run> [runs/<other run> ...]")
    report = Report()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_dir():
            raise UserError(f"run folder {path} does not exist", str(path),
                            "pass a folder printed by `fusionrec train` (run directory: ...)")
        if is_ablation(path):
            report.ablations.append((path.name, read_ablation(path)))
            continue
        run = read_run(path)
        run.label = run.model_name
        report.runs.append(run)
    _disambiguate(report.runs)  # two runs of the same model side by side need distinct names
    return report


def _disambiguate(runs: list[RunFolder]) -> None:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.model_name] = counts.get(r.model_name, 0) + 1
    for r in runs:
        if counts[r.model_name] > 1:
            r.label = f"{r.model_name} ({r.path.name})"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(_flatten(value, name))
        else:
            out[name] = value
    return out


def _short_key(key: str) -> str:
    # "data.modalities" -> "modalities", "model.params.fusion" -> "fusion"
    for prefix in ("model.params.", "data.", "train.", "eval."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _value_text(value: Any) -> str:
    if value is None:
        return "all"
    if isinstance(value, list):
        return "+".join(map(str, value)) if value else "none"
    return str(value)


__all__ = ["Report", "RunFolder", "best_on_valid", "collect", "is_ablation", "read_ablation", "read_run"]
