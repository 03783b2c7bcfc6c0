"""Fine-tuning the text or image encoder with the recommender's loss (issue 9, acceptance 4).

two_tower on text only, four ways: ``frozen`` (the stored MiniLM features), ``full``
(the top ``--layers`` transformer layers trained), ``lora`` (peft LoRA on those layers),
``side_adapter`` (a side network over cached frozen per-layer states). One variant per
subprocess (``--parallel``), one torch thread each::

    nice -n 5 python bench/finetune.py --dataset ml1m --cache /work/cache/features \\
        --ft-cache /work/cache/finetune --parallel --seeds 2024

``--modality image``: two_tower on the image features only (EfficientNet-Lite0 posters),
``frozen`` vs ``full`` (the last ``--blocks`` MBConv blocks and the head conv trained) vs
``lora`` (peft LoRA on their 1x1 convs), over feature maps cached once per image::

    nice -n 5 python bench/finetune.py --modality image --dataset ml100k --seeds 2024 --one lora

Selection on VALID recall@20 only (early stopping, best weights restored); test scored
once per seed. Per epoch, the *training* CPU seconds (process CPU time of the epoch's
steps, without validation) and the validation seconds (which, for full / lora, include
re-encoding every item with the current weights) are reported separately.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fusionrec.config import TrainConfig
from fusionrec.evaluate import Evaluator
from fusionrec.models.registry import build_model
from fusionrec.train.trainer import Trainer, seed_everything

# frozen64: the frozen encoder at the tuned variants' max_seq_length (the side-adapter tower with its adapter
# frozen at zero), to tell the effect of truncation from the effect of fine-tuning
VARIANTS = ("frozen", "frozen64", "full", "lora", "side_adapter")
IMAGE_VARIANTS = ("frozen", "full", "lora")
METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
# per dataset: the text template of the stored features, the evaluator's candidates, two_tower settings
DATASETS = {
    "ml1m": {"template": "{title}. {genres}. {plot}", "candidates": "test_items"},
    "ml100k": {"template": "{text}", "candidates": "all"},
}
TWO_TOWER = {"embedding_size": 64, "projection": "linear", "fusion": "weighted_sum", "align": "none",
             "loss": "softmax", "history": "mean", "use_id": True, "id_dropout": 0.1, "modality_dropout": 0.0}
# the tower's learning rate is train.lr x lr_mult: pretrained weights move slowly, new ones (LoRA, adapter) faster
LR_MULT = {"full": 0.05, "lora": 0.5, "side_adapter": 0.5}
ENCODERS = {"text": "minilm", "image": "efficientnet-lite0"}


class CpuClock:
    """Process CPU seconds of training steps only: from an epoch's first step to its validation."""

    def __init__(self, model, evaluator) -> None:
        self.evaluator, self.train_cpu, self.valid_cpu, self.epochs = evaluator, [], [], 0
        self._start = None
        inner = model.pre_epoch

        def pre_epoch() -> None:
            self._start = time.process_time()
            inner()

        model.pre_epoch = pre_epoch

    def evaluate(self, model, split: str = "valid") -> dict[str, float]:
        t = time.process_time()
        if self._start is not None:
            self.train_cpu.append(t - self._start)
            self._start = None
        out = self.evaluator.evaluate(model, split)
        self.valid_cpu.append(time.process_time() - t)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.evaluator, name)


def load(name: str, cache: str | None, modality: str = "text"):
    from fusionrec.data.loading import load_preset
    from fusionrec.encoders.cli import default_cache_dir
    from fusionrec.encoders.pipeline import encode_dataset
    from fusionrec.encoders.registry import build_encoder

    dataset = load_preset(name)
    options = {"template": DATASETS[name]["template"]} if modality == "text" else {}
    enc = build_encoder(ENCODERS[modality], modality=modality, **options)
    encode_dataset(dataset, [enc], store_dir=Path(cache) if cache else default_cache_dir(), progress=False)
    return dataset


