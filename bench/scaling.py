"""Time per epoch and peak memory of two_tower and mmgraph on synthetic catalogues of growing size.

Each (model, size) runs in a fresh process, so its peak resident memory (ru_maxrss) is its own:
generate the catalogue (fusionrec.data.synthetic: 5 events an item, content vectors), split it,
build the model, train a fixed number of epochs, rank all items for a seeded sample of users
(eval.max_users). Nothing is quadratic in items: the modality kNN graph comes from faiss (IVF above
50k items); above --full-softmax-max items (the models' full_softmax_max_items) two_tower trains
batch-local (in-batch + sampled negatives with logQ correction, sampled histories, sparse ID
gradients) and mmgraph trains a sampled softmax in --mmgraph-steps whole-graph steps an epoch
(train.batch_size = training events / steps), so an epoch is linear in the events.

    OMP_NUM_THREADS=1 nice python bench/scaling.py --sizes 10000 100000 1000000 --epochs 1 \
        --out docs/benchmarks/scaling.json --plot docs/images/scaling_epoch.png

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
torch.manual_seed(0)  # the initial weights too, not only the trainer's sampling
model = build_model(args["model"], data, params)
build_s = time.perf_counter() - t1
# users scored at once: [batch, n_items] scores of at most ~128M floats (128 users at 1M items)
evaluator = Evaluator(ds, ks=(20,), max_users=args["eval_users"],
                      batch_users=max(16, min(1024, 128_000_000 // args["n_items"])))
batch = args["batch_size"]
if args["steps"]:  # a fixed number of (large) steps an epoch
    batch = -(-int(data.train.nnz) // args["steps"])
cfg = TrainConfig(epochs=args["epochs"], batch_size=batch, eval_every=args["epochs"],
                  patience=10, checkpoint=False, seeds=[0], progress=False)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c0 = cpu()
result = Trainer(model, data, cfg, evaluator, seed=0).fit()
fit_cpu = cpu() - c0
print(json.dumps({
    "n_users": ds.n_users, "n_interactions": int(len(ds.interactions)), "batch_size": batch,
    "n_train": int(data.train.nnz), "batch_local": bool(getattr(model, "batch_local", False)),
    "loss_kind": getattr(model, "loss_kind", getattr(model, "loss_name", None)),
    "generate_seconds": gen_s, "build_seconds": build_s,
    "seconds_per_epoch": result.seconds_per_epoch, "eval_seconds": result.eval_seconds_per_epoch,
    "valid_recall@20": result.best_valid.get("recall@20"), "eval_users": result.best_valid.get("n_users"),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    # CPU seconds of training + the one validation: what the load does not inflate
    "fit_cpu_seconds": fit_cpu, "total_cpu_seconds": cpu(),
}))
"""

MODEL_PARAMS = {
    # in-batch softmax with logQ correction; batch-local above full_softmax_max_items
    # (history_len 20: the sampled history each user reads in a batch-local step)
    "two_tower": {"modalities": ["content"], "fusion": "concat", "align": "none", "history_len": 20},
    # exact softmax up to full_softmax_max_items, sampled softmax (256 shared negatives) above
    # (no modality kNN graph: its faiss IVF build grows as items^1.5, ~1 h for 1M x 64-d here;
    # measured on its own in docs/benchmarks/scaling.md)
    # (embedding_size 32: a 1M-item step keeps ~10 propagated [users + items, d] tables for backward,
    # ~9 GB at d=64, more than this shared 24 GB machine can spare)
    "mmgraph": {"modalities": ["content"], "n_negatives": 256, "modality_graph": False, "embedding_size": 32},
}


