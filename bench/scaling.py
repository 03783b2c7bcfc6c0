"""Time per epoch and peak memory of two_tower and mmgraph on synthetic catalogues of growing size.

Each (model, size) runs in a fresh process, so its peak resident memory (ru_maxrss) is its own:
generate the catalogue (fusionrec.data.synthetic: 5 events an item, content vectors), split it,
build the model, train a fixed number of epochs, rank all items for a seeded sample of users
(eval.max_users). Nothing is quadratic in items: the modality kNN graph comes from faiss (IVF above
50k items), mmgraph uses its sampled softmax above --full-softmax-max items, two_tower its in-batch
softmax with logQ correction.

    python bench/scaling.py --sizes 10000 100000 1000000 --epochs 1 --out docs/benchmarks/scaling.json

Writes a JSON list of rows (model, n_items, n_interactions, seconds_per_epoch, peak_rss_mb, ...) and
prints a markdown table. One thread per run (OMP_NUM_THREADS=1, torch threads 1) unless --threads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
from fusionrec.config import TrainConfig
from fusionrec.data.split import random_split
from fusionrec.data.synthetic import make_synthetic_dataset
from fusionrec.evaluate.evaluator import Evaluator
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer

t0 = time.perf_counter()
ds = random_split(make_synthetic_dataset(n_items=args["n_items"], seed=0), (0.8, 0.1, 0.1), seed=1)
gen_s = time.perf_counter() - t0
params = dict(args["params"])
data = ds.train_data()
t1 = time.perf_counter()
model = build_model(args["model"], data, params)
build_s = time.perf_counter() - t1
evaluator = Evaluator(ds, ks=(20,), max_users=args["eval_users"])
cfg = TrainConfig(epochs=args["epochs"], batch_size=args["batch_size"], eval_every=args["epochs"],
                  patience=10, checkpoint=False, seeds=[0], progress=False)
result = Trainer(model, data, cfg, evaluator, seed=0).fit()
print(json.dumps({
    "n_users": ds.n_users, "n_interactions": int(len(ds.interactions)),
    "generate_seconds": gen_s, "build_seconds": build_s,
    "seconds_per_epoch": result.seconds_per_epoch, "eval_seconds": result.eval_seconds_per_epoch,
    "valid_recall@20": result.best_valid.get("recall@20"), "eval_users": result.best_valid.get("n_users"),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""

MODEL_PARAMS = {
    # in-batch softmax with logQ correction: cost per step independent of the catalogue
    "two_tower": {"modalities": ["content"], "fusion": "concat", "align": "none"},
    # sampled softmax (256 shared negatives) instead of the exact one over every item
    "mmgraph": {"modalities": ["content"], "loss": "sampled_softmax", "n_negatives": 256},
}


def run_one(model: str, n_items: int, args: argparse.Namespace) -> dict:
    params = dict(MODEL_PARAMS[model])
    if model == "mmgraph" and n_items <= args.full_softmax_max:
        params["loss"] = "softmax"
    payload = {"model": model, "n_items": n_items, "params": params, "epochs": args.epochs,
               "batch_size": args.batch_size, "eval_users": args.eval_users, "threads": args.threads}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], capture_output=True, text=True,
                          env=env, timeout=args.timeout)
    row = {"model": model, "n_items": n_items, "loss": params.get("loss", "softmax"),
           "wall_seconds": time.perf_counter() - start, "load_avg": os.getloadavg()[0]}
    if proc.returncode != 0:
        row["error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"
        return row
    row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--models", nargs="+", default=["two_tower", "mmgraph"], choices=sorted(MODEL_PARAMS))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--eval-users", type=int, default=2000)
    p.add_argument("--full-softmax-max", type=int, default=50_000,
                   help="mmgraph: exact softmax up to this many items, sampled above")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=int, default=7200)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rows = []
    for n in args.sizes:
        for model in args.models:
            row = run_one(model, n, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                args.out.write_text(json.dumps(rows, indent=1))
    print("\n| model | items | events | loss | s/epoch | peak RSS MB | eval s (users) | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['n_items']} | | {r['loss']} | error: {r['error']} | | | |")
            continue
        print(f"| {r['model']} | {r['n_items']:,} | {r['n_interactions']:,} | {r['loss']} | "
              f"{r['seconds_per_epoch']:.1f} | {r['peak_rss_mb']:.0f} | {r['eval_seconds']:.1f} "
              f"({int(r['eval_users'] or 0)}) | {r['load_avg']:.1f} |")


if __name__ == "__main__":
    main()
