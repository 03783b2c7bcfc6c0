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
import re
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


# (cold_neighbours, cold_mix) settings scored on the trained model after the run (--cold-sweep); they only
# change how items without training events are placed at inference, so one training serves them all
COLD_SWEEP: list[tuple[int, float, float]] = []


def cold_sweep(model: Any, evaluator: Any) -> dict[str, float]:
    """Valid and test metrics (all events, warm and cold slices) of each ``COLD_SWEEP`` setting."""
    from fusionrec.evaluate.slices import slice_metrics

    items = getattr(model, "items", None)
    if not COLD_SWEEP or not hasattr(items, "set_cold_neighbours") or items.repr == "id":
        return {}
    keep = (items.cold_neighbours, items.cold_mix, items.cold_scale)
    out: dict[str, float] = {}
    for k, mix, scale in COLD_SWEEP:
        items.set_cold_neighbours(k, mix, scale)
        label = f"{k}:{mix}" + (f":{scale}" if scale != 1.0 else "")
        for split in ("valid", "test"):
            res = {**evaluator.evaluate(model, split), **slice_metrics(evaluator, model, split)}
            out.update({f"sweep:{label}:{split}:{m}": v for m, v in res.items() if "@10" in m or "@20" in m})
    items.set_cold_neighbours(*keep)
    return out


def test_extra(model: Any, evaluator: Any) -> dict[str, float]:
    from fusionrec.evaluate.slices import slice_metrics

    out = slice_metrics(evaluator, model, "test")
    # the valid split's cold/warm slices: what settings for new items are chosen on (never test)
    out.update({f"valid_{k}": v for k, v in slice_metrics(evaluator, model, "valid").items()})
    if hasattr(model, "set_context_events"):
        out.update(nomask_metrics(model, evaluator))
        # the chosen model's valid score under RecBole's protocol, to compare with RecBole's valid curve
        out.update({f"valid_{k}": v for k, v in nomask_metrics(model, evaluator, "valid").items()})
    out.update(cold_sweep(model, evaluator))
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


