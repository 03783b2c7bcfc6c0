"""Every two_tower fusion and alignment option on the demo shop: seconds per epoch and valid quality.

The demo of ``fusionrec demo`` (2000 users, 1000 items, MiniLM text + EfficientNet-Lite0
image features from the feature store; the generator's split, new arrivals only in
valid/test) and its training settings (batch 1024, lr 0.005, one torch thread). Each
option trains ``--epochs`` epochs per seed; reported: the median training seconds per
epoch (validation excluded) and Recall@20 on the valid split after the last epoch.

    OMP_NUM_THREADS=1 nice python bench/fusion_options.py --seeds 1 2 3 --epochs 3 \\
        --out bench/results/fusion_options.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from fusionrec.align.aligner import ALIGN_METHODS
from fusionrec.config import TrainConfig
from fusionrec.evaluate import Evaluator
from fusionrec.experiments.multimodal_demo import multimodal_demo_dataset
from fusionrec.models.registry import build_model
from fusionrec.models.two_tower_params import TWO_TOWER_FUSIONS
from fusionrec.train.trainer import Trainer, seed_everything


def options(which: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if which == "timing":  # the pair the issue asks about: matching within 3x InfoNCE per epoch
        return {"align=infonce": {"align": "infonce"}, "align=matching": {"align": "matching"}}
    if which in ("all", "align"):
        out.update({f"align={a}": {"align": a} for a in ALIGN_METHODS})
    if which in ("all", "fusion"):
        out.update({f"fusion={f}": {"fusion": f} for f in TWO_TOWER_FUSIONS})
    return out


def run(data, params: dict[str, Any], seed: int, epochs: int) -> dict[str, float]:
    seed_everything(seed)
    model = build_model("two_tower", data.train_data(), params)
    cfg = TrainConfig(epochs=epochs, batch_size=1024, lr=0.005, patience=epochs, checkpoint=False,
                      progress=False, num_threads=1, eval_every=epochs)
    ev = Evaluator(data, ks=(20,), protocol="full", beyond_accuracy=False)
    res = Trainer(model, data.train_data(), cfg, evaluator=ev, seed=seed).fit()
    secs = [h["seconds"] for h in res.history]
    return {"seconds_per_epoch": statistics.median(secs), "valid_recall@20": res.history[-1]["valid"]["recall@20"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--which", choices=["all", "align", "fusion", "timing"], default="all")
    ap.add_argument("--out", default="bench/results/fusion_options.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = multimodal_demo_dataset(2000, 1000, 0)
    opts = options(args.which)
    # seeds outer, options inner: the options of one seed run back to back under the same machine
    # load, so their time ratios are fair even when the load drifts between seeds
    per: dict[str, list[dict[str, float]]] = {name: [] for name in opts}
    for s in args.seeds:
        for name, params in opts.items():
            per[name].append({**run(data, params, s, args.epochs), "load": os.getloadavg()[0]})
            print(f"seed {s} {name:24s} {per[name][-1]['seconds_per_epoch']:7.1f} s/epoch  valid R@20 "
                  f"{per[name][-1]['valid_recall@20']:.4f}  (load {per[name][-1]['load']:.1f})", flush=True)
    rows: dict[str, Any] = {}
    ref = "align=infonce" if "align=infonce" in per else None
    for name, runs in per.items():
        rows[name] = {"per_seed": runs,
                      "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in runs),
                      "valid_recall@20": statistics.median(r["valid_recall@20"] for r in runs)}
        if ref is not None:
            rows[name]["time_vs_infonce"] = statistics.median(
                r["seconds_per_epoch"] / b["seconds_per_epoch"] for r, b in zip(runs, per[ref]))
        ratio = f" (x{rows[name]['time_vs_infonce']:.2f} infonce)" if ref is not None else ""
        print(f"{name:24s} median {rows[name]['seconds_per_epoch']:7.1f} s/epoch{ratio}  valid R@20 "
              f"{rows[name]['valid_recall@20']:.4f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "seeds": args.seeds, "epochs": args.epochs,
                                          "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1))


if __name__ == "__main__":
    main()
