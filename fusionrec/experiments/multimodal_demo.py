"""The multimodal demo pipeline: demo shop -> encoders (feature-store cache) -> split -> warm/cold table.

``fusionrec demo`` and ``fusionrec ablate --dataset demo`` need item *features*,
not only item files: this module generates the synthetic shop
(:func:`fusionrec.data.demo.make_demo_dataset`), encodes its text with MiniLM
and its rendered images with EfficientNet-Lite0 through the on-disk feature
store (a second run costs nothing), and applies the demo split (new arrivals
only in valid/test: the cold items).

The demo's point is the warm/cold table (:func:`demo_table`): each model's test
Recall@20 and NDCG@20 on the items that have training interactions (warm) and on
the new arrivals that have none (cold), from :mod:`fusionrec.evaluate.slices`.
"""
from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from fusionrec import output
from fusionrec.config import (
    RunConfig,
    SplitConfig,
    deep_merge,
    load_yaml_resource,
    resolve_config,
)
from fusionrec.data.dataset import Dataset
from fusionrec.evaluate.evaluator import Evaluator
from fusionrec.evaluate.report import MeanStd
from fusionrec.evaluate.slices import slice_key, slice_metrics

DEFAULT_ENCODERS = ("minilm", "efficientnet-lite0")

DEMO_TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    (slice_key("warm", "recall@20"), "warm R@20"),
    (slice_key("cold", "recall@20"), "cold R@20"),
    (slice_key("warm", "ndcg@20"), "warm N@20"),
    (slice_key("cold", "ndcg@20"), "cold N@20"),
    ("recall@20", "all R@20"),
)
"""(result key, column title) of the demo's summary table."""


def multimodal_demo_dataset(
    n_users: int = 2000,
    n_items: int = 1000,
    seed: int = 0,
    *,
    data_root: str | Path | None = None,
    feature_cache: str | Path | None = None,
    encoders: Sequence[str] = DEFAULT_ENCODERS,
    split: SplitConfig | None = None,
    progress: bool = False,
    **demo_kw: Any,
) -> Dataset:
    """Demo shop with encoded text/image modalities and a train/valid/test split.

    The split is the generator's own (new arrivals only in valid/test) unless ``split``
    names another method than ``predefined``, which re-splits every interaction.
    """
    from fusionrec.data.demo import make_demo_dataset
    from fusionrec.data.split import apply_split_config
    from fusionrec.encoders.ensure import default_store_dir
    from fusionrec.encoders.pipeline import encode_dataset

    dataset = make_demo_dataset(n_users=n_users, n_items=n_items, seed=seed, root=data_root, **demo_kw)
    encode_dataset(dataset, list(encoders), store_dir=feature_cache or default_store_dir(),
                   progress=progress, num_workers=0)
    return apply_split_config(dataset, split or SplitConfig(method="predefined"))


def demo_slices(model: Any, evaluator: Evaluator) -> dict[str, float]:
    """Test metrics on warm and on cold items (``run_experiment(test_extra=...)`` hook)."""
    return slice_metrics(evaluator, model, split="test")


