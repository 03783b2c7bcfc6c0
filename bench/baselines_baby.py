"""Acceptance benchmark: BPR and LightGCN on Amazon-Baby against MMRec's published numbers.

Run by hand (results go to docs/benchmarks/baselines.md)::

    nice -n 5 python bench/baselines_baby.py --model bpr --reg 0.001 0.01 --out /tmp/baby_bpr.json
    nice -n 5 python bench/baselines_baby.py --model lightgcn --reg 1e-4 --layers 3 --out /tmp/baby_lgn.json

Protocol, as MMRec (``src/configs/overall.yaml``): embedding 64, Adam lr 1e-3,
batch 2048, one uniform negative per training interaction per epoch, at most
1000 epochs, early stopping after 20 evaluations without a better valid
Recall@20, ``mmrec`` evaluation protocol (only training positives masked).
Every grid point is trained with the same seed; the point with the best
**valid** Recall@20 is chosen and only that model is scored on test, once.
(MMRec's own quick_start picks the grid point by its *test* score, which leaks
the test split; we do not.)

Published MMRec values (Baby, Recall@20 / NDCG@20): BPR 0.0575 / 0.0249,
LightGCN 0.0754 / 0.0328; the acceptance band is +-5%. Note the shared
amazon-baby split is MMHCL's per-user 8:1:1 split with MMRec's user/item sets,
not MMRec's own split file (missing from the mirrors).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fusionrec.config import TrainConfig  # noqa: E402
from fusionrec.data.dataset import Dataset  # noqa: E402
from fusionrec.evaluate import Evaluator  # noqa: E402
from fusionrec.models.registry import build_model  # noqa: E402
from fusionrec.train import Trainer, seed_everything  # noqa: E402

PUBLISHED = {"bpr": {"recall@20": 0.0575, "ndcg@20": 0.0249},
             "lightgcn": {"recall@20": 0.0754, "ndcg@20": 0.0328}}
SPLITS = np.array(["train", "valid", "test"], dtype=object)


def load_baby() -> Dataset:
    """The shared amazon-baby dataset: the loader preset when available, else baby.inter via pandas."""
    try:
        from fusionrec.data.loading import load_preset

        return load_preset("amazon-baby")
    except Exception as err:  # loader missing or failing: read the MMRec file directly
        print(f"preset loader unavailable ({err}); reading baby.inter with pandas", file=sys.stderr)
    root = Path(os.environ.get("FUSIONREC_SHARED_DATA", REPO.parent / "shared" / "data"))
    inter = pd.read_csv(root / "amazon-baby" / "baby.inter", sep="\t")
    n_users = int(inter["userID"].max()) + 1
    n_items = int(inter["itemID"].max()) + 1
    frame = pd.DataFrame({"user": inter["userID"], "item": inter["itemID"],
                          "split": SPLITS[inter["x_label"].to_numpy()]})
    return Dataset("amazon-baby", np.arange(n_users), np.arange(n_items), frame)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["bpr", "lightgcn"], required=True)
    ap.add_argument("--reg", type=float, nargs="+", default=None, help="reg_weight grid (default: yaml value)")
    ap.add_argument("--layers", type=int, nargs="+", default=[3], help="LightGCN n_layers grid")
    ap.add_argument("--seed", type=int, default=999, help="MMRec's default seed")
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--patience", type=int, default=20, help="evaluations without improvement before stopping")
    ap.add_argument("--eval-every", type=int, default=1, help="validate every N epochs (MMRec: 1)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    ap.add_argument("--time-only", type=int, default=0, metavar="N",
                    help="only time N training epochs and N valid evaluations (CPU and wall seconds); "
                         "CPU time is what to compare on a shared machine")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    t_load = time.perf_counter()
    dataset = load_baby()
    print(dataset, f"(loaded in {time.perf_counter() - t_load:.1f}s)", file=sys.stderr)
    evaluator = Evaluator(dataset, ks=(10, 20, 50), protocol="mmrec",
                          metrics=("recall", "ndcg", "precision", "map"), batch_users=4096)
    cfg = TrainConfig(epochs=args.epochs, batch_size=2048, lr=args.lr, weight_decay=0.0, patience=args.patience,
                      eval_every=args.eval_every, valid_metric="recall@20", seeds=[args.seed], num_threads=args.threads,
                      checkpoint=False, progress=False)
    if args.time_only:
        time_only(args, dataset, evaluator, cfg)
        return
    grid = []
    for reg in (args.reg or [None]):
        for layers in (args.layers if args.model == "lightgcn" else [None]):
            params = {"embedding_size": 64}
            if reg is not None:
                params["reg_weight"] = reg
            if layers is not None:
                params["n_layers"] = layers
            grid.append(params)

    runs = []
    best = None
    for params in grid:
        seed_everything(args.seed)
        data = dataset.train_data([])
        model = build_model(args.model, data, params)
        start, cpu_start = time.perf_counter(), time.process_time()
        result = Trainer(model, data, cfg, evaluator, seed=args.seed).fit()
        run = {
            "params": model.params, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "valid": result.best_valid, "seconds_per_epoch": result.seconds_per_epoch,
            "eval_seconds": result.eval_seconds_per_epoch, "total_seconds": time.perf_counter() - start,
            "total_cpu_seconds": time.process_time() - cpu_start,
            "stopped_early": result.stopped_early,
            "valid_curve": [h.get("valid", {}).get("recall@20") for h in result.history],
        }
        print(json.dumps({k: v for k, v in run.items() if k != "valid_curve"}), file=sys.stderr, flush=True)
        runs.append(run)
        if best is None or run["valid"]["recall@20"] > best[0]["valid"]["recall@20"]:
            best = (run, {k: v.clone() for k, v in model.state_dict().items()}, model)
    chosen, state, model = best
    model.load_state_dict(state)
    test = evaluator.evaluate(model, split="test")  # the test split, once, for the valid-chosen model
    pub = PUBLISHED[args.model]
    report = {
        "model": args.model, "machine": machine(), "argv": sys.argv[1:], "load_avg_end": os.getloadavg(),
        "chosen_params": chosen["params"], "test": test, "published": pub,
        "relative_gap": {k: test[k] / v - 1.0 for k, v in pub.items()},
        "within_5pct": all(abs(test[k] / v - 1.0) <= 0.05 for k, v in pub.items()),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(json.dumps({k: report[k] for k in ("model", "chosen_params", "test", "relative_gap", "within_5pct")},
                     indent=1, default=float))


def time_only(args: argparse.Namespace, dataset: Dataset, evaluator: Evaluator, cfg: TrainConfig) -> None:
    """Median CPU / wall seconds of one training epoch and one full valid evaluation."""
    from fusionrec.train.optim import make_adam
    from fusionrec.train.sampling import make_sampler

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    data = dataset.train_data([])
    params = {"embedding_size": 64}
    if args.reg:
        params["reg_weight"] = args.reg[0]
    if args.model == "lightgcn":
        params["n_layers"] = args.layers[0]
    model = build_model(args.model, data, params)
    opt = make_adam(list(model.parameters()), args.lr)
    sampler = make_sampler("pairwise", data, 2048)
    rows = []
    evaluator.evaluate(model, "valid")  # warm-up: builds and caches the split masks
    for epoch in range(args.time_only):
        w0, c0 = time.perf_counter(), time.process_time()
        model.train()
        for batch in sampler.epoch(np.random.default_rng([args.seed, epoch])):
            opt.zero_grad(set_to_none=True)
            model.calculate_loss(batch).backward()
            opt.step()
        w1, c1 = time.perf_counter(), time.process_time()
        evaluator.evaluate(model, "valid")
        w2, c2 = time.perf_counter(), time.process_time()
        rows.append({"train_wall": w1 - w0, "train_cpu": c1 - c0, "eval_wall": w2 - w1, "eval_cpu": c2 - c1})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    med = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    report = {"model": args.model, "machine": machine(), "threads": args.threads, "load_avg": os.getloadavg(),
              "epochs": args.time_only, "median": med, "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["median"]))


if __name__ == "__main__":
    main()
