"""fusionrec ablate: grid expansion, per-variant configs, the table, and the CLI wiring."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fusionrec.config import RunConfig, resolve_config
from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError
from fusionrec.experiments.ablate import (
    ablation_markdown,
    expand_grid,
    run_ablation,
    variant_config,
    write_ablation,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    n_u, n_i, k = 60, 40, 4
    kind = rng.integers(0, k, n_i)
    rows = []
    for u in range(n_u):
        pool = np.flatnonzero(kind == u % k)
        for it in rng.choice(pool, min(6, len(pool)), replace=False):
            rows.append((u, it, rng.choice(["train", "valid", "test"], p=[0.7, 0.15, 0.15])))
    inter = pd.DataFrame(rows, columns=["user", "item", "split"])
    mods = {"text": FeatureModality("text", "text", np.eye(k)[kind] + 0.1 * rng.normal(size=(n_i, k))),
            "image": FeatureModality("image", "image", rng.normal(size=(n_i, 8)))}
    return Dataset("tiny", range(n_u), range(n_i), inter, modalities=mods)


def base_cfg(tmp_path, model: str = "two_tower") -> RunConfig:
    cfg = resolve_config(model=model, overrides=[
        "data.name=tiny", "train.epochs=2", "train.batch_size=128", "train.checkpoint=false",
        "train.progress=false", "eval.beyond_accuracy=false", "eval.ks=[10,20]", "model.params.embedding_size=8",
        f"output_dir={tmp_path}"])
    return cfg


def test_expand_grid_skips_meaningless_variants():
    variants = expand_grid({"modalities": [["text"], "image", "text,image", "none"],
                            "fusion": ["concat", "gated"], "align": ["on", "off"]})
    labels = [(tuple(v["modalities"]), v["fusion"], v["align"]) for v in variants]
    # single modality: one fusion only; ID-only: no fusion, no alignment
    assert (("text",), "concat", "on") in labels and (("text",), "gated", "on") not in labels
    assert labels.count(((), "-", "off")) == 1
    assert sum(1 for m, _, _ in labels if m == ("text", "image")) == 4
    assert len(labels) == 2 + 2 + 4 + 1
    with pytest.raises(UserError, match="non-empty list"):
        expand_grid({"fusion": "concat"})


def test_variant_config_sets_modalities_fusion_alignment(tmp_path):
    cfg = base_cfg(tmp_path)
    v = variant_config(cfg, {"modalities": ["image"], "fusion": "gated", "align": "off",
                             "model.params.history": "attention"}, seeds=[1, 2])
    assert v.data.modalities == ["image"]
    assert v.model.params["fusion"] == "gated" and v.model.params["align"] == "none"
    assert v.model.params["history"] == "attention" and v.train.seeds == [1, 2]
    on = variant_config(cfg.model_copy(update={"model": cfg.model.model_copy(
        update={"params": {**cfg.model.params, "align": "none"}})}), {"align": "on"}, [1])
    assert on.model.params["align"] == "infonce"
    assert variant_config(cfg, {"align": "cca"}, [1]).model.params["align"] == "cca"
    idonly = variant_config(cfg, {"modalities": []}, [1])
    assert idonly.model.params["use_content"] is False and idonly.data.modalities == []
    graph_only = cfg.model_copy(update={"model": cfg.model.model_copy(
        update={"params": {**cfg.model.params, "use_content": False}})})
    assert variant_config(graph_only, {"modalities": ["text"]}, [1]).model.params["use_content"] is False
    with pytest.raises(UserError, match="no 'fusion' parameter"):
        variant_config(base_cfg(tmp_path, "vbpr"), {"fusion": "concat"}, [1])


def test_run_ablation_produces_one_row_per_variant_with_mean_and_std(tmp_path):
    ds = tiny_dataset()
    grid = {"modalities": [["text"], ["text", "image"], "none"], "fusion": ["concat", "attention"],
            "align": ["off"]}
    df = run_ablation(base_cfg(tmp_path), grid, seeds=[1, 2], dataset=ds, out_dir=tmp_path / "runs")
    assert len(df) == 1 + 2 + 1
    for col in ("modalities", "fusion", "align", "recall@20", "recall@20_std", "ndcg@20", "valid_recall@20",
                "s_per_epoch"):
        assert col in df.columns
    assert df["recall@20"].between(0, 1).all() and (df["recall@20_std"] >= 0).all()
    # each variant's run directory holds 2 seeds with the variant's own config
    res = json.loads((tmp_path / "runs").glob("*text+image_concat_off*").__next__().joinpath("results.json")
                     .read_text())
    assert res["seeds"] == [1, 2] and res["params"]["align"] == "none" and res["params"]["fusion"] == "concat"
    md, js = write_ablation(df, tmp_path / "table", "tiny ablation", ["a note"])
    text = md.read_text()
    assert "| modalities | fusion | align | test recall@10" in text and "±" in text and "a note" in text
    assert len(json.loads(js.read_text())["rows"]) == len(df)
    # a single seed shows each value alone: its std of 0 is not a measured spread
    one = ablation_markdown(df.assign(n_seeds=1), "one seed")
    assert "±" not in one and f"{df['recall@20'].iloc[0]:.4f}" in one


def test_cli_registers_ablate():
    from fusionrec.cli import build_parser

    args = build_parser().parse_args(["ablate", "--dataset", "lastfm2k", "--modalities", "text", "text,audio_vggish",
                                      "--fusions", "concat,gated", "--align", "on,off", "--seeds", "3"])
    assert args.func.__name__ == "_cmd_ablate" and args.seeds == "3"