def run_variant(args: argparse.Namespace, variant: str) -> dict[str, Any]:
    torch.set_num_threads(1)
    dataset = load(args.dataset, args.cache, args.modality)
    if args.train_share < 1.0:
        # sub-sampled epochs (the same seeded share of training rows for every variant); valid/test stay whole
        inter = dataset.interactions
        rng = np.random.default_rng(0)
        dataset = dataset.subset_interactions((inter["split"] != "train").to_numpy()
                                              | (rng.random(len(inter)) < args.train_share))
    ev = Evaluator(dataset, ks=(10, 20, 50), protocol="full", candidates=DATASETS[args.dataset]["candidates"])
    data = dataset.train_data([args.modality])
    params = dict(TWO_TOWER)
    lr_mult = args.lr_mult if args.lr_mult is not None else LR_MULT.get(variant, 1.0)
    if args.modality == "image" and variant != "frozen":
        params["image_tuning"] = {"mode": variant, "blocks": args.blocks, "grad_items": args.grad_items,
                                  "lr_mult": lr_mult, "cache_dir": args.ft_cache}
    elif variant != "frozen":
        mode = "side_adapter" if variant == "frozen64" else variant
        params["text_tuning"] = {"mode": mode, "template": DATASETS[args.dataset]["template"],
                                 "max_seq_length": args.max_seq_length, "layers": args.layers,
                                 "grad_items": args.grad_items, "lr_mult": lr_mult,
                                 "cache_dir": args.ft_cache}
    runs = []
    for seed in args.seeds:
        seed_everything(seed)
        t0 = time.perf_counter()
        model = build_model("two_tower", data, params)
        build_s = time.perf_counter() - t0
        if variant == "frozen64":
            model.text_tower.adapter.requires_grad_(False)  # zero correction: the frozen 64-token vectors
        clock = CpuClock(model, ev)
        cfg = TrainConfig(epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, lr=args.lr,
                          checkpoint=False, progress=False, num_threads=1)
        res = Trainer(model, data, cfg, clock, seed=seed).fit()
        test = ev.evaluate(model, "test")
        tower = getattr(model, f"{args.modality}_tower", None)
        runs.append({"seed": seed, "best_epoch": res.best_epoch, "epochs_run": len(res.history),
                     "train_wall_s_per_epoch": res.seconds_per_epoch,
                     "train_cpu_s_per_epoch": sum(clock.train_cpu) / max(len(clock.train_cpu), 1),
                     "valid_cpu_s_per_eval": sum(clock.valid_cpu) / max(len(clock.valid_cpu), 1),
                     "build_s": build_s, "cache_rows_computed": getattr(tower, "cache_computed", 0),
                     "trainable_tower_params": sum(p.numel() for p in tower.parameters() if p.requires_grad)
                     if tower is not None else 0,
                     "valid": res.best_valid, "test": test, "total_s": time.perf_counter() - t0})
        print(f"[{args.dataset} {args.modality} {variant}] seed {seed}: valid r@20 {res.best_score:.4f} "
              f"test r@20 {test['recall@20']:.4f} ({runs[-1]['train_cpu_s_per_epoch']:.1f} cpu s/epoch)",
              file=sys.stderr, flush=True)
    result = {"variant": variant, "params": params, "runs": runs,
              "load_after": Path("/proc/loadavg").read_text().split()[:3]}
    # one file per variant as soon as it is done (a long run that is stopped keeps what finished)
    part = Path(args.out) / f"finetune_{stem(args)}_{variant}.json"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "one"}, **result},
                               indent=1, default=float))
    return result


def stem(args: argparse.Namespace) -> str:
    """Result file prefix: the dataset, plus ``_image`` for the image encoder (text keeps its old names)."""
    return args.dataset + ("_image" if args.modality == "image" else "")


