"""mmgraph blended with a second fusionrec model, against MMRec's strongest peer (issue 13, acceptance 1).

For each seed: mmgraph with the committed config of the dataset (``bench/configs/<dataset>_mmgraph.yaml``,
as in ``docs/benchmarks/mmrec_compare.md``) and each ``--second`` model (EASE with its valid-chosen l2,
fusionrec's LightGCN with its defaults) are trained with valid-only early stopping; then the blend of
``--model auto`` (``fusionrec.train.auto_blend``: a cascade that re-scores mmgraph's top 200 with a
weighted sum of the two models' per-user standardised scores) is scored on valid for every pair and
weight. The valid-best of {mmgraph alone, every blend} is chosen per seed and scored on test once.
Every row of ``--out`` holds the valid scores of all choices, the choice and its test metrics.

    OMP_NUM_THREADS=1 nice python bench/blend_peers.py --dataset ml100k-mmrec --second ease lightgcn \
        --seeds 2024 2025 2026 --out docs/benchmarks/blend_peers.jsonl
    python bench/blend_peers.py --report docs/benchmarks/blend_peers.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from mmrec_compare import base_config, machine_note

from fusionrec.models.cascade import Cascade
from fusionrec.pipeline import load_data, make_evaluator
from fusionrec.train.auto_blend import BLEND_TOP_N, BLEND_WEIGHTS

# the strongest valid-chosen peer per dataset, test R@20 / N@20 (issue 13's table, 3-seed means)
PEERS = {"ml100k-mmrec": ("SMORE", 0.3559, 0.2886), "lastfm2k": ("SMORE", 0.4221, 0.2977)}
METRIC = "recall@20"


def train(cfg: Any, dataset: Any, evaluator: Any, seed: int) -> tuple[Any, float, float]:
    """Train one model with valid-only early stopping; (model, valid R@20, CPU seconds)."""
    from fusionrec.models.registry import build_model
    from fusionrec.train.trainer import Trainer, seed_everything

    seed_everything(seed)
    data = dataset.train_data(cfg.data.modalities)
    model = build_model(cfg.model.name, data, cfg.model.params)
    cpu = time.process_time()
    valid: dict[str, float] = {}
    if getattr(model, "trainable", True):
        valid = Trainer(model, data, cfg.train, evaluator, seed=seed).fit().best_valid
    else:
        model.fit(data)
    # the trainer's valid scores are those of the weights it kept; a closed-form model is scored here
    valid = valid or evaluator.evaluate(model, "valid")
    return model, float(valid[METRIC]), time.process_time() - cpu


def run_seed(dataset_name: str, seconds: list[str], seed: int) -> dict[str, Any]:
    cfg = base_config(dataset_name)
    dataset = load_data(cfg)
    evaluator = make_evaluator(dataset, cfg)
    first, first_valid, first_cpu = train(cfg, dataset, evaluator, seed)
    choices: dict[str, tuple[float, Any]] = {"mmgraph": (first_valid, first)}
    cpu = {"mmgraph": first_cpu}
    data = dataset.train_data(cfg.data.modalities)
    for name in seconds:
        model, valid, cpu[name] = train(base_config(dataset_name, model=name), dataset, evaluator, seed)
        choices[name] = (valid, model)
        for weight in BLEND_WEIGHTS:
            blend = Cascade.from_models(data, first, model, top_n=min(BLEND_TOP_N, data.n_items), blend=weight)
            choices[f"blend(mmgraph+{name}) w{weight}"] = (float(evaluator.evaluate(blend, "valid")[METRIC]), blend)
    # the choice: mmgraph or a blend, by valid R@20 (the second models alone are references, not choices)
    eligible = {k: v for k, v in choices.items() if k == "mmgraph" or k.startswith("blend")}
    chosen = max(eligible, key=lambda k: eligible[k][0])
    test = evaluator.evaluate(eligible[chosen][1], "test")
    single_test = test if chosen == "mmgraph" else evaluator.evaluate(first, "test")
    return {
        "dataset": dataset_name, "seed": seed, "chosen": chosen,
        "valid": {k: v[0] for k, v in choices.items()},
        "test": {k: float(test[k]) for k in ("recall@20", "ndcg@20", "recall@10", "ndcg@10")},
        "test_mmgraph": {k: float(single_test[k]) for k in ("recall@20", "ndcg@20")},
        "train_cpu_seconds": cpu, "machine": machine_note(),
        "commit": os.popen(f"git -C {REPO} rev-parse --short HEAD").read().strip(),
    }


def report(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for name in sorted({r["dataset"] for r in rows}):
        mine = [r for r in rows if r["dataset"] == name]
        peer, p_r, p_n = PEERS[name]
        r20 = [r["test"]["recall@20"] for r in mine]
        n20 = [r["test"]["ndcg@20"] for r in mine]
        solo = [r["test_mmgraph"]["recall@20"] for r in mine]

        def ms(xs: list[float]) -> str:
            return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"

        print(f"{name}: seeds {[r['seed'] for r in mine]}, chosen {[r['chosen'] for r in mine]}")
        print(f"  chosen on valid: test R@20 {ms(r20)}, N@20 {ms(n20)} (mmgraph alone R@20 {ms(solo)})")
        print(f"  vs {peer} {p_r:.4f} / {p_n:.4f}: {statistics.mean(r20) / p_r - 1:+.1%} / "
              f"{statistics.mean(n20) / p_n - 1:+.1%} (target +10%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(PEERS))
    ap.add_argument("--second", nargs="+", default=["ease", "lightgcn"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[2024, 2025, 2026])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--report", type=Path)
    args = ap.parse_args()
    if args.report:
        report(args.report)
        return
    if not args.dataset or not args.out:
        ap.error("--dataset and --out are needed to run (or --report FILE)")
    for seed in args.seeds:
        row = run_seed(args.dataset, args.second, seed)
        with args.out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in ("dataset", "seed", "chosen", "test")}), flush=True)


if __name__ == "__main__":
    main()