def run_one(model: str, n_items: int, args: argparse.Namespace) -> dict:
    params = {**MODEL_PARAMS[model], "full_softmax_max_items": args.full_softmax_max}
    large = n_items > args.full_softmax_max
    steps = args.mmgraph_steps if model == "mmgraph" and large else 0
    payload = {"model": model, "n_items": n_items, "params": params, "epochs": args.epochs, "steps": steps,
               "batch_size": args.batch_size, "eval_users": args.eval_users, "threads": args.threads}
    # glibc raises its mmap threshold as large blocks are freed, after which the per-step tensors of
    # varying size fragment the heap: RSS grew ~10 MB a step (100k items) with no live tensor behind
    # it. A fixed threshold hands big blocks back to the OS on free: RSS flat (docs/scaling.md).
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1",
           "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "65536")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], check=False, capture_output=True, text=True,
                          env=env, timeout=args.timeout)
    row = {"model": model, "n_items": n_items, "loss": _loss_label(model, large),
           "wall_seconds": time.perf_counter() - start, "load_avg": os.getloadavg()[0]}
    if proc.returncode != 0:
        row["error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"
        return row
    row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return row


def _loss_label(model: str, large: bool) -> str:
    if model == "two_tower":
        return "batch-local: in-batch + 256 sampled, logQ" if large else "in-batch softmax + logQ"
    return "sampled softmax (256 uniform)" if large else "exact softmax"


def plot(rows: list[dict], path: Path, time_key: str = "seconds_per_epoch",
         time_label: str = "seconds per epoch (wall, 1 thread)") -> None:
    """Seconds per epoch and peak RSS against catalogue size (log-log), one curve per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        ok = sorted((r for r in rows if r["model"] == model and "error" not in r), key=lambda r: r["n_items"])
        x = [r["n_items"] for r in ok]
        axes[0].plot(x, [r[time_key] for r in ok], "o-", label=model)
        axes[1].plot(x, [r["peak_rss_mb"] for r in ok], "o-", label=model)
    if rows:
        lo, hi = min(r["n_items"] for r in rows), max(r["n_items"] for r in rows)
        ref = [r for r in rows if r["n_items"] == lo and "error" not in r]
        if ref and hi > lo:  # a line of slope 1 through the smallest two_tower point: linear growth
            y0 = ref[0][time_key]
            axes[0].plot([lo, hi], [y0, y0 * hi / lo], "k:", label="linear in items")
    for ax, label in zip(axes, (time_label, "peak RSS (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("items in the catalogue")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("fusionrec on synthetic catalogues (bench/scaling.py)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--models", nargs="+", default=["two_tower", "mmgraph"], choices=sorted(MODEL_PARAMS))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--eval-users", type=int, default=2000)
    p.add_argument("--full-softmax-max", type=int, default=50_000,
                   help="the models' full_softmax_max_items: exact paths up to this many items, sampled above")
    p.add_argument("--mmgraph-steps", type=int, default=32,
                   help="mmgraph above --full-softmax-max: steps an epoch (batch = training events / steps)")
    p.add_argument("--plot", type=Path, default=None, help="write the curves (PNG) here")
    p.add_argument("--append", action="store_true", help="add to the rows already in --out")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=int, default=7200)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rows = json.loads(args.out.read_text()) if args.append and args.out and args.out.exists() else []
    for n in args.sizes:
        for model in args.models:
            row = run_one(model, n, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                args.out.write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot(rows, args.plot)
    print("\n| model | items | events | loss | batch | s/epoch | peak RSS MB | valid R@20 | eval s (users) | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['n_items']} | | {r['loss']} | error: {r['error']} | | | |")
            continue
        print(f"| {r['model']} | {r['n_items']:,} | {r['n_interactions']:,} | {r['loss']} | {r['batch_size']:,} | "
              f"{r['seconds_per_epoch']:.1f} | {r['peak_rss_mb']:.0f} | {r['valid_recall@20'] or 0:.4f} | "
              f"{r['eval_seconds']:.1f} ({int(r['eval_users'] or 0)}) | {r['load_avg']:.1f} |")


if __name__ == "__main__":
    main()
