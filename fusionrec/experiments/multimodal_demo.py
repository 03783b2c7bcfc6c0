"""The multimodal demo pipeline: demo shop -> encoders (feature-store cache) -> split.

``fusionrec demo`` and ``fusionrec ablate --dataset demo`` need item *features*,
not only item files: this module generates the synthetic shop
(:func:`fusionrec.data.demo.make_demo_dataset`), encodes its text with MiniLM
and its rendered images with EfficientNet-Lite0 through the on-disk feature
store (a second run costs nothing), and applies the demo split.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from fusionrec.config import SplitConfig
from fusionrec.data.dataset import Dataset

DEFAULT_ENCODERS = ("minilm", "efficientnet-lite0")


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
    """Demo shop with encoded text/image modalities and a train/valid/test split."""
    from fusionrec.data.demo import make_demo_dataset
    from fusionrec.data.split import apply_split_config
    from fusionrec.encoders.pipeline import encode_dataset

    dataset = make_demo_dataset(n_users=n_users, n_items=n_items, seed=seed, root=data_root, **demo_kw)
    encode_dataset(dataset, list(encoders), store_dir=feature_cache or default_feature_cache(),
                   progress=progress, num_workers=0)
    return apply_split_config(dataset, split or SplitConfig())
