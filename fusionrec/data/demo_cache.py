"""The demo shop's on-disk cache: generation is deterministic in its parameters, so a second
call with the same parameters and root loads the tables instead of regenerating them.

Under ``root`` the generator writes ``images/``, ``items.parquet``, ``interactions.parquet``
and, last and atomically, ``demo.json`` with the parameters and their hash.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset

# Bump when the generator's output changes for the same parameters, so stale caches
# are regenerated instead of silently reused.
GENERATOR_VERSION = 4
_MANIFEST = "demo.json"


@dataclass(frozen=True)
class DemoParams:
    """Everything the output depends on: the cache key."""

    n_users: int
    n_items: int
    seed: int
    image_size: int
    min_per_user: int
    max_per_user: int
    mean_per_user: float
    new_arrival_fraction: float
    missing_image_fraction: float
    jpeg_quality: int
    weights: dict[str, Any] = field(default_factory=dict)
    version: int = GENERATOR_VERSION

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def default_root(params: DemoParams) -> Path:
    """``$FUSIONREC_CACHE/demo/<key>`` (default ``~/.cache/fusionrec/demo/<key>``)."""
    base = Path(os.environ.get("FUSIONREC_CACHE", Path.home() / ".cache" / "fusionrec"))
    return base / "demo" / params.key()


def load_cached(root: Path, params: DemoParams) -> Dataset | None:
    """The cached shop under ``root`` when it was made with exactly ``params`` and every
    image file is still there; ``None`` otherwise (the caller regenerates)."""
    manifest = root / _MANIFEST
    if not manifest.is_file():
        return None
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("key") != params.key() or meta.get("params") != json.loads(json.dumps(asdict(params))):
        return None
    try:
        items = pd.read_parquet(root / "items.parquet")
        interactions = pd.read_parquet(root / "interactions.parquet")
    except (OSError, ValueError):
        return None
    paths = items["image_path"].dropna()
    if len(items) != params.n_items or not all((root / p).is_file() for p in paths):
        return None  # files were removed since: regenerate rather than hand back broken paths
    return to_dataset(items, interactions, root)


def write_cache(root: Path, params: DemoParams, items: pd.DataFrame, interactions: pd.DataFrame) -> None:
    """Write the tables, then the manifest."""
    # Tables first, manifest last and atomically: a crash mid-way leaves no manifest, so the
    # next call regenerates instead of loading half-written data.
    (root / _MANIFEST).unlink(missing_ok=True)
    items.to_parquet(root / "items.parquet", index=False)
    interactions.to_parquet(root / "interactions.parquet", index=False)
    meta = {"key": params.key(), "params": asdict(params), "n_interactions": len(interactions)}
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".demo-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
    os.replace(tmp, root / _MANIFEST)


def to_dataset(items: pd.DataFrame, interactions: pd.DataFrame, root: Path) -> Dataset:
    """The generated tables as a :class:`Dataset` with ``userNNNNN`` / ``itemNNNNN`` ids."""
    n_users = int(interactions["user"].max()) + 1 if len(interactions) else 0
    width = max(5, len(str(max(n_users - 1, 0))))
    user_ids = [f"user{u:0{width}d}" for u in range(n_users)]
    inter = pd.DataFrame(
        {
            "user": interactions["user"].to_numpy(np.int64),
            "item": interactions["item"].to_numpy(np.int64),
            "rating": np.float32(np.nan),
            "timestamp": interactions["timestamp"].to_numpy(np.float64),
            "label": np.float32(1.0),
        }
    )
    return Dataset("demo", user_ids, items["item_id"].tolist(), inter, items, root=root)
