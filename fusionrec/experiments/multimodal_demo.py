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

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fusionrec.config import SplitConfig
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


def default_feature_cache() -> Path:
    """``$FUSIONREC_CACHE/features`` or ``~/.cache/fusionrec/features``."""
    base = os.environ.get("FUSIONREC_CACHE") or Path.home() / ".cache" / "fusionrec"
    return Path(base) / "features"


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
    from fusionrec.encoders.pipeline import encode_dataset

    dataset = make_demo_dataset(n_users=n_users, n_items=n_items, seed=seed, root=data_root, **demo_kw)
    encode_dataset(dataset, list(encoders), store_dir=feature_cache or default_feature_cache(),
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