def rescore(run_dir: str, out: Path) -> dict[str, Any]:
    """``COLD_SWEEP`` on the model a finished run saved (``RUN_DIR/model``), without training again."""
    from fusionrec.models.io import load_model
    from fusionrec.pipeline import make_evaluator

    torch.set_num_threads(1)
    c0 = time.process_time()
    loaded = load_model(Path(run_dir) / "model")
    result = json.loads((Path(run_dir) / "results.json").read_text())
    seed = result["per_seed"][0]["seed"] if "per_seed" in result else loaded.config.train.seeds[0]
    sweep = cold_sweep(loaded.model, make_evaluator(loaded.dataset, loaded.config))
    row = {"system": "fusionrec", "kind": "cold_sweep", "model": loaded.model.name, "seed": seed,
           "params": {k: loaded.model.params.get(k) for k in ("item_repr", "projection", "id_dropout")},
           "run_dir": str(run_dir), "sweep": sweep, "cpu_seconds": round(time.process_time() - c0, 1),
           "loadavg_end": os.getloadavg()}
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def _with_sweeps(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of trained runs carry their sweep inside ``test`` (``test_extra``): lift it to ``sweep`` and name
    the run's parameters as rescored rows do."""
    out = []
    for r in rows:
        inner = {k: v for k, v in r.get("test", {}).items() if k.startswith("sweep:")}
        if inner and not r.get("sweep"):
            params = {"item_repr": "both", "projection": "mlp", "id_dropout": 0.1}
            params.update({k.split(".")[-1]: (float(v) if k.endswith("dropout") else v) for k, _, v in
                           (x.partition("=") for x in r.get("sets", [])) if k.split(".")[-1] in params})
            r = {**r, "sweep": inner, "params": params}
        out.append(r)
    return out


def sweep_report(paths: list[str]) -> str:
    """Per run with a cold sweep: every setting's valid / test NDCG@10 and cold Recall/NDCG@10."""
    rows = _with_sweeps([json.loads(line) for p in paths if Path(p).is_file()
                         for line in Path(p).read_text().splitlines() if line.strip()])
    lines = [("| run | seed | cold_neighbours:cold_mix[:cold_scale] | valid NDCG@10 | valid cold NDCG@10 | test NDCG@10 | "
              "test Recall@10 | cold Recall@10 | cold NDCG@10 | warm Recall@10 |"), "|" + "---|" * 10]
    for r in rows:
        sweep = r.get("sweep")
        if not sweep:
            continue
        name = r["model"] + "".join(f" {k}={v}" for k, v in (r.get("params") or {}).items())
        labels = {re.match(r"sweep:(.+?):(?:valid|test):", k).group(1) for k in sweep}
        for setting in sorted(labels, key=lambda s: tuple(map(float, s.split(":")))):
            def g(split: str, m: str, setting: str = setting, sweep: dict = sweep) -> float:
                return sweep.get(f"sweep:{setting}:{split}:{m}", float("nan"))
            lines.append(f"| {name} | {r['seed']} | {setting} | {g('valid', 'ndcg@10'):.4f} | "
                         f"{g('valid', 'cold:ndcg@10'):.4f} | {g('test', 'ndcg@10'):.4f} | {g('test', 'recall@10'):.4f} | "
                         f"{g('test', 'cold:recall@10'):.4f} | {g('test', 'cold:ndcg@10'):.4f} | "
                         f"{g('test', 'warm:recall@10'):.4f} |")
    return "\n".join(lines) + "\n\n" + sweep_summary(rows) + "\n\n" + sweep_choice(rows)


def sweep_summary(rows: list[dict[str, Any]]) -> str:
    """Medians over seeds per (model settings, sweep setting); ``*`` marks the best valid value per column."""
    per: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        sweep = r.get("sweep") or {}
        name = r["model"] + "".join(f" {k}={v}" for k, v in (r.get("params") or {}).items())
        for key, v in sweep.items():
            m = re.match(r"sweep:(.+?):((?:valid|test):.+)", key)
            if m:
                per[(name, m.group(1))][m.group(2)].append(v)
    cols = ("valid:ndcg@10", "valid:warm:ndcg@10", "valid:cold:ndcg@10", "test:ndcg@10", "test:cold:recall@10",
            "test:cold:ndcg@10", "test:warm:recall@10")
    lines = ["| model | setting | seeds | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 3)]
    best = {c: max((float(np.median(v[c])) for v in per.values() if v.get(c)), default=np.nan) for c in cols[:3]}
    for (name, setting), v in sorted(per.items(), key=lambda x: (x[0][0], tuple(map(float, x[0][1].split(":"))))):
        cells = []
        for c in cols:
            med = float(np.median(v[c])) if v.get(c) else float("nan")
            cells.append(f"{med:.4f}" + ("*" if c in best and med == best[c] else ""))
        lines.append(f"| {name} | {setting} | {len(v[cols[0]])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_choice(rows: list[dict[str, Any]]) -> str:
    """Per seed, the setting chosen on valid for new items: the best valid cold NDCG@10 among the settings
    that are not below content-kNN (``seq_content_knn`` rows of the same files) on valid warm NDCG@10 --
    serve new items as well as possible without falling behind the content baseline on known ones."""
    knn = [r["test"] for r in rows if r["model"] == "seq_content_knn" and "valid_warm:ndcg@10" in r.get("test", {})]
    if not knn:
        return "(no seq_content_knn row with valid slice metrics: no floor for the choice)"
    floor = knn[-1]["valid_warm:ndcg@10"]
    merged: dict[str, dict[str, Any]] = {}   # one run's sweeps may come from several --rescore calls
    for r in rows:
        if r.get("sweep"):
            into = merged.setdefault(r["run_dir"], {**r, "sweep": {}})
            into["sweep"].update(r["sweep"])
    cols = ("valid:warm:ndcg@10", "valid:cold:ndcg@10", "test:ndcg@10", "test:cold:recall@10", "test:cold:ndcg@10",
            "test:warm:recall@10", "test:warm:ndcg@10")
    lines = [f"Choice per seed: best valid cold NDCG@10 with valid warm NDCG@10 >= {floor:.4f} (content-kNN's)", "",
             "| model | seed | chosen | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 3)]
    for r in merged.values():
        sweep = r["sweep"]
        labels = {m.group(1) for k in sweep if (m := re.match(r"sweep:(.+?):valid:", k))}
        ok = [x for x in labels if sweep.get(f"sweep:{x}:valid:warm:ndcg@10", -1) >= floor]
        if not ok:
            continue
        x = max(ok, key=lambda lab: sweep[f"sweep:{lab}:valid:cold:ndcg@10"])
        name = r["model"] + "".join(f" {k}={v}" for k, v in (r.get("params") or {}).items())
        lines.append(f"| {name} | {r['seed']} | {x} | "
                     + " | ".join(f"{sweep[f'sweep:{x}:{c}']:.4f}" for c in cols) + " |")
    return "\n".join(lines)


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
        if r.get("kind") == "cold_sweep":
            continue  # sweep_report
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
    ap.add_argument("--cold-sweep", nargs="*", default=[], metavar="K:MIX",
                    help="after each content model's run, also score these cold_neighbours:cold_mix[:cold_scale] "
                         "settings on valid and test (the same trained model; e.g. 5:1 10:0.5 20:1:1.5)")
    ap.add_argument("--rescore", nargs="*", metavar="RUN_DIR",
                    help="run the --cold-sweep on the saved models of these finished runs (no training)")
    args = ap.parse_args()
    COLD_SWEEP[:] = [(int(p[0]), float(p[1]) if len(p) > 1 else 1.0, float(p[2]) if len(p) > 2 else 1.0)
                     for p in (x.split(":") for x in args.cold_sweep)]
    if args.report:
        print(report(args.report))
        if COLD_SWEEP or any("sweep" in line for p in args.report if Path(p).is_file()
                             for line in Path(p).read_text().splitlines()):
            print("\n" + sweep_report(args.report))
        return
    if args.rescore:
        for run_dir in args.rescore:
            rescore(run_dir, Path(args.out))
        return
    for seed in args.seeds:
        for model in args.models:
            row = run_one(args.dataset, model, seed, args.set, Path(args.out))
            print(json.dumps({k: row[k] for k in ("model", "seed", "best_epoch", "cpu_seconds", "wall_seconds")}
                             | {k: round(v, 4) for k, v in row["test"].items() if "@10" in k}), flush=True)


if __name__ == "__main__":
    main()
