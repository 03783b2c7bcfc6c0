"""Small demo runs for the report tests: the built-in demo shop (real item titles, rendered
images, new arrivals as cold items), with cheap content vectors instead of the pretrained
encoders so a run takes seconds.

* ``text``: the item's hidden category and material one-hot, plus noise -- what a text
  encoder would pick up from the descriptions;
* ``image``: mean colour and a coarse 4 x 4 grey thumbnail of the rendered picture file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fusionrec.config import RunConfig, resolve_config
from fusionrec.data.dataset import Dataset, FeatureModality

SETTINGS = ["train.epochs=3", "train.batch_size=256", "train.checkpoint=true", "train.progress=false",
            "train.num_threads=1", "eval.ks=[10,20]", "eval.beyond_accuracy=true", "data.name=demo",
            "data.split.method=predefined"]


def demo_dataset(root: Path, n_users: int = 120, n_items: int = 60) -> Dataset:
    """The demo shop with a ``text`` and an ``image`` modality attached."""
    from fusionrec.data.demo import make_demo_dataset

    ds = make_demo_dataset(n_users=n_users, n_items=n_items, seed=0, root=root, image_size=32)
    items = ds.items
    rng = np.random.default_rng(0)
    cats = items["trait_category"].astype("category").cat.codes.to_numpy()
    mats = items["trait_material"].astype("category").cat.codes.to_numpy()
    text = np.concatenate([np.eye(cats.max() + 1)[cats], np.eye(mats.max() + 1)[mats]], axis=1)
    text = text + 0.2 * rng.normal(size=text.shape)
    image = np.zeros((len(items), 19), dtype=np.float32)
    mask = np.zeros(len(items), dtype=bool)
    for i, rel in enumerate(items["image_path"].tolist()):
        if rel is None:
            continue
        with Image.open(root / rel) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
            grey = np.asarray(im.convert("L").resize((4, 4)), dtype=np.float32).ravel() / 255.0
        image[i] = np.concatenate([rgb.reshape(-1, 3).mean(axis=0), grey])
        mask[i] = True
    ds.add_modality(FeatureModality("text", "text", text.astype(np.float32)))
    ds.add_modality(FeatureModality("image", "image", image, mask))
    return ds


def run_config(out: Path, model: str = "two_tower", extra: list[str] | None = None,
               seeds: tuple[int, ...] = (1, 2)) -> RunConfig:
    overrides = [*SETTINGS, f"output_dir={out}", f"train.seeds={list(seeds)}", *(extra or [])]
    if model in ("two_tower", "mmgraph", "vbpr", "bpr", "lightgcn", "content_cf"):
        overrides.append("model.params.embedding_size=8")
    return resolve_config(model=model, overrides=overrides)


def train_run(dataset: Dataset, out: Path, model: str = "two_tower", **kw: Any) -> Path:
    """One ``fusionrec train`` run folder (through the pipeline the CLI uses)."""
    from fusionrec.pipeline import run_experiment

    return Path(run_experiment(run_config(out, model, **kw), dataset)["run_dir"])


def ablation_run(dataset: Dataset, out: Path) -> Path:
    """A ``fusionrec ablate`` runs folder over the modality subsets text / image / text+image."""
    from fusionrec.experiments.ablate import run_ablation

    folder = out / "ablate_demo"
    run_ablation(run_config(out, "two_tower"), {"modalities": [["text"], ["image"], ["text", "image"]]},
                 seeds=[1, 2], dataset=dataset, out_dir=folder)
    return folder
