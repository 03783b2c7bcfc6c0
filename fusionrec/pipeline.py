"""Experiment pipeline and the ``fusionrec train | evaluate | demo`` subcommands (the demo's own steps:
:mod:`fusionrec.experiments.multimodal_demo`).

:func:`run_experiment` is the one honest protocol every number in fusionrec comes from:

1. load the dataset (``fusionrec.data.loading.load_dataset``) unless one is given;
2. for every seed in ``cfg.train.seeds``: seed everything, build the model through
   the registry, train it with early stopping on the **validation** split (the
   trainer restores the valid-best weights), then score the **test** split
   exactly once for that chosen model;
3. aggregate mean ± sample std over seeds and write the run directory::

       config.yaml          the resolved configuration
       results.json         per-seed and aggregated valid/test metrics, timings
       results.md           the same as tables
       train_history.json   per-seed, per-epoch loss / valid metrics
       model/               artifact of the first seed (fusionrec.models.io)
       checkpoints/seed<k>/ training checkpoints (for train.resume)
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fusionrec import output
from fusionrec.cli_args import (
    add_data_arguments,
    add_device_override,
    dataset_for_evaluation,
    run_config_from_args,
)
from fusionrec.config import RunConfig
from fusionrec.data.dataset import Dataset, positive_rows
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.evaluate.evaluator import model_metric_keys, validation_metric_keys
from fusionrec.evaluate.pointwise import supports_pointwise
from fusionrec.evaluate.report import format_table, write_json
from fusionrec.evaluate.run_report import (
    evaluation_summary_text,
    mean_std_block,
    results_table_markdown,
    run_summary_text,
)
from fusionrec.models.io import load_model, save_model
from fusionrec.models.registry import available_models, build_model, model_class
from fusionrec.train import distributed
from fusionrec.train.callbacks import callbacks_for_run
from fusionrec.train.device import resolve_device
from fusionrec.train.trainer import Trainer, TrainResult, seed_everything
from fusionrec.train.valid_metric import check_valid_metric


# ---------------------------------------------------------------------- experiment
def load_data(cfg: RunConfig) -> Dataset:
    """The dataset of ``cfg.data`` with a train/valid/test split."""
    from fusionrec.data.loading import (
        load_dataset,  # lazy: heavy readers only when needed
    )
    from fusionrec.encoders.ensure import features_for_run

    # models that read content get their modalities from the feature store (encoded when missing)
    return features_for_run(ensure_split(load_dataset(cfg.data), cfg), cfg)


def ensure_split(dataset: Dataset, cfg: RunConfig) -> Dataset:
    """Return ``dataset`` with a split, making one from ``cfg.data.split`` when it has none."""
    if dataset.has_split:
        return dataset
    from fusionrec.data.split import apply_split_config

    return apply_split_config(dataset, cfg.data.split)


def make_evaluator(dataset: Dataset, cfg: RunConfig) -> Evaluator:
    """The evaluator of ``cfg.eval``; diversity uses the first modality the model sees, if any."""
    names = cfg.data.modalities if cfg.data.modalities is not None else list(dataset.modalities)
    features = names[0] if (cfg.eval.beyond_accuracy and names) else None
    # scores are masked and ranked where the model computes (train.device; the CPU when a saved model's
    # run named a GPU this machine lacks); top-K comes back to the host
    device = resolve_device(cfg.train.device, strict=False)
    return Evaluator.from_config(dataset, cfg.eval, item_features=features, device=device)


def _run_dir(cfg: RunConfig, dataset: Dataset) -> Path:
    base = Path(cfg.output_dir)
    stem = f"{dataset.name}_{cfg.model.name}"
    if cfg.train.resume:
        # resume continues the most recent run of the same dataset+model
        previous = sorted((p for p in base.glob(f"{stem}_*") if (p / "checkpoints").is_dir()),
                          key=lambda p: p.stat().st_mtime)
        if previous:
            return previous[-1]
    run_dir = base / f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = base / f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}-{suffix}"
    return run_dir


def run_experiment(cfg: RunConfig, dataset: Dataset | None = None, *, run_dir: str | Path | None = None,
                   verbose: bool = False,
                   test_extra: Callable[[Any, Evaluator], dict[str, float]] | None = None) -> dict[str, Any]:
    """Train and evaluate ``cfg.model`` on ``cfg.data`` over ``cfg.train.seeds``; see the module docstring.

    ``test_extra(model, evaluator)`` adds metrics to each seed's test result (the demo's
    warm/cold item slices), so they are aggregated over seeds like the others. ``verbose``
    prints one summary line per seed (unless ``-q``).

    Returns the content of ``results.json`` plus ``"run_dir"``.
    """
    check_run_config(cfg)
    from fusionrec.encoders.ensure import (
        features_for_run,
        run_features,
        write_features_json,
    )

    dataset = load_data(cfg) if dataset is None else features_for_run(ensure_split(dataset, cfg), cfg)
    features = run_features(dataset, cfg)
    # ratings under data.positive_rating become negative feedback for training, masking and truth alike
    dataset = dataset.with_positive_rating(getattr(cfg.data, "positive_rating", None))
    if not distributed.is_main():
        # torchrun: ranks other than 0 train their share and write nothing of the run
        return _follow_run(cfg, dataset, make_evaluator(dataset, cfg))
    run_dir = Path(run_dir) if run_dir is not None else _run_dir(cfg, dataset)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    evaluator = make_evaluator(dataset, cfg)
    output.detail(f"{dataset!r}\n{label_summary(dataset)}\nrun directory: {run_dir}")

    per_seed: list[dict[str, Any]] = []
    histories: dict[str, Any] = {}
    for i, seed in enumerate(cfg.train.seeds):
        model, result, record = _run_seed(cfg, dataset, evaluator, seed, run_dir, test_extra)
        per_seed.append(record)
        histories[str(seed)] = result.history
        if verbose:
            output.info(seed_summary_line(cfg, seed, result, record["test"]))
        if i == 0:
            save_model(model, cfg, dataset, run_dir / "model")
            write_features_json(features, run_dir / "model")

    results = _results(cfg, dataset, per_seed, features)
    if supports_pointwise(model):
        # AUC / log loss rows: the split's explicit negatives, or sampled ones
        results["pointwise"] = {split: evaluator.pointwise_rows(split).to_dict() for split in ("valid", "test")}
    write_json(results, run_dir / "results.json")
    write_json(histories, run_dir / "train_history.json")
    (run_dir / "results.md").write_text(results_table_markdown(results))
    results["run_dir"] = str(run_dir)
    return results


def _follow_run(cfg: RunConfig, dataset: Dataset, evaluator: Evaluator) -> dict[str, Any]:
    """A rank other than 0: the same seeds and models, trained in step with rank 0, no test, no files."""
    for seed in cfg.train.seeds:
        seed_everything(seed)
        data = dataset.train_data(cfg.data.modalities)
        model = build_model(cfg.model.name, data, cfg.model.params)
        Trainer(model, data, cfg.train, evaluator, out_dir=None, seed=seed).fit()
    return {"run_dir": None, "rank": distributed.current().rank}


def label_summary(dataset: Dataset) -> str:
    """``train: 700 positives, 30 negative feedback rows (never positives)`` for ``-v``."""
    frame = dataset.split_frame("train") if dataset.has_split else dataset.interactions
    positive = positive_rows(frame)
    return (f"train: {int(positive.sum())} positive rows, {int((~positive).sum())} negative feedback rows "
            "(label 0 or under data.positive_rating: never positives)")


def check_run_config(cfg: RunConfig) -> None:
    """What can be checked before any data is loaded: seeds, the model name, the valid metric."""
    if not cfg.train.seeds:
        raise UserError("no seeds to run", "train.seeds", "set e.g. --set 'train.seeds=[2024]'")
    if cfg.model.name not in available_models():
        raise UserError(f"unknown model {cfg.model.name!r}", "model.name", f"choose one of {available_models()}")
    resolve_device(cfg.train.device)   # train.device=cuda without a GPU fails before the data is loaded
    # a valid_metric the run cannot report fails now, not after loading, encoding and one epoch
    check_valid_metric(cfg.train.valid_metric, validation_metric_keys(
        cfg.eval.ks, cfg.eval.metrics, model_metric_keys(model_class(cfg.model.name))), cfg.model.name)


def _run_seed(cfg: RunConfig, dataset: Dataset, evaluator: Evaluator, seed: int, run_dir: Path,
              test_extra: Callable[[Any, Evaluator], dict[str, float]] | None,
              ) -> tuple[Any, TrainResult, dict[str, Any]]:
    """Build, train (valid-only selection) and test one seed; returns the model, its training
    result and its ``per_seed`` record of results.json."""
    seed_everything(seed)
    data = dataset.train_data(cfg.data.modalities)
    model = build_model(cfg.model.name, data, cfg.model.params)
    trainer = Trainer(model, data, cfg.train, evaluator, out_dir=run_dir / "checkpoints" / f"seed{seed}", seed=seed,
                      callbacks=callbacks_for_run(cfg, dataset, run_dir, seed))  # train.tensorboard / train.mlflow
    result = trainer.fit()
    # the chosen (valid-best) model meets the test split exactly once
    t0 = time.perf_counter()
    test = evaluator.evaluate(model, split="test")
    if test_extra is not None:
        test.update(test_extra(model, evaluator))
    record = {
        "seed": seed,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "device": result.device,   # train.device as resolved (auto: cuda:0 or cpu)
        "epochs_run": len(result.history),
        "seconds_per_epoch": result.seconds_per_epoch,
        "eval_seconds": result.eval_seconds_per_epoch,
        "total_seconds": result.total_seconds,
        "test_seconds": time.perf_counter() - t0,
        "valid": result.best_valid,
        "test": {k: float(v) for k, v in test.items()},
    }
    return model, result, record


def _results(cfg: RunConfig, dataset: Dataset, per_seed: list[dict[str, Any]],
             features: dict[str, Any]) -> dict[str, Any]:
    """results.json: the keys bench/ scripts read stay as they are; new ones are only added."""
    timing_keys = ("seconds_per_epoch", "eval_seconds", "total_seconds", "best_epoch", "epochs_run")
    return {
        "dataset": dataset.name,
        "model": cfg.model.name,
        "params": cfg.model.params,
        "protocol": cfg.eval.protocol,
        "valid_metric": cfg.train.valid_metric,
        "seeds": list(cfg.train.seeds),
        "valid": mean_std_block([r["valid"] for r in per_seed]),
        "test": mean_std_block([r["test"] for r in per_seed]),
        "timing": mean_std_block([{k: r[k] for k in timing_keys} for r in per_seed]),
        "per_seed": per_seed,
        "pointwise": None,
        "features": features,
    }


def seed_summary_line(cfg: RunConfig, seed: int, result: TrainResult, test: dict[str, float]) -> str:
    """``[bpr] seed 1: best epoch 7, valid recall@20 0.1234, test recall@20 0.1200 (3.1s)``."""
    shown = "auc" if "auc" in test and "recall@20" not in test else "recall@20"
    value = test.get(shown, float("nan"))
    return (f"[{cfg.model.name}] seed {seed}: best epoch {result.best_epoch}, "
            f"valid {cfg.train.valid_metric} {result.best_score:.4f}, test {shown} {value:.4f} "
            f"({result.total_seconds:.1f}s)")


# ---------------------------------------------------------------------- CLI
def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train``, ``evaluate`` and ``demo``."""
    p = subparsers.add_parser("train", help="train and evaluate a model (early stopping on valid, test once)",
                              description="Train a model over the configured seeds, select on the validation "
                                          "split, score the test split once, write a run directory.")
    add_data_arguments(p)  # --data DIR, --dataset PRESET, --config run.yaml, --set KEY=VALUE
    p.add_argument("--model", help=f"model name ({', '.join(available_models())}, ...), or auto: train a "
                                   "portfolio within --budget and keep the best on valid (fusionrec/train/auto.py)")
    p.add_argument("--budget", type=float, default=600.0, metavar="SECONDS",
                   help="--model auto: seconds for training all candidates (default 600)")
    p.add_argument("--candidates", nargs="+", default=None, metavar="MODEL",
                   help="--model auto: only these candidates (default: the whole portfolio)")
    p.add_argument("--no-blend", action="store_true",
                   help="--model auto: do not try the blend of the two best candidates (fusionrec/train/auto_blend.py)")
    p.add_argument("--out", help="output folder for run directories (default: output_dir of the config)")
    p.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="write TensorBoard logs under DIR (same as --set train.tensorboard=DIR)")
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="auto | cpu | cuda | cuda:N | mps: where training, evaluation and the encoders run "
                        "(default auto: a GPU when there is one); same as --set train.device=DEVICE")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train with N processes (PyTorch DDP, gloo on CPU; runs torchrun for you). "
                        "Same as: torchrun --nproc-per-node N -m fusionrec train ...")
    p.set_defaults(func=_cmd_train)

    e = subparsers.add_parser("evaluate", help="evaluate a saved model (runs/<run>/model)")
    e.add_argument("--model-dir", required=True, help="a model/ folder written by fusionrec train")
    e.add_argument("--split", default="test", choices=["valid", "test"])
    add_data_arguments(e, run_file=False, overrides=False)  # score the saved model on another folder
    e.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="evaluation overrides, e.g. --set eval.protocol=mmrec --set 'eval.ks=[10,20]'")
    e.set_defaults(func=_cmd_evaluate)

    d = subparsers.add_parser("demo", help="generate the demo shop and compare the models of configs/demo.yaml")
    d.add_argument("--quick", action="store_true", help="smaller data and fewer epochs (about a minute)")
    d.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    d.add_argument("--data-root", default=None, help="where the generated demo data is cached")
    d.add_argument("--models", nargs="*", default=None, help="only these models from demo.yaml")
    d.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="training seeds, e.g. --seeds 2024 2025 2026 (default: train.seeds of demo.yaml)")
    d.set_defaults(func=_cmd_demo)


