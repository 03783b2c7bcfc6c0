"""RecBole 1.2.1's SASRec / GRU4Rec on ml100k, leave-one-out by time, full ranking (reference side of
docs/benchmarks/sequential.md).

Runs in RecBole's own virtual environment, never fusionrec's (see the doc for the install):

    fusionrec data convert --dataset ml100k --out /tmp/seq/recbole-ml100k --name ml100k
    OMP_NUM_THREADS=1 /tmp/recbole-venv/bin/python bench/sequential_recbole.py \
        --data /tmp/seq/recbole-ml100k --model SASRec --seed 2024 --out docs/benchmarks/sequential_recbole.jsonl

The models keep RecBole's default configuration (its model yaml and overall.yaml: CE loss, 50 items
of history, batch 2048, lr 0.001, 300 epochs, early stop after 10 evaluations); only the protocol
is set: the atomic ``.inter`` file ``fusionrec data convert`` wrote (every rating is an event),
leave-one-out by time (``LS: valid_and_test``, ``order: TO``), full ranking, Recall/NDCG at 10
and 20, NDCG@10 chooses the epoch on valid (as in the fusionrec runs), one torch thread.
One JSON line per run is appended to ``--out``: test and best-valid metrics, wall and CPU seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def _timed(fn, out: list[tuple[float, float]]):
    """``fn`` wrapped so every call appends its (wall, CPU) seconds to ``out``."""
    def wrapper(*args, **kwargs):
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            out.append((time.perf_counter() - w0, time.process_time() - c0))
    return wrapper


class _WallLimit(Exception):
    """Raised before a training epoch once the wall-clock budget is spent."""


def _cap_wall(trainer, wall0: float, limit: float | None) -> dict[str, bool]:
    """Make ``trainer`` stop (``_WallLimit``) before an epoch that starts after ``limit`` wall seconds."""
    state = {"hit": False}
    if limit is None:
        return state
    train_epoch = trainer._train_epoch

    def capped(*args, **kwargs):
        if time.perf_counter() - wall0 > limit:
            state["hit"] = True
            raise _WallLimit
        return train_epoch(*args, **kwargs)
    trainer._train_epoch = capped
    return state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder holding <name>/<name>.inter is NOT needed: the "
                                                  "folder with ml100k.inter itself")
    ap.add_argument("--name", default="ml100k")
    ap.add_argument("--model", choices=["SASRec", "GRU4Rec"], required=True)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--epochs", type=int, default=None, help="cap epochs (default: RecBole's 300)")
    ap.add_argument("--wall-limit", type=float, default=None,
                    help="stop training after this many wall seconds (the row then says early_stopped: false) "
                         "and test the valid-best checkpoint so far")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    # recbole.quick_start imports ray (for tuning), whose release breaks on numpy 2; the same steps
    # run_recbole takes, through RecBole's documented API, avoid it
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    data = Path(args.data).resolve()
    cfg = {
        "data_path": str(data.parent), "dataset": data.name,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Recall", "NDCG"], "topk": [10, 20], "valid_metric": "NDCG@10",
        "train_neg_sample_args": None, "seed": args.seed, "reproducibility": True,
        "checkpoint_dir": f"/tmp/seq/recbole_saved/{args.model}_{args.seed}", "show_progress": False,
        "worker": 0,
    }
    if args.epochs:
        cfg["epochs"] = args.epochs
    if data.name != args.name:
        raise SystemExit(f"--data must be the folder named {args.name} (RecBole reads <folder>/<name>.inter)")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    config = Config(model=args.model, dataset=args.name, config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    clocks: dict[str, list[tuple[float, float]]] = {"train": [], "valid": []}
    for kind, attr in (("train", "_train_epoch"), ("valid", "_valid_epoch")):
        setattr(trainer, attr, _timed(getattr(trainer, attr), clocks[kind]))
    valid_curve: list[float] = []
    valid_epoch = trainer._valid_epoch

    def valid_logged(*a, **kw):
        score, result = valid_epoch(*a, **kw)
        valid_curve.append(round(float(score), 4))
        return score, result
    trainer._valid_epoch = valid_logged
    capped = _cap_wall(trainer, wall0, args.wall_limit)
    try:
        _, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    except _WallLimit:
        if not valid_curve:
            raise SystemExit(f"--wall-limit {args.wall_limit}s was spent before the first epoch was validated: "
                             "raise it") from None
        best_valid = trainer.best_valid_result
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    result = {"best_valid_result": best_valid, "test_result": test, "clocks": clocks,
              "n_train_samples": len(train_data.dataset)}
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    load = os.getloadavg()
    row = {"system": "recbole-1.2.1", "model": args.model, "seed": args.seed, "epochs_cap": args.epochs,
           "n_train_samples": result["n_train_samples"],
           "best_valid": {k: float(v) for k, v in result["best_valid_result"].items()},
           "test": {k: float(v) for k, v in result["test_result"].items()},
           "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "loadavg_end": load,
           "epochs_run": len(result["clocks"]["train"]),
           "train_epoch_cpu_seconds": [round(c, 1) for _, c in result["clocks"]["train"]],
           "train_epoch_wall_seconds": [round(w, 1) for w, _ in result["clocks"]["train"]],
           "valid_cpu_seconds": [round(c, 1) for _, c in result["clocks"]["valid"]],
           "valid_ndcg10_curve": valid_curve, "best_epoch": valid_curve.index(max(valid_curve)) + 1 if valid_curve else None,
           "early_stopped": not capped["hit"] and len(valid_curve) < config["epochs"],
           "wall_limit": args.wall_limit,
           "threads": torch.get_num_threads(), "python": platform.python_version(),
           "torch": torch.__version__}
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
