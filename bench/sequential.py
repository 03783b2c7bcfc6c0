"""fusionrec's sequential models on ml100k, leave-one-out by time, full ranking (docs/benchmarks/sequential.md).

    OMP_NUM_THREADS=1 nice python bench/sequential.py --models sasrec gru4rec mm_sasrec seq_content_knn \
        --seeds 2024 2025 2026 --out docs/benchmarks/sequential_fusionrec.jsonl
    python bench/sequential.py --report docs/benchmarks/sequential_fusionrec.jsonl \
        docs/benchmarks/sequential_recbole.jsonl

One process, one torch thread; every (model, seed) is one whole ``run_experiment`` (load, train to
early stop on valid NDCG@10 with RecBole's patience of 10, test once), timed in wall and CPU seconds.
Each test result carries three views of the same ranking:

* the fusionrec protocol (``recall@10`` ...): training and valid items the user saw are masked;
* ``nomask:*`` -- RecBole's protocol for sequential models: nothing the user saw is masked
  (RecBole's full-sort evaluation of sequential models drops no history), computed from the same
  scores by the rank of the held-out item among all items;
* ``cold:*`` / ``warm:*`` -- :func:`fusionrec.evaluate.slices.slice_metrics`: test events whose item
  has no training interaction vs the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

BASE = ["data.split.method=leave_last_out", "train.valid_metric=ndcg@10", "train.patience=10",
        "train.num_threads=1", "train.checkpoint=false", "eval.ks=[10,20]", "eval.beyond_accuracy=false",
        "eval.metrics=[recall,ndcg]", "train.progress=true"]


def nomask_metrics(model: Any, evaluator: Any, split: str = "test", ks: tuple[int, ...] = (10, 20)
                   ) -> dict[str, float]:
    """Recall/NDCG@K when nothing is masked (RecBole's sequential protocol), from the model's scores."""
    info = evaluator.split_truth(split)
    evaluator.share_context(model, split)
    model.eval()
    hits = {k: [] for k in ks}
    gains = {k: [] for k in ks}
    with torch.no_grad():
        for b0 in range(0, len(info.users), 512):
            users = info.users[b0:b0 + 512]
            scores = model.full_sort_predict(torch.from_numpy(users)).float()
            for row in range(len(users)):
                targets = info.truth[b0 + row].indices
                s = scores[row]
                ranks = np.array([int((s > s[t]).sum()) for t in targets])
                for k in ks:
                    hits[k].append((ranks < k).mean())
                    gains[k].append((np.where(ranks < k, 1.0 / np.log2(ranks + 2), 0.0)).sum()
                                    / sum(1.0 / np.log2(i + 2) for i in range(min(len(targets), k))))
    out = {}
    for k in ks:
        out[f"nomask:recall@{k}"] = float(np.mean(hits[k]))
        out[f"nomask:ndcg@{k}"] = float(np.mean(gains[k]))
    return out


def test_extra(model: Any, evaluator: Any) -> dict[str, float]:
    from fusionrec.evaluate.slices import slice_metrics

    out = slice_metrics(evaluator, model, "test")
    if hasattr(model, "set_context_events"):
        out.update(nomask_metrics(model, evaluator))
        # the chosen model's valid score under RecBole's protocol, to compare with RecBole's valid curve
        out.update({f"valid_{k}": v for k, v in nomask_metrics(model, evaluator, "valid").items()})
    return out


def run_one(dataset: str, model: str, seed: int, sets: list[str], out: Path) -> dict[str, Any]:
    from fusionrec.config import resolve_config
    from fusionrec.pipeline import run_experiment

    torch.set_num_threads(1)
    overrides = [*BASE, f"train.seeds=[{seed}]", "output_dir=/tmp/seq/runs", *sets]
    w0, c0 = time.perf_counter(), time.process_time()
    cfg = resolve_config(dataset=dataset, model=model, overrides=overrides)
    res = run_experiment(cfg, test_extra=test_extra)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    rec = res["per_seed"][0]
    row = {"system": "fusionrec", "model": model, "sets": sets, "seed": seed, "dataset": dataset,
           "valid": rec["valid"], "test": rec["test"], "best_epoch": rec["best_epoch"],
           "epochs_run": rec["epochs_run"], "seconds_per_epoch": rec["seconds_per_epoch"],
           "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "loadavg_end": os.getloadavg(),
           "threads": torch.get_num_threads(), "run_dir": res["run_dir"]}
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row


# ---------------------------------------------------------------------- report
def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    med = float(np.median(values))
    return f"{med:.4f}" + (f" ({min(values):.4f}-{max(values):.4f})" if len(values) > 1 else "")


def report(paths: list[str]) -> str:
    rows = [json.loads(line) for p in paths if Path(p).is_file() for line in Path(p).read_text().splitlines()
            if line.strip()]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        # runs with other overrides (split, epochs cap, parameters) are other experiments
        name = r["model"] + "".join(f" {k.split('.')[-1]}={v}" for k, _, v in
                                    (x.partition("=") for x in r.get("sets", [])))
        if r.get("epochs_cap"):
            name += f" epochs={r['epochs_cap']}"
        groups[(r["system"], name)].append(r)
    head = ("| system | model | seeds | valid NDCG@10 | test Recall@10 | test NDCG@10 | no-mask Recall@10 | "
            "no-mask NDCG@10 | cold Recall@10 (users) | epochs (best) | CPU s | wall s | load |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for (system, model), rs in sorted(groups.items()):
        t = [r["test"] for r in rs]
        rec = system.startswith("recbole")
        valid = [v["ndcg@10"] for r in rs if "ndcg@10" in (v := r.get("valid") or r.get("best_valid") or {})]
        cold = [x["cold:recall@10"] for x in t if "cold:recall@10" in x and x["cold:recall@10"] == x["cold:recall@10"]]
        cold_users = int(t[0].get("cold:n_users", 0)) if t else 0
        epochs = [f"{r['epochs_run']} ({r.get('best_epoch', '?')})" for r in rs]
        lines.append("| " + " | ".join([
            system, model, ",".join(str(r["seed"]) for r in rs), _fmt(valid),
            "-" if rec else _fmt([x["recall@10"] for x in t]), "-" if rec else _fmt([x["ndcg@10"] for x in t]),
            _fmt([x["recall@10" if rec else "nomask:recall@10"] for x in t if rec or "nomask:recall@10" in x]),
            _fmt([x["ndcg@10" if rec else "nomask:ndcg@10"] for x in t if rec or "nomask:ndcg@10" in x]),
            f"{_fmt(cold)} ({cold_users})" if cold else "-", ", ".join(epochs),
            f"{np.median([r['cpu_seconds'] for r in rs]):.0f}", f"{np.median([r['wall_seconds'] for r in rs]):.0f}",
            # 1-minute load average when each run ended (2 cores): wall seconds mean little without it
            "-".join(f"{x:.0f}" for x in sorted({round(r["loadavg_end"][0]) for r in rs})),
        ]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml100k")
    ap.add_argument("--models", nargs="*", default=["sasrec"], help="registry names")
    ap.add_argument("--set", action="append", default=[], help="extra --set overrides for every run")
    ap.add_argument("--seeds", nargs="*", type=int, default=[2024])
    ap.add_argument("--out", default="docs/benchmarks/sequential_fusionrec.jsonl")
    ap.add_argument("--report", nargs="*", help="print the table of these JSONL files and exit")
    args = ap.parse_args()
    if args.report:
        print(report(args.report))
        return
    for seed in args.seeds:
        for model in args.models:
            row = run_one(args.dataset, model, seed, args.set, Path(args.out))
            print(json.dumps({k: row[k] for k in ("model", "seed", "best_epoch", "cpu_seconds", "wall_seconds")}
                             | {k: round(v, 4) for k, v in row["test"].items() if "@10" in k}), flush=True)


if __name__ == "__main__":
    main()
