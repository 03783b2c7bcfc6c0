"""New-item scoring rules for mmgraph-adaptive on the demo, scored on weights saved by demo_slices.py.

    FUSIONREC_CACHE=/tmp/dm/cache OMP_NUM_THREADS=1 python bench/demo_cold_scoring.py --seed 2024 \
      --load /tmp/ad/base --params '{"item_bias": true, "cold_dropout": 0.3, "head_detach": true}' \
      --grid "head 2 0.1,0.125 0.16" --grid "knn 1,2 -2,-1 0,0.16" --grid "combo 2 0.1,0.25 0.15,0.2 0.16,0.2"

Warm items keep the model's score (cosine / temperature + item bias). A new item's logit is, per rule:

* ``head BETA MARGIN GATE``: the model's own path, (cos(user, normalize(head + BETA x warm-neighbour
  mean)) - MARGIN + GATE x centred log activity) / temperature (cold_neighbours, cold_margin, cold_gate);
* ``knn A C GATE``: content-kNN's score (similarity of the item's content to the user's training items,
  fusionrec/models/content.py) standardised over user x new-item pairs, mapped affinely onto the
  logit scale: A x z + C + GATE x activity / temperature;
* ``combo BETA A MARGIN GATE``: the head's logit plus A x the standardised content-kNN score.

Each comma list is swept. Prints valid and test warm / new-item Recall@20 and the demo.md selection
rule's value, min(valid warm / 0.4264, valid cold / 0.1820) (lightgcn's and content_knn's 3-seed valid).
Selection reads the valid columns only.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from fusionrec.config import deep_merge
from fusionrec.evaluate.slices import slice_metrics
from fusionrec.experiments.multimodal_demo import (
    demo_settings,
    prepare_demo_dataset,
    run_config_from_dict,
)
from fusionrec.models.registry import build_model
from fusionrec.pipeline import make_evaluator

LIGHTGCN_VALID_WARM, CONTENT_KNN_VALID_COLD = 0.4264, 0.1820


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--load", required=True, metavar="DIR", help="demo_slices.py --save folder (v0_seed<seed>.pt)")
    parser.add_argument("--params", default="{}", help="mmgraph params the weights were trained with (JSON)")
    parser.add_argument("--grid", action="append", required=True, metavar="RULE VALUES...")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = demo_settings()
    base = copy.deepcopy(settings["run"])
    ds = prepare_demo_dataset(settings["data"], settings["encoders"], base)
    params = {**json.loads(args.params), "cold_margin": 0.0, "cold_gate": 0.0, "cold_neighbours": 0.0}
    cfg = run_config_from_dict(deep_merge(base, {"model": {"name": "mmgraph", "params": params}}))
    evaluator = make_evaluator(ds, cfg)
    torch.manual_seed(args.seed)
    data = ds.train_data(cfg.data.modalities)
    model = build_model("mmgraph", data, params)
    model.load_state_dict(torch.load(Path(args.load) / f"v0_seed{args.seed}.pt"))
    model.eval()
    cold, tau = model._cold, model.temperature
    with torch.no_grad():
        users, items = (x.clone() for x in model._final())
        head = model.head()
        warm_items = items.masked_fill(cold[:, None], 0.0)
        neighbour_mean = torch.sparse.mm(model._cold_neighbours(), warm_items)
        knn = build_model("content_knn", data, {}).full_sort_predict(torch.arange(ds.n_users))[:, cold]
    knn_z = (knn - knn.mean()) / knn.std()
    activity = model._activity[:, None]
    warm_logits = users @ items.T / tau + model.bias()[None, :]

    def head_logit(beta: float, margin: float, gate: float) -> torch.Tensor:
        vec = F.normalize(head + beta * neighbour_mean, dim=1) if beta > 0 else head
        return (users @ vec[cold].T - margin + gate * activity) / tau

    rules = {
        "head": head_logit,
        "knn": lambda a, c, gate: a * knn_z + c + gate * activity / tau,
        "combo": lambda beta, a, margin, gate: head_logit(beta, margin, gate) + a * knn_z,
    }
    for spec in args.grid:
        rule, *lists = spec.split()
        for point in itertools.product(*[[float(v) for v in values.split(",")] for values in lists]):
            scores = warm_logits.clone()
            scores[:, cold] = rules[rule](*point)
            fn = lambda u, s=scores: s[torch.as_tensor(u, dtype=torch.long)]
            valid, test = slice_metrics(evaluator, fn, "valid"), slice_metrics(evaluator, fn, "test")
            vw, vc = valid["warm:recall@20"], valid["cold:recall@20"]
            value = min(vw / LIGHTGCN_VALID_WARM, vc / CONTENT_KNN_VALID_COLD)
            print(f"{rule} {point}: valid warm {vw:.4f} cold {vc:.4f} rule {value:.4f} | test warm "
                  f"{test['warm:recall@20']:.4f} cold {test['cold:recall@20']:.4f}", flush=True)


if __name__ == "__main__":
    main()
