"""CPU seconds of one training step of two_tower and mmgraph as the catalogue grows (10k -> 1M items).

bench/scaling.py times whole epochs; on a shared machine whose load leaves a process a few percent
of a core, a 1M-item epoch takes hours of wall time. This measures what does not depend on the
load: CPU seconds (time.process_time) of single training steps (forward, backward, optimizer) with
the trainer's batches and optimizer, median of --steps after one warm-up, in a fresh process per
(model, size). Events: power-law users and items, 2.5 training events per item (what the synthetic
catalogue's split leaves of its 5 per item), 64-d content vectors. An epoch is then
steps_per_epoch x CPU per step: two_tower at a fixed batch (steps grow with the events, the step
cost must not grow with items), mmgraph at a fixed 32 steps (each step must grow at most linearly).

    OMP_NUM_THREADS=1 nice python bench/scaling_steps.py --sizes 10000 100000 1000000 \\
        --out docs/benchmarks/scaling_steps.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, statistics, sys, time
import numpy as np, pandas as pd, scipy.sparse as sp, torch
args = json.loads(sys.argv[1])
torch.set_num_threads(1)
from fusionrec.data.dataset import FeatureModality, TrainData
from fusionrec.models.registry import build_model
from fusionrec.train.sampling import make_sampler
from fusionrec.train.optim import make_adam

def powerlaw(n, size, rng, a=1.0):
    w = 1.0 / np.arange(1, n + 1) ** a
    return rng.permutation(n)[np.searchsorted(np.cumsum(w) / w.sum(), rng.random(size))]

c0 = time.process_time()
n_items = args["n_items"]; n_users = n_items // 2; rng = np.random.default_rng(0)
e = int(2.5 * n_items)
u, i = powerlaw(n_users, e, rng, 0.8), powerlaw(n_items, e, rng, 1.0)
train = sp.csr_matrix((np.ones(e, np.float32), (u, i)), shape=(n_users, n_items))
train.sum_duplicates(); train.data[:] = 1.0
coo = train.tocoo()
frame = pd.DataFrame({"user": coo.row, "item": coo.col})
content = rng.normal(size=(n_items, 64)).astype(np.float32)
data = TrainData(n_users, n_items, train, frame, {"content": FeatureModality("content", "other", content)})
data_cpu = time.process_time() - c0
torch.manual_seed(0)
c1 = time.process_time()
model = build_model(args["model"], data, args["params"])
build_cpu = time.process_time() - c1
batch = args["batch_size"] or -(-train.nnz // args["steps_per_epoch"])
sampler = make_sampler(model.batch_kind, data, batch)
opt = make_adam([p for p in model.parameters() if p.requires_grad], 1e-3)
model.train(); model.pre_epoch()
times = []
for k, b in enumerate(sampler.epoch(np.random.default_rng(0))):
    t = time.process_time()
    opt.zero_grad(set_to_none=True)
    model.calculate_loss(b).backward()
    opt.step()
    if k > 0:
        times.append(time.process_time() - t)
    if len(times) >= args["steps"]:
        break
step = statistics.median(times)
steps = -(-train.nnz // batch)
print(json.dumps({"n_users": n_users, "n_train": int(train.nnz), "batch_size": batch, "steps_per_epoch": steps,
                  "cpu_per_step": step, "cpu_per_epoch_est": step * steps, "data_cpu": data_cpu,
                  "build_cpu": build_cpu, "batch_local": bool(getattr(model, "batch_local", False)),
                  "loss_kind": getattr(model, "loss_kind", getattr(model, "loss_name", None)),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PARAMS = {
    "two_tower": {"modalities": ["content"], "fusion": "concat", "align": "none", "history_len": 20},
    "mmgraph": {"modalities": ["content"], "n_negatives": 256, "modality_graph": False, "embedding_size": 32},
}


def run_one(model: str, n: int, args: argparse.Namespace) -> dict:
    large = n > 50_000
    payload = {"model": model, "n_items": n, "params": PARAMS[model], "steps": args.steps,
               "batch_size": 0 if (model == "mmgraph" and large) else args.batch_size,
               "steps_per_epoch": args.mmgraph_steps}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], check=False, capture_output=True,
                          text=True, env=env)
    row = {"model": model, "n_items": n, "load_avg": os.getloadavg()[0]}
    if proc.returncode != 0:
        row["error"] = (proc.stderr.strip().splitlines() or [f"rc {proc.returncode}"])[-1]
    else:
        row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--models", nargs="+", default=["two_tower", "mmgraph"], choices=sorted(PARAMS))
    p.add_argument("--steps", type=int, default=8, help="timed steps (after one warm-up)")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--mmgraph-steps", type=int, default=32, help="mmgraph above 50k items: steps an epoch")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None, help="CPU s/epoch and peak RSS curves (PNG) here")
    p.add_argument("--rows", type=Path, nargs="*", default=[], help="plot these JSON rows instead of running")
    args = p.parse_args()
    if args.rows:
        rows = [r for f in args.rows for r in json.loads(f.read_text())]
        return _plot(rows, args.plot)
    rows = []
    for model in args.models:
        for n in args.sizes:
            rows.append(run_one(model, n, args))
            print(json.dumps(rows[-1]), flush=True)
            if args.out:
                args.out.write_text(json.dumps(rows, indent=1))
    _plot(rows, args.plot)
    print("\n| model | items | train events | batch | steps/epoch | CPU s/step | CPU s/epoch (est.) | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['n_items']:,} | error: {r['error']} | | | | | |")
            continue
        print(f"| {r['model']} | {r['n_items']:,} | {r['n_train']:,} | {r['batch_size']:,} | {r['steps_per_epoch']} | "
              f"{r['cpu_per_step']:.3f} | {r['cpu_per_epoch_est']:.0f} | {r['peak_rss_mb']:.0f} |")


def _plot(rows: list[dict], path: Path | None) -> None:
    if path is None:
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location("scaling", Path(__file__).with_name("scaling.py"))
    scaling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scaling)
    ok = [r for r in rows if "error" not in r]
    scaling.plot(ok, path, time_key="cpu_per_epoch_est", time_label="CPU seconds per epoch (1 thread)")


if __name__ == "__main__":
    main()