def _cmd_train(args: argparse.Namespace) -> int:
    if args.nproc is not None and args.nproc < 1:
        raise UserError(f"--nproc {args.nproc} must be at least 1", "fusionrec train", "e.g. --nproc 2")
    add_device_override(args)
    if args.model == "auto":
        return _cmd_train_auto(args)
    cfg = run_config_from_args(args, model=args.model, command="fusionrec train")
    if args.nproc and args.nproc > 1 and distributed.current() is None and "WORLD_SIZE" not in os.environ:
        import subprocess

        # the checks above ran once here; torchrun starts the ranks, each of which joins the group
        return subprocess.call(distributed.launch_command(args.nproc, distributed.strip_nproc(sys.argv[1:])))
    dctx = distributed.init_from_env(resolve_device(cfg.train.device))
    if dctx is not None and not dctx.is_main:
        output.configure(quiet=True)
        try:
            run_experiment(cfg)
        except BaseException:
            distributed.shutdown(failed=True)
            raise
        distributed.shutdown()
        return 0
    if args.out:
        cfg = cfg.model_copy(update={"output_dir": args.out})
    if args.tensorboard:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"tensorboard": args.tensorboard})})
    try:
        results = run_experiment(cfg, verbose=True)
    except BaseException:
        distributed.shutdown(failed=True)
        raise
    distributed.shutdown()
    if dctx is not None:
        output.info(f"trained with {dctx.world_size} processes (DDP, {dctx.backend})")
    print(run_summary_text(results))
    # part of the result, even with -q: evaluate and serve need the model folder inside it
    if not output.is_quiet():  # what to look at next (-q keeps the table and the run directory only)
        print(f"report: fusionrec report {shlex.quote(results['run_dir'])}")
        if cfg.train.tensorboard:
            print(f"training curves: tensorboard --logdir {shlex.quote(cfg.train.tensorboard)}")
    print(f"run directory: {results['run_dir']}")
    return 0


