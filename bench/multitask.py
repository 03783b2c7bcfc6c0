"""Multi-task ranking (ESMM) vs single-task rankers and a CVR model trained on clicked rows only.

Datasets:

* ``demo`` -- the demo shop with its opt-in event log (``data.demo.events: true``,
  :mod:`fusionrec.data.demo_events`): impressions, clicks and purchases drawn from known
  propensities, so the oracle's AUC (the true ``p_click``, ``p_click * p_convert``) is an
  upper bound next to the models'. Impressions are logged, so no negative is sampled.
* ``ml100k`` -- click = rated, conversion = rating >= 4 (``conversion_rating: 4``), unclicked
  impressions sampled from the catalogue among the user's unrated items (1 per click in training,
  redrawn each epoch; 1 per click in valid/test, drawn once with a fixed seed by the evaluator).
  Selection uses the pointwise metrics only; the ranking metrics the evaluator also computes are
  limited to a fixed sample of 100 users (``eval.max_users``) to keep an epoch affordable.

Models (all ``multitask`` with the same fields and network width, trained through
``fusionrec.pipeline.run_experiment``, selected on valid ``auc_tasks``):

* ``esmm`` -- ``objective: multitask`` (CTR and CTCVR losses over the impressions);
* ``click only`` / ``conversion only`` -- ``objective: click`` / ``conversion``: one label alone;
* ``cvr on clicks`` -- ``objective: cvr_clicked``: conversion learned from clicked rows only;
  its conversion score over impressions is its pCVR;
* ``click x cvr-on-clicks`` -- the product of the click-only model's pCTR and the clicked-only
  CVR model's pCVR, per seed (two separately trained models).

Usage::

    python bench/multitask.py --datasets demo ml100k --seeds 2024 2025 2026 --out docs/benchmarks/multitask.json
    # rows stored under one key (--key), then the valid selection rule between the esmm rows
    python bench/multitask.py --datasets demo --select docs/benchmarks/multitask.json:demo_select_2030
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.config import resolve_config
from fusionrec.evaluate.metrics import auc, log_loss
from fusionrec.pipeline import load_data, run_experiment

OBJECTIVES = {"esmm": "multitask", "click only": "click", "conversion only": "conversion",
              "cvr on clicks": "cvr_clicked"}
DEMO = {"n_users": 600, "n_items": 300, "seed": 0, "split_seed": 999, "events": True}
# one network size for every model (small: the benchmark machine is 2 shared cores)
BASE = ["train.checkpoint=false", "train.progress=false", "eval.beyond_accuracy=false", "train.num_threads=1",
        "train.patience=3", "train.epochs=30", "train.lr=0.003", "train.batch_size=1024", "eval.ks=[20]",
        "eval.metrics=[recall,ndcg]", "model.params.embedding_size=16", "model.params.mlp_layers=[64,32]",
        "model.params.tower_layers=[16]", "model.params.cross_rank=8"]


def config(dataset: str, objective: str, seeds: list[int], extra: list[str]) -> Any:
    overrides = [*BASE, f"train.seeds={json.dumps(seeds)}", f"model.params.objective={objective}"]
    if dataset == "demo":
        overrides.append(f"data.demo={json.dumps(DEMO)}")
    else:
        # one unclicked impression sampled from the catalogue per click (training: redrawn each
        # epoch; valid/test: drawn once, seeded, by the evaluator); ranking metrics (not reported
        # here) on a fixed sample of 100 users, so an epoch does not score 1.6 M user-item pairs
        overrides += ["model.params.conversion_rating=4", "model.params.num_negatives=1", "eval.max_users=100"]
    overrides += extra   # --set wins
    return resolve_config(dataset=dataset, model="multitask", overrides=overrides)


def keep_predictions(store: dict[str, Any], label: str) -> Any:
    """test_extra that keeps the model's task probabilities on the test rows (one entry per seed)."""
    def extra(model: Any, evaluator: Any) -> dict[str, float]:
        rows = evaluator.pointwise_rows("test")
        import torch

        probs = model.predict_tasks(torch.from_numpy(rows.users.copy()), torch.from_numpy(rows.items.copy()))
        targets = model.task_targets(rows.labels.astype(bool), rows.events, rows.ratings)
        store.setdefault(label, []).append({t: p.numpy() for t, p in probs.items()})
        store["targets"] = {t: (y, m) for t, (y, m) in targets.items()}
        # the served model's valid metrics (with task_checkpoints not those of one epoch): what selects
        # between configurations; its test metrics per seed
        store.setdefault(f"{label}/served", []).append({"valid": evaluator.evaluate_pointwise(model, "valid"),
                                                        "test": evaluator.evaluate_pointwise(model, "test")})
        if store.get("save_dir"):   # runs split over processes: combined later with --combine
            folder = Path(store["save_dir"])
            folder.mkdir(parents=True, exist_ok=True)
            seed_no = len(store[label]) - 1
            np.savez(folder / f"{label.replace(' ', '_')}_{seed_no}.npz", y=targets["conversion"][0],
                     y_click=targets["click"][0], **{t: p.numpy() for t, p in probs.items()})
            # this seed's valid and test metrics, in case the process is stopped before the others
            per_seed = {"valid": evaluator.evaluate_pointwise(model, "valid"),
                        "test": evaluator.evaluate_pointwise(model, "test")}
            (folder / f"{label.replace(' ', '_')}_{seed_no}.json").write_text(json.dumps(per_seed, default=float))
        return {}
    return extra


