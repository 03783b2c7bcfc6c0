"""New users on ml100k: the attribute user tower against popularity (docs/benchmarks/user_coldstart.md).

Split: ``user_cold_start`` -- 10% of the users (with all their ratings) are test users,
10% valid users, never seen in training; one split per seed (``data.split.seed`` = seed).
Users are described by ``../shared/data/ml100k/users.csv`` (age, gender, occupation, zip).

Per seed:

* ``pop`` -- training popularity;
* ``two_tower`` with ``user_attributes: true`` for every configuration in ``GRID``: trained
  with early stopping on the *valid users'* Recall@20 from attributes alone; the
  configuration with the best mean valid Recall@20 over 0 / 1 / 3 given events (the new-user
  protocol on the valid users) is chosen per seed (selection on valid only);
* the chosen model and pop on the test users with their first 0 / 1 / 3 events given
  (:mod:`fusionrec.evaluate.user_cold`); the same truth (events after the third) for every row.

    OMP_NUM_THREADS=1 nice python bench/user_coldstart.py --seeds 1 2 3 --out bench/results/user_coldstart.json
    # or one process per seed, then: python bench/user_coldstart.py --merge s1.json s2.json s3.json --out ...
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

from fusionrec.config import TrainConfig, resolve_config
from fusionrec.data.loading import load_dataset
from fusionrec.evaluate import Evaluator
from fusionrec.evaluate.user_cold import (
    evaluate_new_users,
    model_scorer,
    new_user_cases,
)
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer, seed_everything

USERS = ["data.users_path=shared://ml100k/users.csv",
         "data.user_columns={user: user_id, attributes: 'age,gender,occupation,zip_code'}"]
BASE = {"user_attributes": True, "use_content": False, "history": "mean", "embedding_size": 64,
        "logq": True, "temperature": 0.05, "align": "none"}
GRID = {
    "half of the users trained as new": {"user_id_dropout": 0.5},
    "all users trained as new": {"user_id_dropout": 1.0},
}
N_FIRST = (0, 1, 3)
KS = (10, 20, 50)


def load(seed: int):
    cfg = resolve_config(dataset="ml100k", model="two_tower", overrides=USERS + [
        "data.split.method=user_cold_start", f"data.split.seed={seed}"])
    # the item tower is ID-only here (use_content: false), so no item features are encoded
    return load_dataset(cfg.data)


def train_tower(data, params: dict[str, Any], seed: int, epochs: int) -> tuple[Any, dict[str, Any]]:
    seed_everything(seed)
    model = build_model("two_tower", data.train_data(), {**BASE, **params})
    cfg = TrainConfig(epochs=epochs, batch_size=1024, lr=0.003, patience=3, checkpoint=False, progress=True,
                      valid_metric="recall@20", num_threads=1)
    ev = Evaluator(data, ks=KS, protocol="full", beyond_accuracy=False)
    res = Trainer(model, data.train_data(), cfg, evaluator=ev, seed=seed).fit()
    model.eval()
    return model, {"valid_recall@20": res.best_valid.get("recall@20"), "best_epoch": res.best_epoch,
                   "seconds_per_epoch": res.seconds_per_epoch}


def run_seed(seed: int, epochs: int) -> dict[str, Any]:
    data = load(seed)
    cases = new_user_cases(data, "test", N_FIRST)
    pop = build_model("pop", data.train_data(), {})
    pop.fit(data.train_data())
    out: dict[str, Any] = {"seed": seed, "test_users": len(cases.users),
                           "pop": evaluate_new_users(model_scorer(pop), cases, data.n_items, N_FIRST, KS)}
    valid = new_user_cases(data, "valid", N_FIRST)
    best, grid = None, {}
    for name, params in GRID.items():
        model, info = train_tower(data, params, seed, epochs)
        # choose on the valid users' own protocol: mean Recall@20 over 0, 1 and 3 given events
        table = evaluate_new_users(model_scorer(model), valid, data.n_items, N_FIRST, KS)
        info["valid_new_users_recall@20"] = {n: table[n]["recall@20"] for n in N_FIRST}
        info["selection"] = sum(table[n]["recall@20"] for n in N_FIRST) / len(N_FIRST)
        grid[name] = info
        if best is None or info["selection"] > grid[best[0]]["selection"]:
            best = (name, model)
    assert best is not None
    out["grid"] = grid
    out["chosen"] = best[0]
    out["tower"] = evaluate_new_users(model_scorer(best[1]), cases, data.n_items, N_FIRST, KS)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", default="bench/results/user_coldstart.json")
    ap.add_argument("--merge", nargs="+", help="summarise these per-seed result files instead of running "
                                               "(seeds run as separate processes)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    runs = []
    if args.merge:
        runs = [r for f in args.merge for r in json.loads(Path(f).read_text())["runs"]]
        runs = [{**r, "pop": {int(k): v for k, v in r["pop"].items()},
                 "tower": {int(k): v for k, v in r["tower"].items()}} for r in runs]
        args.seeds = [r["seed"] for r in runs]
    for seed in ([] if args.merge else args.seeds):
        runs.append(run_seed(seed, args.epochs))
        runs[-1]["load"] = os.getloadavg()[0]
        print(json.dumps(runs[-1]["grid"]), runs[-1]["chosen"], flush=True)
    summary = {}
    for n in N_FIRST:
        p = [r["pop"][n]["recall@20"] for r in runs]
        t = [r["tower"][n]["recall@20"] for r in runs]
        summary[n] = {"pop": statistics.median(p), "tower": statistics.median(t),
                      "gain": statistics.median([b / a - 1 for a, b in zip(p, t)])}
        print(f"first {n} events: pop recall@20 {summary[n]['pop']:.4f}  tower {summary[n]['tower']:.4f}  "
              f"gain {summary[n]['gain']:+.1%} (medians over seeds {args.seeds})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"runs": runs, "summary": summary, "seconds": time.time() - t0,
                                          "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1))


if __name__ == "__main__":
    main()