def demo_table(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{model: results.json content}`` -> rows of (mean, std) for :func:`format_table`.

    Columns are :data:`DEMO_TABLE_COLUMNS` (warm and cold Recall@20 / NDCG@20 side by
    side, then the plain test Recall@20) and ``s/epoch``.
    """
    rows: dict[str, dict[str, Any]] = {}
    for name, res in results.items():
        test = res["test"]
        # MeanStd knows the seed count: one seed prints its value alone, not "± 0.0000"
        n_seeds = len(res.get("seeds") or [None])
        row: dict[str, Any] = {title: MeanStd(test[key]["mean"], test[key]["std"], n_seeds)
                               for key, title in DEMO_TABLE_COLUMNS if key in test}
        row["s/epoch"] = res["timing"]["seconds_per_epoch"]["mean"]
        rows[name] = row
    return rows


def cold_summary(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """How many test users and items each slice has (the same for every model)."""
    for res in results.values():
        test = res["test"]
        return {f"{s}_{what}": int(test[slice_key(s, what)]["mean"])
                for s in ("warm", "cold") for what in ("n_users", "n_items") if slice_key(s, what) in test}
    return {}


def write_demo_summary(results: Mapping[str, Mapping[str, Any]], out_dir: str | Path) -> Path:
    """Write ``out_dir/demo_results.json`` (the table's numbers per model, slice sizes, seeds,
    run directories) and ``out_dir/demo_results.md`` (the table); returns the JSON path."""
    from fusionrec.evaluate.report import format_table, write_json

    out = Path(out_dir)
    rows = demo_table(results)
    summary = {
        "slices": cold_summary(results),
        "seeds": {name: res.get("seeds") for name, res in results.items()},
        "models": {name: {col: _as_mean_std(cell) for col, cell in row.items()} for name, row in rows.items()},
        "run_dirs": {name: res.get("run_dir") for name, res in results.items()},
    }
    (out / "demo_results.md").parent.mkdir(parents=True, exist_ok=True)
    (out / "demo_results.md").write_text(format_table(rows, fmt="markdown") + "\n")
    return write_json(summary, out / "demo_results.json")


def _as_mean_std(cell: Any) -> Any:
    return {"mean": cell[0], "std": cell[1]} if isinstance(cell, tuple) else cell


# ---------------------------------------------------------------------- fusionrec demo
def demo_settings() -> dict[str, Any]:
    """``fusionrec/configs/demo.yaml``: generator settings, shared run settings and the model list."""
    return load_yaml_resource("demo.yaml")


def run_demo(quick: bool = False, output_dir: str | Path = "runs/demo", data_root: str | Path | None = None,
             models: list[str] | None = None, verbose: bool = True,
             seeds: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """Generate the demo shop and run every model of demo.yaml on it; returns ``{model: results}``.

    Each model's test results carry warm/cold item slices (``"cold:recall@20"``, see
    :mod:`fusionrec.evaluate.slices`); ``seeds`` replaces ``train.seeds`` of demo.yaml.
    """
    from fusionrec.pipeline import run_experiment

    settings = demo_settings()
    gen = dict(settings.get("data", {}))
    base: dict[str, Any] = copy.deepcopy(settings.get("run", {}))
    if quick:
        q = settings.get("quick", {})
        gen.update(q.get("data", {}))
        base = deep_merge(base, q.get("run", {}))
    if seeds is not None:
        base = deep_merge(base, {"train": {"seeds": list(seeds)}})
    dataset = prepare_demo_dataset(gen, list(settings.get("encoders") or []), base, data_root, progress=verbose)
    if verbose:
        output.info(f"demo data: {dataset}")  # silent with -q

    all_results: dict[str, dict[str, Any]] = {}
    for entry in settings.get("models", []):
        name = entry["name"]
        label = entry.get("label", name)   # a second entry of one model (other params) needs its own row
        if models is not None and name not in models and label not in models:
            continue
        layered = deep_merge(base, {k: v for k, v in entry.items() if k not in ("name", "label")})
        layered = deep_merge(layered, {"model": {"name": name}, "output_dir": str(output_dir)})
        if quick:  # --quick bounds every row, also one that sets its own epochs
            layered = _quick_bound(layered, settings.get("quick", {}).get("run", {}).get("train", {}))
        cfg = run_config_from_dict(layered)
        start = time.perf_counter()
        all_results[label] = run_experiment(cfg, dataset, verbose=verbose, test_extra=demo_slices)
        all_results[label]["wall_seconds"] = time.perf_counter() - start
    return all_results


def prepare_demo_dataset(gen: dict[str, Any], encoders: list[Any], run: dict[str, Any],
                         data_root: str | Path | None = None, progress: bool = False) -> Dataset:
    """The demo shop as every demo run sees it: generated (or read from its cache) with the ``gen``
    settings, its content encoded by ``encoders`` into the feature store, split by the ``run`` settings."""
    from fusionrec.data.demo import (
        make_demo_dataset,  # lazy: only the demo needs the generator
    )

    dataset = make_demo_dataset(root=data_root, **gen)
    if encoders:
        # content features for the multimodal models (baselines ignore them); cached on disk
        from fusionrec.encoders.ensure import default_store_dir
        from fusionrec.encoders.pipeline import (
            encode_dataset,  # lazy: loads the encoder stack
        )

        store = Path(data_root) / "features" if data_root is not None else default_store_dir()
        encode_dataset(dataset, encoders, store_dir=store, progress=progress)
    from fusionrec.pipeline import ensure_split

    # the generator's split (new arrivals only in valid/test) unless demo.yaml asks for another
    return ensure_split(dataset, run_config_from_dict(deep_merge(run, {"model": {"name": "pop"}})))


def _quick_bound(layered: dict[str, Any], quick_train: dict[str, Any]) -> dict[str, Any]:
    """A row's epochs (and validation interval) cut to ``--quick``'s epochs."""
    if "epochs" not in quick_train:
        return layered
    train = dict(layered.get("train") or {})
    epochs = min(int(train.get("epochs", quick_train["epochs"])), int(quick_train["epochs"]))
    train["epochs"] = epochs
    if "eval_every" in train:
        train["eval_every"] = min(int(train["eval_every"]), epochs)
    return {**layered, "train": train}


def run_config_from_dict(layered: dict[str, Any]) -> RunConfig:
    """resolve_config for an in-memory dict (model defaults + dataset preset + this dict)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        yaml.safe_dump(layered, fh)
        path = fh.name
    try:
        return resolve_config(config_file=path)
    finally:
        Path(path).unlink(missing_ok=True)