def _cmd_train_auto(args: argparse.Namespace) -> int:
    """``fusionrec train --model auto``: the portfolio within ``--budget``, chosen on valid, winner tested."""
    from fusionrec.train.auto import run_auto

    def make_cfg(model: str) -> RunConfig:
        return run_config_from_args(args, model=model, command="fusionrec train --model auto")

    results = run_auto(load_data(make_cfg("pop")), make_cfg, budget=args.budget, candidates=args.candidates,
                       output_dir=args.out, blend=not args.no_blend)
    print(results["candidate_table"])
    print(run_summary_text(results))
    print(f"run directory: {results['run_dir']}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    loaded = load_model(args.model_dir)
    cfg = loaded.config
    if args.overrides:
        from fusionrec.config import deep_merge, parse_overrides

        cfg = RunConfig.model_validate(deep_merge(cfg.model_dump(mode="json"), parse_overrides(args.overrides)))
    # the model's positive threshold (idempotent on its own saved data, which already carries it)
    dataset = dataset_for_evaluation(args, loaded).with_positive_rating(cfg.data.positive_rating)
    evaluator = make_evaluator(dataset, cfg)
    metrics = evaluator.evaluate(loaded.model, split=args.split)
    rows = evaluator.pointwise_rows(args.split).describe() if supports_pointwise(loaded.model) else None
    print(evaluation_summary_text(cfg.model.name, args.split, metrics, rows))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from fusionrec.experiments.multimodal_demo import (
        cold_summary,
        demo_table,
        run_demo,
        write_demo_summary,
    )

    start = time.perf_counter()
    results = run_demo(quick=args.quick, output_dir=args.out, data_root=args.data_root, models=args.models,
                       seeds=args.seeds)
    counts = cold_summary(results)
    if counts:
        print(f"test users with warm items: {counts.get('warm_n_users', 0)}, with new (cold) items: "
              f"{counts.get('cold_n_users', 0)}; cold items: {counts.get('cold_n_items', 0)} of "
              f"{counts.get('warm_n_items', 0) + counts.get('cold_n_items', 0)} (no training interaction)")
    print(format_table(demo_table(results), fmt="text"))
    summary = write_demo_summary(results, args.out)
    print(f"demo finished in {time.perf_counter() - start:.0f}s; table in {summary}, run directories under {args.out}")
    return 0