def table(folder: Path, dataset: str, modality: str = "text") -> str:
    """Markdown table of the per-variant files of one dataset (mean over the seeds run)."""
    name = dataset + ("_image" if modality == "image" else "")
    variants = IMAGE_VARIANTS if modality == "image" else VARIANTS
    rows = [("| variant | seeds | valid R@20 | test R@20 | test NDCG@20 | vs frozen (test R@20) | train CPU s/epoch "
            "| x frozen | valid CPU s/eval | best epoch / run | trainable tower params |"),
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    found = {v: json.loads(p.read_text()) for v in variants
             if (p := folder / f"finetune_{name}_{v}.json").is_file()}
    if not found:
        return f"(no results for {dataset})"

    def mean(res: dict, get) -> float:
        return float(np.mean([get(r) for r in res["runs"]]))

    base = found.get("frozen")
    for v, res in found.items():
        r20 = mean(res, lambda r: r["test"]["recall@20"])
        cpu = mean(res, lambda r: r["train_cpu_s_per_epoch"])
        rel = f"{(r20 / mean(base, lambda r: r['test']['recall@20']) - 1) * 100:+.1f}%" if base else "-"
        ratio = f"{cpu / mean(base, lambda r: r['train_cpu_s_per_epoch']):.2f}" if base else "-"
        epochs = ", ".join(f"{r['best_epoch']}/{r['epochs_run']}" for r in res["runs"])
        rows.append(f"| {v} | {', '.join(str(r['seed']) for r in res['runs'])} "
                    f"| {mean(res, lambda r: r['valid']['recall@20']):.4f} | {r20:.4f} "
                    f"| {mean(res, lambda r: r['test']['ndcg@20']):.4f} | {rel} | {cpu:.1f} | {ratio} "
                    f"| {mean(res, lambda r: r['valid_cpu_s_per_eval']):.1f} | {epochs} "
                    f"| {res['runs'][0]['trainable_tower_params']:,} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=list(DATASETS), default="ml1m")
    ap.add_argument("--modality", choices=list(ENCODERS), default="text", help="the encoder to fine-tune")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=None,
                    help="default: every variant of the modality (image: frozen, full, lora)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[2024])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--grad-items", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=1, help="image: trainable last MBConv blocks (+ head conv)")
    ap.add_argument("--lr-mult", type=float, default=None, help="tower lr = lr x this (default per variant)")
    ap.add_argument("--train-share", type=float, default=1.0, help="share of training rows kept (seeded)")
    ap.add_argument("--cache", default=None, help="feature store folder")
    ap.add_argument("--ft-cache", default=None, help="fine-tuning cache folder (token ids, frozen states)")
    ap.add_argument("--parallel", action="store_true", help="one subprocess per variant")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--report", action="store_true", help="print the markdown table of the finished variants")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "finetune"))
    args = ap.parse_args()
    if args.variants is None:
        args.variants = list(IMAGE_VARIANTS if args.modality == "image" else VARIANTS)
    elif args.modality == "image" and set(args.variants) - set(IMAGE_VARIANTS):
        ap.error(f"--modality image runs {IMAGE_VARIANTS}")
    if args.report:
        print(table(Path(args.out), args.dataset, args.modality))
        return 0
    if args.one:
        print(json.dumps(run_variant(args, args.one), default=float))
        return 0
    start = time.perf_counter()
    results = {}
    if args.parallel:
        base = [a for a in sys.argv[1:] if a != "--parallel"]
        procs = {v: subprocess.Popen([sys.executable, __file__, *base, "--one", v], stdout=subprocess.PIPE, text=True)
                 for v in args.variants}
        for v, proc in procs.items():
            stdout, _ = proc.communicate()
            if proc.returncode:
                print(f"variant {v} failed (exit {proc.returncode})", file=sys.stderr)
                continue
            results[v] = json.loads(stdout.strip().splitlines()[-1])
    else:
        results = {v: run_variant(args, v) for v in args.variants}
    out = Path(args.out) / f"finetune_{stem(args)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"args": {k: v for k, v in vars(args).items() if k != "one"}, "wall_s": time.perf_counter() - start,
               "load": Path("/proc/loadavg").read_text().split()[:3], "results": results}
    out.write_text(json.dumps(payload, indent=1, default=float))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
