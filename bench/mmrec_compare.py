"""fusionrec vs MMRec, side by side on identical splits and features (acceptance 1, 2, 4, 5).

One command per table (all write under docs/benchmarks/, see mmrec_compare.md)::

    # 1. hyper-parameter search on VALID only (one seed; test is never scored)
    nice -n 5 python bench/mmrec_compare.py search --dataset lastfm2k --grid bench/configs/grid_lastfm2k.yaml
    # 2. the valid-chosen configs, 3 seeds, test scored once per seed (main table)
    nice -n 5 python bench/mmrec_compare.py compare --dataset lastfm2k
    # 3. modality ablation with the same model (ID only / each modality / all)
    nice -n 5 python bench/mmrec_compare.py ablate --dataset lastfm2k
    # 4. wall time with torch limited to 1 thread (whole run: train to early stop + test)
    python bench/mmrec_compare.py timing --dataset lastfm2k

``--dataset`` is a loader preset: ``lastfm2k``, ``ml100k-mmrec`` (the reference
split + fixed features) or ``ml100k-own`` (the same split, features re-encoded
by fusionrec's own encoders from ``/work/shared/data/ml100k``).

Every number comes from the shared :class:`fusionrec.evaluate.Evaluator` with
protocol ``mmrec`` (only training positives masked, exactly as MMRec) and from
the shared :class:`fusionrec.train.Trainer` (early stopping on valid
Recall@20, valid-best weights restored).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fusionrec.config import RunConfig, deep_merge, resolve_config  # noqa: E402
from fusionrec.data.dataset import Dataset  # noqa: E402
from fusionrec.evaluate.report import format_cell  # noqa: E402

OUT = REPO / "docs" / "benchmarks"
CONFIGS = REPO / "bench" / "configs"
METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")

# MMRec's own code, default hyper-parameters, one seed, on this machine (1 thread), test split.
MMREC = {
    "lastfm2k": [
        ("LightGCN (1 layer, reg 1e-2)", .2973, .4168, .2471, .2935, "310 (288)", 221),
        ("LGMRec", .2908, .4119, .2421, .2892, "200 (178)", 696),
        ("VBPR", .2774, .3979, .2331, .2796, "259 (237)", 168),
        ("FREEDOM", .2636, .3877, .2180, .2661, "171 (149)", 153),
    ],
    "ml100k-mmrec": [
        ("FREEDOM, tuned (dropout 0.9)", .2183, .3476, .2447, .2788, "243 (221)", 463),
        ("LightGCN", .2129, .3378, .2400, .2716, "154 (132)", 148),
        ("LGMRec", .2189, .3355, .2442, .2747, "174 (152)", 1159),
        ("VBPR", .2100, .3258, .2293, .2595, "136 (114)", 135),
    ],
}
MMREC["ml100k-own"] = MMREC["ml100k-mmrec"]
# the MMRec model each dataset's speed target refers to (the best one, which point 1/2 beats)
SPEED_TARGET = {"lastfm2k": ("LightGCN", 221), "ml100k-mmrec": ("FREEDOM", 463), "ml100k-own": ("FREEDOM", 463)}


# ---------------------------------------------------------------------- data
def load(dataset: str) -> Dataset:
    """Load a preset; ``ml100k-own`` = the reference split with fusionrec-encoded features."""
    from fusionrec.data.loading import load_preset

    if dataset != "ml100k-own":
        return load_preset(dataset)
    return own_features_ml100k()


def own_features_ml100k() -> Dataset:
    """ml100k-mmrec's split and ids, with text/image features from fusionrec's encoders.

    The items' text ("title. genres. overview") and posters are encoded by the
    default encoders (MiniLM, EfficientNet-Lite0) through the feature store, so
    the result is what a user gets from ``fusionrec encode`` on the raw files.
    """
    from fusionrec.data.loading import load_preset
    from fusionrec.encoders.pipeline import encode_dataset

    base = load_preset("ml100k-mmrec")
    base.modalities = {}
    cache = Path(os.environ.get("FUSIONREC_BENCH_CACHE", REPO / "runs" / "feature_cache"))
    # attach=True puts the encoded FeatureModality objects (with presence masks) on `base`
    encode_dataset(base, ["minilm", "efficientnet-lite0"], store_dir=cache, progress=False)
    return base


def base_config(dataset: str, model: str = "mmgraph", extra: dict[str, Any] | None = None) -> RunConfig:
    """The committed run config for ``dataset`` (+ overrides), resolved like ``fusionrec train --config``."""
    preset = "ml100k-mmrec" if dataset == "ml100k-own" else dataset
    path = CONFIGS / f"{preset}_mmgraph.yaml"
    user = yaml.safe_load(path.read_text())
    user["model"] = {"name": model, "params": user["model"]["params"] if model == "mmgraph" else {}}
    if model != "mmgraph" and extra is None:
        extra = {}
    tuned = CONFIGS / f"{preset}_{model}.yaml"
    if model != "mmgraph" and tuned.is_file():
        user = deep_merge(user, yaml.safe_load(tuned.read_text()))
    if extra:
        user = deep_merge(user, extra)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"fusionrec_bench_{os.getpid()}.yaml"
    tmp.write_text(yaml.safe_dump(user))
    try:
        return resolve_config(tmp, [], dataset=preset, model=model)
    finally:
        tmp.unlink(missing_ok=True)


def machine_note() -> str:
    load = os.getloadavg()
    return (f"{platform.node()}: {os.cpu_count()} CPUs, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} "
            f"at {time.strftime('%Y-%m-%d %H:%M:%S')}")


def _cell(block: dict[str, Any], m: str) -> str:
    return format_cell((block[m]["mean"], block[m]["std"])) if m in block else "-"


# ---------------------------------------------------------------------- search (valid only)
def cmd_search(args: argparse.Namespace) -> int:
    """Train each grid point with one seed and record VALID metrics only (test never touched)."""
    from fusionrec.evaluate import Evaluator
    from fusionrec.models.registry import build_model
    from fusionrec.train import Trainer, seed_everything

    grid = yaml.safe_load(Path(args.grid).read_text())
    points: list[dict[str, Any]] = grid["points"]
    dataset = load(args.dataset)
    out_path = OUT / f"mmrec_search_{args.dataset}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    for i, point in enumerate(points):
        if args.only is not None and i not in args.only:
            continue
        model_name = point.get("model_name", "mmgraph")
        cfg = base_config(args.dataset, model_name, {k: v for k, v in point.items() if k in ("data", "train", "model")})
        seed = cfg.train.seeds[0]
        seed_everything(seed)
        evaluator = Evaluator.from_config(dataset, cfg.eval)
        data = dataset.train_data(cfg.data.modalities)
        model = build_model(cfg.model.name, data, cfg.model.params)
        t0 = time.perf_counter()
        c0 = time.process_time()
        result = Trainer(model, data, cfg.train, evaluator, seed=seed).fit()
        cpu_s = time.process_time() - c0
        row = {
            "point": i, "label": point.get("label", str(i)), "model": cfg.model.name,
            "modalities": cfg.data.modalities, "params": point.get("model", {}).get("params", {}),
            "train": point.get("train", {}), "seed": seed,
            "valid": {m: round(float(result.best_valid[m]), 4) for m in METRICS if m in result.best_valid},
            "best_epoch": result.best_epoch, "epochs": len(result.history),
            "s_per_epoch": round(result.seconds_per_epoch, 3), "total_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(cpu_s, 1), "load": round(os.getloadavg()[0], 1),
        }
        print(json.dumps(row), flush=True)
        with out_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


# ---------------------------------------------------------------------- compare (3 seeds, test once)
def _run_dir(dataset: str, model: str, seed: int, tag: str = "") -> Path:
    return REPO / "runs" / "mmrec_compare" / f"{dataset}_{model}{('_' + tag) if tag else ''}_seed{seed}"


def cmd_compare(args: argparse.Namespace) -> int:
    """Run each model with the committed config, one run directory per seed (seeds may run in parallel)."""
    from fusionrec.pipeline import run_experiment

    dataset = load(args.dataset)
    for model in args.models:
        cfg = base_config(args.dataset, model, _overrides(args))
        seeds = [int(s) for s in args.seeds] if args.seeds else list(cfg.train.seeds)
        for seed in seeds:
            one = cfg.model_copy(deep=True)
            one.train.seeds = [seed]
            res = run_experiment(one, dataset, run_dir=_run_dir(args.dataset, model, seed, args.tag), verbose=True)
            print(json.dumps({"model": model, "seed": seed, "test": res["test"]}, default=str), flush=True)
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--set model.params.x=1`` style overrides (for ablation rows and what-if runs)."""
    from fusionrec.config import parse_overrides

    return parse_overrides(getattr(args, "overrides", None)) or None