def run_dataset(name: str, seeds: list[int], extra: list[str], only: list[str] | None = None,
                suffix: str = "", save_dir: str | None = None) -> dict[str, Any]:
    dataset = load_data(config(name, "multitask", seeds, extra))
    print(f"{name}: {dataset!r}", flush=True)
    out: dict[str, Any] = {"models": {}}
    preds: dict[str, Any] = {"save_dir": save_dir}
    runs = Path(tempfile.mkdtemp(prefix=f"mt_{name}_"))
    for label, objective in OBJECTIVES.items():
        if only and label not in only:
            continue
        label = label + suffix
        start, load_start = time.perf_counter(), os.getloadavg()
        res = run_experiment(config(name, objective, seeds, extra), dataset, run_dir=runs / objective,
                             test_extra=keep_predictions(preds, label))
        out["models"][label] = {"test": res["test"], "valid": res["valid"], "seeds": seeds,
                                "load_start": load_start, "load_end": os.getloadavg(),
                                "best_epochs": [r["best_epoch"] for r in res["per_seed"]],
                                "seconds_per_epoch": res["timing"]["seconds_per_epoch"]["mean"],
                                "pointwise": res.get("pointwise"),
                                "served_per_seed": preds.get(f"{label}/served")}
        t = res["test"]
        print(f"  {label}: " + ", ".join(f"{k} {t[k]['mean']:.4f}" for k in ("auc_click", "auc_conversion", "auc_cvr")
                                        if k in t) + f" ({time.perf_counter() - start:.0f}s)", flush=True)
    if "click only" not in preds or "cvr on clicks" not in preds:
        return out
    # pCTR of the click-only model x pCVR of the clicked-only CVR model, seed by seed
    y, everywhere = preds["targets"]["conversion"]
    combo = [p["click"] * q["cvr"] for p, q in zip(preds["click only"], preds["cvr on clicks"])]
    out["models"]["click x cvr-on-clicks"] = {"test": {
        "auc_conversion": _mean_std([auc(y[everywhere], c[everywhere]) for c in combo]),
        "logloss_conversion": _mean_std([log_loss(y[everywhere], c[everywhere]) for c in combo])}}
    if name == "demo":
        out["oracle"] = oracle(dataset)
    return out


def combine(folders: list[str], dataset: str = "ml100k") -> dict[str, Any]:
    """Per-model test metrics (mean ± std over seeds) from predictions saved with --save-preds,
    possibly by several processes (one folder each; files ``<label>_<n>.npz``, sorted by folder
    then n, so give the folders in seed order), plus ``click x cvr-on-clicks``. Files without
    click labels (older runs) get them from the evaluator's deterministic test rows of ``dataset``."""
    files: dict[str, list[Path]] = {}
    for folder in folders:
        for f in sorted(Path(folder).glob("*.npz")):
            stem = f.stem.rsplit("_", 1)[0]   # the label with its spaces as underscores
            key = next((k for k in OBJECTIVES if stem.startswith(k.replace(" ", "_"))), stem)
            files.setdefault(key + stem[len(key):].replace("_(", " (", 1), []).append(f)
    clicks = None
    if any("y_click" not in np.load(f).files for fs in files.values() for f in fs):
        from fusionrec.evaluate.pointwise import pointwise_rows
        clicks = pointwise_rows(load_data(config(dataset, "multitask", [0], [])), "test", 1).labels.astype(bool)
    out: dict[str, Any] = {"models": {}}
    preds: dict[str, list[Any]] = {}
    for label, fs in files.items():
        per_seed = []
        for f in fs:
            z = dict(np.load(f))
            click = z["y_click"].astype(bool) if "y_click" in z else clicks
            conv = z["y"].astype(bool)
            if not (conv <= click).all():
                raise SystemExit(f"{f}: its conversions are not clicks of the rebuilt test rows")
            m = {}
            for task, y, rows in (("click", click, slice(None)), ("conversion", conv, slice(None)),
                                  ("cvr", conv, click)):
                if task in z:
                    m[f"auc_{task}"] = auc(y[rows], z[task][rows])
                    m[f"logloss_{task}"] = log_loss(y[rows], z[task][rows])
            per_seed.append(m)
            preds.setdefault(label, []).append((conv, z))
        out["models"][label] = {"test": {k: _mean_std([m[k] for m in per_seed]) for k in per_seed[0]},
                                "files": [str(f) for f in fs]}
    if "click only" in preds and "cvr on clicks" in preds:
        combo = [(y, a["click"] * b["cvr"]) for (y, a), (_, b) in zip(preds["click only"], preds["cvr on clicks"])]
        out["models"]["click x cvr-on-clicks"] = {"test": {
            "auc_conversion": _mean_std([auc(y, c) for y, c in combo]),
            "logloss_conversion": _mean_std([log_loss(y, c) for y, c in combo])}}
    return out


