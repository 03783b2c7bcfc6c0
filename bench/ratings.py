"""Rating prediction on MovieLens 100K: biased_mf and content_rating vs scikit-surprise's SVD.

Two protocols, both through ``fusionrec.pipeline.run_experiment`` (the code path of
``fusionrec train``: early stopping and model choice on validation RMSE, test scored once):

1. **warm** -- the ml100k preset's seeded 80/10/10 split of the ratings (per user, seed 999,
   ``rounding: round``). Candidate settings are compared on the first seed's validation RMSE;
   the chosen one runs on every seed. scikit-surprise's ``SVD()`` with its defaults runs side
   by side on the very same train/test files, in its own venv (``bench/ratings_surprise.py``),
   once trained on train (as ours) and once on train + valid (more data than ours).
2. **held-out items** -- ``data.split.method: cold_start`` (the items, not the ratings, are
   split 80/10/10, seed 999): every test item is absent from training. content_rating rates them
   from their text and poster; the fallbacks are the global mean, the item mean (undefined for a
   held-out item, so the global mean) and the user's mean, plus biased_mf (``mu + b_u`` there).

Usage (about 25 minutes on 2 busy cores)::

    python bench/ratings.py --seeds 2024 2025 2026 --surprise-python /tmp/surprise_venv/bin/python \\
        --out docs/benchmarks/ratings.json

Writes the JSON and prints the markdown tables of docs/benchmarks/ratings.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.config import resolve_config
from fusionrec.evaluate.rating import rating_slices
from fusionrec.pipeline import load_data, run_experiment

BASE = ["train.checkpoint=false", "train.progress=false", "eval.beyond_accuracy=false", "train.num_threads=1",
        "train.patience=3", "train.epochs=100", "eval.ks=[10,20]"]
# candidate settings (the first is used unless --select compares them on the first seed's valid RMSE;
# biased_mf's reg_weight 0.1 was chosen so among 0.05 / 0.1 / 0.2 / 0.4, see docs/benchmarks/ratings.md)
CANDIDATES: dict[str, list[dict[str, Any]]] = {
    "biased_mf": [{"params": {"reg_weight": 0.1}, "lr": 0.005},
                  {"params": {"reg_weight": 0.05, "embedding_size": 128}, "lr": 0.005}],
    "content_rating": [{"params": {"reg_weight": 0.1}, "lr": 0.005},
                       {"params": {"reg_weight": 0.1, "projection": "mlp"}, "lr": 0.005}],
}


def config(model: str, setting: dict[str, Any], seeds: list[int], split: str | None = None) -> Any:
    overrides = [*BASE, f"train.lr={setting['lr']}", f"train.seeds={json.dumps(seeds)}"]
    overrides += [f"model.params.{k}={json.dumps(v)}" for k, v in setting["params"].items()]
    if split:
        overrides.append(f"data.split.method={split}")
    return resolve_config(dataset="ml100k", model=model, overrides=overrides)


def cold_extra(dataset: Any) -> Any:
    """test_extra: RMSE / MAE of the model and the fallbacks on the test rows of held-out items."""
    def extra(model: Any, _evaluator: Any) -> dict[str, float]:
        cold = rating_slices(model, dataset, "test")["cold"]
        return {f"cold:{k}": v for k, v in cold.items()}
    return extra


def run(model: str, setting: dict[str, Any], seeds: list[int], dataset: Any, out_dir: Path,
        split: str | None = None) -> dict[str, Any]:
    cfg = config(model, setting, seeds, split)
    start = time.perf_counter()
    res = run_experiment(cfg, dataset, run_dir=out_dir / f"{model}_{split or 'warm'}_{len(seeds)}_{time.time():.0f}",
                         test_extra=cold_extra(dataset) if split else None)
    print(f"  {model} {setting} seeds={seeds}: valid rmse {res['valid']['rmse']['mean']:.4f}, "
          f"test rmse {res['test']['rmse']['mean']:.4f} ({time.perf_counter() - start:.0f}s)", flush=True)
    return {"setting": setting, "seeds": seeds, "valid": res["valid"], "test": res["test"],
            "per_seed": [{"seed": r["seed"], "valid_rmse": r["valid"]["rmse"], "test_rmse": r["test"]["rmse"],
                          "test_mae": r["test"]["mae"], "best_epoch": r["best_epoch"]} for r in res["per_seed"]],
            "seconds_per_epoch": res["timing"]["seconds_per_epoch"]["mean"]}


def surprise(dataset: Any, python: str, seeds: list[int]) -> dict[str, Any]:
    """SVD() with defaults on the same files: trained on train, and on train + valid."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        frames = {s: dataset.split_frame(s)[["user", "item", "rating"]] for s in ("train", "valid", "test")}
        frames["train+valid"] = pd.concat([frames["train"], frames["valid"]])
        for name, frame in frames.items():
            frame.to_csv(Path(tmp) / f"{name}.csv", index=False)
        script = Path(__file__).with_name("ratings_surprise.py")
        for train in ("train", "train+valid"):
            proc = subprocess.run([python, str(script), "--train", str(Path(tmp) / f"{train}.csv"), "--test",
                                   str(Path(tmp) / "test.csv"), "--seeds", *map(str, seeds)],
                                  capture_output=True, text=True, check=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
            out[train] = {"per_seed": rows, "rmse": float(np.median([r["rmse"] for r in rows])),
                          "rmse_mean": float(np.mean([r["rmse"] for r in rows])),
                          "mae": float(np.median([r["mae"] for r in rows]))}
            print(f"  surprise SVD on {train}: median test rmse {out[train]['rmse']:.4f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[2024, 2025, 2026])
    ap.add_argument("--surprise-python", default="/tmp/surprise_venv/bin/python",
                    help="python of a venv with scikit-surprise (numpy<2); skipped when missing")
    ap.add_argument("--models", nargs="+", default=["biased_mf"], help="models on the warm split")
    ap.add_argument("--cold-models", nargs="+", default=["content_rating", "biased_mf"],
                    help="models on the held-out items split (empty: skip it)")
    ap.add_argument("--select", action="store_true",
                    help="compare the candidate settings on the first seed's valid RMSE (else the first one)")
    ap.add_argument("--out", default="docs/benchmarks/ratings.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    runs = Path(tempfile.mkdtemp(prefix="ratings_runs_"))
    report: dict[str, Any] = {"seeds": args.seeds, "load_start": os.getloadavg(), "warm": {}, "cold": {}}
    warm = load_data(config(args.models[0], CANDIDATES[args.models[0]][0], args.seeds))
    print(f"warm split: {warm!r}", flush=True)
    chosen = {m: CANDIDATES[m][0] for m in CANDIDATES}
    if Path(args.surprise_python).is_file():
        report["surprise_svd"] = surprise(warm, args.surprise_python, args.seeds)
    for model in args.models:
        selection = []
        if args.select:
            tried = [run(model, s, args.seeds[:1], warm, runs) for s in CANDIDATES[model]]
            chosen[model] = min(tried, key=lambda r: r["valid"]["rmse"]["mean"])["setting"]
            selection = [{"setting": t["setting"], "valid_rmse": t["valid"]["rmse"]["mean"]} for t in tried]
        report["warm"][model] = {"selection": selection, **run(model, chosen[model], args.seeds, warm, runs)}
    if args.cold_models:
        cold = load_data(config("content_rating", CANDIDATES["content_rating"][0], args.seeds, "cold_start"))
        print(f"held-out items split: {cold!r}", flush=True)
        for model in args.cold_models:
            report["cold"][model] = run(model, chosen[model], args.seeds, cold, runs, split="cold_start")
    report["load_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=float))
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    lines = ["| model | valid RMSE | test RMSE | test MAE | best epochs |", "|---|---|---|---|---|"]
    for model, r in report["warm"].items():
        lines.append(f"| {model} | {cell(r['valid']['rmse'])} | {cell(r['test']['rmse'])} | {cell(r['test']['mae'])} "
                     f"| {[p['best_epoch'] for p in r['per_seed']]} |")
    for train, r in (report.get("surprise_svd") or {}).items():
        rm = [p["rmse"] for p in r["per_seed"]]
        ma = [p["mae"] for p in r["per_seed"]]
        lines.append(f"| surprise SVD() on {train} | - | {np.mean(rm):.4f} ± {np.std(rm, ddof=1):.4f} | "
                     f"{np.mean(ma):.4f} ± {np.std(ma, ddof=1):.4f} | - |")
    if report["cold"]:
        lines += ["", "| on held-out items (test) | RMSE | MAE |", "|---|---|---|"]
        for model, r in report["cold"].items():
            lines.append(f"| {model} | {cell(r['test']['cold:model:rmse'])} | {cell(r['test']['cold:model:mae'])} |")
        first = next(iter(report["cold"].values()))["test"]
        for fb in ("global_mean", "item_mean", "user_mean"):
            lines.append(f"| fallback: {fb} | {first[f'cold:{fb}:rmse']['mean']:.4f} | "
                         f"{first[f'cold:{fb}:mae']['mean']:.4f} |")
    return "\n".join(lines)


def cell(block: dict[str, float]) -> str:
    return f"{block['mean']:.4f} ± {block['std']:.4f}"


if __name__ == "__main__":
    sys.exit(main())