def collect(dataset: str, model: str, tag: str = "") -> dict[str, Any] | None:
    """Aggregate the per-seed run directories of one (dataset, model, tag) into mean ± std."""
    from fusionrec.evaluate.report import aggregate_seeds

    pattern = f"{dataset}_{model}{('_' + tag) if tag else ''}_seed*"
    runs = sorted((REPO / "runs" / "mmrec_compare").glob(pattern))
    per_seed = []
    for run in runs:
        path = run / "results.json"
        if path.is_file():
            per_seed += json.loads(path.read_text())["per_seed"]
    if not per_seed:
        return None
    cfg = yaml.safe_load((runs[0] / "config.yaml").read_text())
    agg = lambda rows: {k: {"mean": m, "std": s} for k, (m, s) in aggregate_seeds(rows).items()}  # noqa: E731
    timing_keys = ("seconds_per_epoch", "total_seconds", "best_epoch", "epochs_run", "test_seconds")
    return {
        "model": model, "tag": tag, "params": cfg["model"]["params"], "modalities": cfg["data"]["modalities"],
        "seeds": [r["seed"] for r in per_seed], "test": agg([r["test"] for r in per_seed]),
        "valid": agg([r["valid"] for r in per_seed]),
        "timing": agg([{k: r[k] for k in timing_keys} for r in per_seed]),
    }