def oracle(dataset: Any) -> dict[str, float]:
    """AUC of the true propensities on the demo's test rows."""
    from fusionrec.data.demo_events import demo_event_truth

    truth = demo_event_truth(dataset, DEMO["seed"])
    test = dataset.split_frame("test").merge(truth[["user", "item", "p_click", "p_convert"]], on=["user", "item"])
    click, conv = test["label"].to_numpy() >= 1, test["label"].to_numpy() >= 2
    p_click, p_conv = test["p_click"].to_numpy(), test["p_convert"].to_numpy()
    return {"auc_click": auc(click, p_click), "auc_conversion": auc(conv, p_click * p_conv),
            "auc_cvr": auc(conv[click], p_conv[click])}


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def markdown(name: str, result: dict[str, Any]) -> str:
    keys = ("auc_click", "auc_conversion", "auc_cvr", "logloss_click", "logloss_conversion")
    lines = [f"| {name} | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for label, r in result["models"].items():
        cells = [f"{r['test'][k]['mean']:.4f} ± {r['test'][k]['std']:.4f}" if k in r["test"] else "-" for k in keys]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "oracle" in result:
        o = result["oracle"]
        lines.append("| oracle (true propensities) | " + " | ".join(f"{o[k]:.4f}" if k in o else "-" for k in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["demo", "ml100k"], choices=["demo", "ml100k"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2024, 2025, 2026])
    ap.add_argument("--set", dest="extra", action="append", default=[], help="extra overrides for every run")
    ap.add_argument("--only", nargs="+", default=None, choices=list(OBJECTIVES), help="run only these models")
    ap.add_argument("--suffix", default="", help="appended to the model labels, e.g. ' (mmoe)' with "
                                                 "--set model.params.architecture=mmoe")
    ap.add_argument("--save-preds", default=None, help="folder for each run's test predictions")
    ap.add_argument("--combine", nargs="+", default=None, help="only combine saved predictions (--save-preds "
                                                               "folders, in seed order)")
    ap.add_argument("--out", default="docs/benchmarks/multitask.json")
    ap.add_argument("--key", default=None, help="store this run's rows under this key of --out (added to the "
                                                "rows already there) instead of under the dataset's name")
    ap.add_argument("--select", nargs="+", default=None, metavar="FILE[:KEY]",
                    help="only apply the valid selection rule (bench/multitask_select.py) to these result files "
                         "(KEY defaults to the first --datasets) and print the chosen model's test row")
    ap.add_argument("--rows", nargs="+", default=None, help="with --select: only these row labels")
    args = ap.parse_args()
    if args.select:
        from multitask_select import load_rows, report_text, select

        result = select(load_rows(args.select, args.datasets[0], args.rows))
        print(report_text(result), flush=True)
        if args.out != "docs/benchmarks/multitask.json":   # never overwrite the results with a selection
            Path(args.out).write_text(json.dumps(result, indent=2, default=float))
        return
    if args.combine:
        result = combine(args.combine, args.datasets[0])
        print(markdown(args.datasets[0], result), flush=True)
        Path(args.out).write_text(json.dumps(result, indent=2, default=float))
        return
    import torch

    torch.set_num_threads(1)
    report: dict[str, Any] = {"seeds": args.seeds, "load_start": os.getloadavg(), "demo_settings": DEMO}
    for name in args.datasets:
        report[name] = run_dataset(name, args.seeds, args.extra, args.only, args.suffix, args.save_preds)
        print(markdown(name, report[name]), flush=True)
    report["load_end"] = os.getloadavg()
    save(Path(args.out), report, args.key)


def save(out: Path, report: dict[str, Any], key: str | None) -> None:
    """Write the report; keep what --out already holds (datasets run separately). With ``key`` the
    rows go under that key, added to its rows, under a lock (parallel runs write the same file)."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / f"{out.name}.lock", "w") as lock:   # not beside the results
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(out.read_text()) if out.is_file() and out.stat().st_size else {}
        if key:
            entry = old.get(key, {"models": {}})
            for value in report.values():
                if isinstance(value, dict) and "models" in value:
                    entry["models"].update(value["models"])
            report = {**old, key: entry}
        else:
            report = {**old, **report}
        out.write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    sys.exit(main())
