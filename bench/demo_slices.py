"""Warm vs cold (new-arrival) Recall@20 of model variants on the demo shop, valid and test.

    FUSIONREC_CACHE=/tmp/dm/cache OMP_NUM_THREADS=1 python bench/demo_slices.py \
        --variant mmgraph '{}' --variant mmgraph '{"cold_negatives": false}' --seed 2024
    FUSIONREC_CACHE=/tmp/dm/cache OMP_NUM_THREADS=1 python bench/demo_slices.py \
      --variant mmgraph '{"cold_dropout": 0.3, "head_detach": true}' --margins 0 0.1 --gates 0 0.08 \
      --neighbours 0 2 --save /tmp/w   # then --load /tmp/w scores other settings without training

Each variant is a model name and its parameters (JSON) on top of the demo's settings
(fusionrec/configs/demo.yaml); selection between variants is meant to read the valid columns only.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from fusionrec.config import deep_merge
from fusionrec.evaluate.slices import slice_metrics
from fusionrec.experiments.multimodal_demo import (
    demo_settings,
    prepare_demo_dataset,
    run_config_from_dict,
)
from fusionrec.models.registry import build_model
from fusionrec.pipeline import make_evaluator
from fusionrec.train.trainer import Trainer, seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", nargs=2, action="append", metavar=("MODEL", "PARAMS_JSON"), required=True)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", default="/tmp/demo_slices")
    parser.add_argument("--margins", type=float, nargs="*", default=None, metavar="M",
                        help="mmgraph only: after training, also report each cold_margin value (no retraining)")
    parser.add_argument("--gates", type=float, nargs="*", default=None, metavar="G",
                        help="mmgraph only: with --margins, also each cold_gate value (no retraining)")
    parser.add_argument("--neighbours", type=float, nargs="*", default=None, metavar="B",
                        help="mmgraph only: with --margins, also each cold_neighbours value (no retraining)")
    parser.add_argument("--save", default=None, metavar="DIR",
                        help="write each variant's trained weights to DIR/v<n>_seed<seed>.pt")
    parser.add_argument("--load", default=None, metavar="DIR",
                        help="read the weights --save wrote instead of training (scoring settings only differ)")
    parser.add_argument("--train", default="{}", metavar="JSON",
                        help="train settings over the demo's for every variant, e.g. '{\"lr\": 0.002}'")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = demo_settings()
    base = copy.deepcopy(settings["run"])
    dataset = prepare_demo_dataset(settings["data"], settings["encoders"], base)
    for n, (model, params_json) in enumerate(args.variant):
        entry = next((e for e in settings["models"] if e["name"] == model), {})
        layered = deep_merge(base, {k: v for k, v in entry.items() if k not in ("name", "label")})
        layered = deep_merge(layered, {"model": {"name": model, "params": json.loads(params_json)},
                                   "train": {"progress": False, **json.loads(args.train)}})
        cfg = run_config_from_dict(layered)
        evaluator = make_evaluator(dataset, cfg)
        seed_everything(args.seed)
        data = dataset.train_data(cfg.data.modalities)
        rec = build_model(model, data, cfg.model.params)
        start = time.perf_counter()
        weights = f"v{n}_seed{args.seed}.pt"
        if args.load:
            rec.load_state_dict(torch.load(Path(args.load) / weights))
            rec.eval()
            best_epoch = "loaded"
        else:
            result = Trainer(rec, data, cfg.train, evaluator, out_dir=Path(args.out) / f"v{n}", seed=args.seed).fit()
            best_epoch = result.best_epoch
        if args.save:
            Path(args.save).mkdir(parents=True, exist_ok=True)
            torch.save(rec.state_dict(), Path(args.save) / weights)
        seconds = time.perf_counter() - start
        sweep = args.margins is not None and model == "mmgraph"
        grid = ([(m, g, b) for b in (args.neighbours or [rec.hp.cold_neighbours])
                 for g in (args.gates or [rec.hp.cold_gate]) for m in args.margins] if sweep else [None])
        for point in grid:
            label = params_json
            if point is not None:   # the same weights, scored with another cold_margin / cold_gate / cold_neighbours
                rec.hp = rec.hp.model_copy(update={"cold_margin": point[0], "cold_gate": point[1],
                                                   "cold_neighbours": point[2]})
                rec.load_state_dict(rec.state_dict())   # drops the cached inference vectors
                label = f"{params_json} cold_margin={point[0]} cold_gate={point[1]} cold_neighbours={point[2]}"
            valid, test = slice_metrics(evaluator, rec, "valid"), slice_metrics(evaluator, rec, "test")
            valid["recall@20"] = evaluator.evaluate(rec, "valid")["recall@20"]
            test["recall@20"] = evaluator.evaluate(rec, "test")["recall@20"]
            print(f"{model} {label}: valid warm {valid['warm:recall@20']:.4f} cold {valid['cold:recall@20']:.4f}"
                  f" all {valid['recall@20']:.4f} | test warm {test['warm:recall@20']:.4f} "
                  f"cold {test['cold:recall@20']:.4f} all {test['recall@20']:.4f}"
                  f" | best epoch {best_epoch}, {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