def cmd_table(args: argparse.Namespace) -> int:
    """Write docs/benchmarks/mmrec_compare_<dataset>.{md,json} from the finished seed runs."""
    rows = [r for r in (collect(args.dataset, m, t) for m, t in (x.partition(":")[::2] for x in args.models)) if r]
    payload = {"dataset": args.dataset, "written": machine_note(), "rows": rows}
    (OUT / f"mmrec_compare_{args.dataset}.json").write_text(json.dumps(payload, indent=1, default=str))
    md = compare_markdown(args.dataset, rows)
    (OUT / f"mmrec_compare_{args.dataset}.md").write_text(md)
    print(md)
    return 0


def compare_markdown(dataset: str, rows: list[dict[str, Any]]) -> str:
    ref = MMREC[dataset]
    best_r = max(r[2] for r in ref)
    best_n = max(r[4] for r in ref)
    lines = [
        f"## {dataset}: fusionrec vs MMRec (test, `mmrec` protocol)", "",
        f"Targets (+5% relative over MMRec's best): Recall@20 >= {best_r * 1.05:.4f}, NDCG@20 >= {best_n * 1.05:.4f}.",
        "",
        "| system | model | R@10 | R@20 | N@10 | N@20 | epochs (best) | wall s/epoch (shared, loaded CPU) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r10, r20, n10, n20, ep, _secs in ref:
        lines.append(f"| MMRec (1 seed) | {name} | {r10:.4f} | {r20:.4f} | {n10:.4f} | {n20:.4f} | {ep} | - |")
    for row in rows:
        t = row["test"]
        tim = row["timing"]
        lines.append(
            f"| fusionrec ({len(row['seeds'])} seeds) | {row['model']}{(' (' + row['tag'] + ')') if row['tag'] else ''} | "
            + " | ".join(_cell(t, m) for m in METRICS)
            + f" | {tim['epochs_run']['mean']:.0f} ({tim['best_epoch']['mean']:.0f}) | {tim['seconds_per_epoch']['mean']:.2f} |"
        )
    lines.append("")
    for row in rows:
        t = row["test"]
        if "recall@20" in t:
            gain_r = t["recall@20"]["mean"] / best_r - 1
            gain_n = t["ndcg@20"]["mean"] / best_n - 1
            lines.append(f"- {row['model']}{(' (' + row['tag'] + ')') if row['tag'] else ''}: R@20 {gain_r:+.1%}, N@20 {gain_n:+.1%} vs MMRec's best "
                         f"(valid R@20 {row['valid']['recall@20']['mean']:.4f}).")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- ablation
def cmd_ablate(args: argparse.Namespace) -> int:
    from fusionrec.experiments.ablate import run_ablation, write_ablation

    dataset = load(args.dataset)
    cfg = base_config(args.dataset)
    if args.seeds:
        cfg.train.seeds = [int(s) for s in args.seeds]
    names = cfg.data.modalities or list(dataset.modalities)
    subsets: list[Any] = [[]] + [[n] for n in names] + [names]
    grid: dict[str, list[Any]] = {"modalities": subsets}
    df = run_ablation(cfg, grid, cfg.train.seeds, dataset=dataset,
                      out_dir=REPO / "runs" / "mmrec_ablate" / args.dataset, verbose=True)
    notes = [
        "Same model (mmgraph, the valid-chosen config) with the modalities switched: `none` is the ID-only "
        "graph model (no content, no modality graph).",
        f"Protocol `mmrec`; early stopping on valid recall@20; test scored once per seed; seeds {cfg.train.seeds}; "
        "mean ± sample std.",
        f"Command: `nice -n 5 python bench/mmrec_compare.py ablate --dataset {args.dataset}`",
        f"Machine: {machine_note()}",
    ]
    md, _ = write_ablation(df, OUT / f"mmrec_ablation_{args.dataset}", f"Modality ablation: mmgraph on {args.dataset}",
                           notes)
    print(md.read_text())
    return 0


# ---------------------------------------------------------------------- timing (1 thread)
def cmd_timing(args: argparse.Namespace) -> int:
    """Whole run with torch on 1 thread: load + train to early stop + test; one seed per run."""
    import torch

    from fusionrec.pipeline import run_experiment

    torch.set_num_threads(1)
    rows = []
    for rep in range(args.repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        dataset = load(args.dataset)
        load_s = time.perf_counter() - t0
        cfg = base_config(args.dataset, args.model, _overrides(args))
        cfg.train.seeds = [cfg.train.seeds[0]]
        cfg.train.num_threads = 1
        t1 = time.perf_counter()
        res = run_experiment(cfg, dataset, run_dir=REPO / "runs" / "mmrec_timing" / f"{args.dataset}_{rep}")
        run_s = time.perf_counter() - t1
        cpu_s = time.process_time() - c0
        seed = res["per_seed"][0]
        rows.append({
            "repeat": rep, "load_s": round(load_s, 1), "train_plus_test_s": round(run_s, 1),
            # CPU seconds of this 1-thread process (load + train + test): what the wall time is on an
            # otherwise idle machine, and far less noisy than wall time on a shared one
            "cpu_s_whole_process": round(cpu_s, 1),
            "trainer_total_s": round(seed["total_seconds"], 1), "test_s": round(seed["test_seconds"], 2),
            "s_per_epoch": round(seed["seconds_per_epoch"], 3), "epochs": seed["epochs_run"],
            "best_epoch": seed["best_epoch"], "test_recall@20": round(seed["test"]["recall@20"], 4),
            "machine": machine_note(),
        })
        print(json.dumps(rows[-1]), flush=True)
    ref_name, ref_s = SPEED_TARGET[args.dataset]
    with (OUT / f"mmrec_timing_{args.dataset}.jsonl").open("a") as fh:
        for r in rows:
            fh.write(json.dumps({"model": args.model, "mmrec_reference": f"{ref_name} {ref_s}s", **r}) + "\n")
    med = sorted(r["train_plus_test_s"] for r in rows)[len(rows) // 2]
    print(f"median whole run (train to early stop + test) {med:.1f}s vs MMRec {ref_name} {ref_s}s "
          f"(target <= {ref_s / 2:.0f}s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("search", help="valid-only grid search (one seed)")
    s.add_argument("--dataset", required=True)
    s.add_argument("--grid", required=True,
                   help="YAML with 'points': a list of {label, model_name, model: {params}, data, train} overrides")
    s.add_argument("--only", type=int, nargs="*", default=None, help="run only these point indices")
    s.set_defaults(func=cmd_search)
    c = sub.add_parser("compare", help="chosen configs over 3 seeds, test once per seed")
    c.add_argument("--dataset", required=True)
    c.add_argument("--models", nargs="+", default=["mmgraph", "ease"])
    c.add_argument("--seeds", nargs="*", default=None)
    c.add_argument("--tag", default="", help="suffix naming a variant run with --set overrides")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    c.set_defaults(func=cmd_compare)
    tb = sub.add_parser("table", help="aggregate finished seed runs into the markdown table")
    tb.add_argument("--dataset", required=True)
    tb.add_argument("--models", nargs="+", default=["mmgraph", "ease"], help="model or model:tag")
    tb.set_defaults(func=cmd_table)
    a = sub.add_parser("ablate", help="modality ablation with the same model")
    a.add_argument("--dataset", required=True)
    a.add_argument("--seeds", nargs="*", default=None)
    a.set_defaults(func=cmd_ablate)
    t = sub.add_parser("timing", help="1-thread wall time of the whole run")
    t.add_argument("--dataset", required=True)
    t.add_argument("--model", default="mmgraph")
    t.add_argument("--repeats", type=int, default=3)
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    t.set_defaults(func=cmd_timing)
    args = ap.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
