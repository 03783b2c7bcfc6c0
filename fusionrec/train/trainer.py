"""One trainer for every model of the :class:`~fusionrec.models.base.RecModel` contract.

* gradient models (``trainable = True``): Adam over ``cfg.epochs`` epochs of the
  sampler named by the model's ``batch_kind``; after every ``cfg.eval_every``
  epochs the *validation* split is scored and ``cfg.valid_metric`` drives early
  stopping (``cfg.patience`` evaluations without improvement); the best weights
  are restored at the end, so the returned model is the valid-best one;
* closed-form models (``trainable = False``): ``model.fit(data)`` once, then one
  validation pass.

The test split is never looked at here: the pipeline scores it once afterwards.

A ``deadline`` (a ``time.perf_counter()`` value, as ``--model auto`` gives each candidate) is
checked after every training step and after every validation: training stops once the time left
is less than one validation pass (measured on this run's validations, ``valid_seconds_hint``
before the first), the weights trained since the last validation are validated once more, and
the valid-best weights are restored as usual; ``out_of_time`` then says so. The overshoot is at
most one training step plus the error of that estimate.

Checkpoints (``out_dir/checkpoint.pt``) hold plain tensors and numbers only
(state dicts, optimizer state, epoch, best weights, history) so they load with
``torch.load(weights_only=True)``. Sampling randomness is derived from
``(seed, epoch)``, hence a resumed run draws exactly the batches an
uninterrupted run would have drawn.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrec import output
from fusionrec.config import TrainConfig
from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.evaluate.pointwise import LOWER_IS_BETTER
from fusionrec.models.base import RecModel
from fusionrec.train import distributed
from fusionrec.train.averaging import TaskSelection, WeightEMA
from fusionrec.train.callbacks import Callback, CallbackList
from fusionrec.train.checkpoint import (
    CHECKPOINT_NAME,
    STATE_KEYS,
    read_checkpoint,
    write_checkpoint,
)
from fusionrec.train.device import compute_on, describe, resolve_device, to_device
from fusionrec.train.optim import make_adam
from fusionrec.train.progress import EpochProgress
from fusionrec.train.result import EvaluatorLike, TrainResult, seed_everything
from fusionrec.train.sampling import make_sampler
from fusionrec.train.valid_metric import check_valid_metric

log = logging.getLogger(__name__)


class Trainer:
    """Train ``model`` on ``data`` according to ``cfg`` (see module docstring)."""

    def __init__(
        self,
        model: RecModel,
        data: TrainData,
        cfg: TrainConfig,
        evaluator: EvaluatorLike | None = None,
        out_dir: str | Path | None = None,
        seed: int | None = None,
        callbacks: Sequence[Callback] = (),
        deadline: float | None = None,
        valid_seconds_hint: float = 0.0,
    ) -> None:
        self.model = model
        self.data = data
        self.cfg = cfg
        self.evaluator = evaluator
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.seed = int(seed if seed is not None else (cfg.seeds[0] if cfg.seeds else 0))
        # on_evaluation / on_epoch_end / on_fit_end hooks (fusionrec.train.callbacks);
        # under torchrun rank 0 alone logs, calls back and writes checkpoints
        self.callbacks = CallbackList(callbacks if distributed.is_main() else ())
        self.optimizer: torch.optim.Optimizer | None = None
        # train.ema_decay: the averaged weights are validated, chosen and returned (fusionrec.train.averaging)
        self.ema: WeightEMA | None = None
        # a model with task_valid_metrics(): one valid-best state per task (fusionrec.train.averaging)
        self.tasks: TaskSelection | None = None
        # a time budget (perf_counter seconds; see the module docstring): set True when it ended training
        self.deadline = deadline
        self.out_of_time = False
        self._valid_cost = float(valid_seconds_hint)   # seconds one validation takes (estimate, then measured)
        self._valid_measured = False
        # train.device: a gradient model trains and validates there (closed-form ones fit on the CPU)
        self.device = torch.device("cpu")

    # ------------------------------------------------------------------ public
    def fit(self) -> TrainResult:
        """Train (or fit) the model, restore the valid-best weights and report."""
        if self.cfg.num_threads:
            torch.set_num_threads(int(self.cfg.num_threads))
        seed_everything(self.seed)
        self._check_valid_metric()
        if not type(self.model).trainable:
            return self._fit_closed_form()   # numpy / scipy on the CPU, whatever train.device says
        self.device = resolve_device(getattr(self.cfg, "device", "auto"))
        dctx = distributed.current()
        if dctx is not None and self.device.type == "cuda":
            self.device = dctx.device   # torchrun: each rank on its own GPU (cuda:LOCAL_RANK)
        # before the optimizer and the averaged copy are made, so their state lives there too
        self.model.to(self.device)
        (output.detail if self.device.type == "cpu" else output.info)(
            f"[{self.model.name}] training on {describe(self.device)}")
        result = self._fit_gradient()
        result.device = str(self.device)
        return result

    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / CHECKPOINT_NAME if self.out_dir is not None else None

    # ------------------------------------------------------------------ closed form
    def _fit_closed_form(self) -> TrainResult:
        start = time.perf_counter()
        self.model.fit(self.data)
        fit_seconds = time.perf_counter() - start
        valid = self._validate() if self.evaluator is not None else {}
        score = self._score(valid) if valid else float("nan")
        if valid:
            self.callbacks.on_evaluation(self, 0, valid, True)
        total = time.perf_counter() - start
        history = [{"epoch": 0, "loss": None, "seconds": fit_seconds, "valid": valid}]
        EpochProgress(self.model.name, self.cfg, epochs=False).fitted(fit_seconds, score if valid else None)
        result = TrainResult(0, score, history, fit_seconds, total, False, valid, total - fit_seconds)
        self.callbacks.on_fit_end(self, result)
        return result

    # ------------------------------------------------------------------ gradient
    def _fit_gradient(self) -> TrainResult:
        model, cfg = self.model, self.cfg
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise UserError(
                f"model {model.name!r} is marked trainable but has no parameters",
                f"{type(model).__module__}.{type(model).__name__}",
                "set trainable = False and implement fit(), or add nn.Parameters",
            )
        optimizer = make_adam(params, cfg.lr, cfg.weight_decay)
        self.optimizer = optimizer  # callbacks read the learning rate from it
        # pointwise models say how many sampled negatives per positive they want
        num_negatives = getattr(model, "num_negatives", None)
        if num_negatives is None:  # a model without the RecModel property: its raw params
            num_negatives = getattr(model, "params", {}).get("num_negatives", 4)
        options = model.sampler_options() if hasattr(model, "sampler_options") else {}  # e.g. max_len
        sampler = make_sampler(type(model).batch_kind, self.data, cfg.batch_size, int(num_negatives), **options)
        if sampler.kind == "pointwise":
            output.detail(f"[{model.name}] each epoch: {len(sampler.users)} positives, {len(sampler.neg_users)} "
                          f"explicit negatives, {int(num_negatives)} sampled negatives per positive")

        state = {
            "epoch": 0, "best_epoch": 0, "best_score": -math.inf, "bad_evals": 0,
            "history": [], "best_state": None, "best_valid": {}, "train_seconds": 0.0,
            "eval_seconds": 0.0, "n_evals": 0,
        }
        dctx = distributed.current()
        self._init_averaging(dctx)
        if cfg.resume and (dctx is None or dctx.is_main):
            self._load_checkpoint(optimizer, state)
        if dctx is not None:
            # torchrun: rank 0 read any checkpoint; every rank starts from its weights and state
            if cfg.resume:
                self._receive_start(dctx, optimizer, state)
            self._loss_fn = distributed.wrap(model, dctx)
        else:
            self._loss_fn = model.calculate_loss

        total_start = time.perf_counter()
        progress = EpochProgress(model.name, cfg, initial=state["epoch"])
        # resumed from a run that had already stopped early: nothing left to train
        stopped_early = bool(self.evaluator is not None and state["n_evals"] and self._patience_out(state))
        try:
            while state["epoch"] < cfg.epochs and not stopped_early:
                stopped_early = self._one_epoch(sampler, optimizer, state, progress)
        finally:
            progress.close()
            # the DDP wrapper holds the process group; dropped here so that it is freed before the
            # group is destroyed, not by the interpreter's teardown afterwards (gloo aborts then)
            self._loss_fn = model.calculate_loss
        if stopped_early and state["epoch"] < cfg.epochs:
            progress.stopped(state)

        if self.evaluator is None or state["best_state"] is None:
            # Without validation the last weights are the result (the averaged ones with train.ema_decay).
            state["best_epoch"] = state["epoch"]
            state["best_score"] = float("nan")
            if self.ema is not None:
                self.ema.copy_to_model()
        else:
            model.load_state_dict(state["best_state"])
        if self.tasks is not None and self.tasks.states():
            model.use_task_states(self.tasks.states(), self.tasks.epochs())
            # the served model mixes states: its own validation is what the run reports and compares
            state["best_valid"] = self._validate()
            state["best_score"] = self._score(state["best_valid"])
        total = time.perf_counter() - total_start
        epochs_run = max(sum(1 for h in state["history"] if "loss" in h), 1)
        result = TrainResult(
            best_epoch=int(state["best_epoch"]),
            best_score=float(state["best_score"]),
            history=state["history"],
            seconds_per_epoch=state["train_seconds"] / epochs_run,
            total_seconds=total,
            stopped_early=stopped_early,
            best_valid=dict(state["best_valid"]),
            eval_seconds_per_epoch=state["eval_seconds"] / max(state["n_evals"], 1),
        )
        self.callbacks.on_fit_end(self, result)
        return result

    def _one_epoch(self, sampler, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                   progress: EpochProgress) -> bool:
        """Train one epoch, validate when due, report it; True when training should stop."""
        cfg = self.cfg
        epoch = state["epoch"] + 1
        t0 = time.perf_counter()
        loss = self._train_epoch(sampler, optimizer, epoch)
        train_secs = time.perf_counter() - t0
        state["train_seconds"] += train_secs
        record: dict[str, Any] = {"epoch": epoch, "loss": loss, "seconds": train_secs,
                                  "lr": float(optimizer.param_groups[0]["lr"])}
        state["epoch"] = epoch
        if self.out_of_time:   # the deadline came during this epoch: its weights are validated once more
            record["stopped_at_deadline"] = True
        if not math.isfinite(loss):
            # A diverged model is useless from here on: keep the best weights so far.
            record["diverged"] = True
            state["history"].append(record)
            progress.epoch(record, None, False)
            self.callbacks.on_epoch_end(self, record)
            return True
        evaluate_now = self.evaluator is not None and (epoch % max(cfg.eval_every, 1) == 0 or epoch == cfg.epochs
                                                       or self.out_of_time)
        improved = False
        score = None
        if evaluate_now and not distributed.is_main():
            stop = self._follow_evaluation(epoch, record, state)
            return self._stop_at_deadline(record, evaluated=True) or stop
        if evaluate_now:
            t1 = time.perf_counter()
            with self.ema.applied() if self.ema is not None else contextlib.nullcontext():
                valid = self._validate()
                score = self._score(valid)
                improved = self._improved(score, state["best_score"])
                if improved:   # the weights validated: the averaged ones with train.ema_decay
                    state.update(best_score=score, best_epoch=epoch, bad_evals=0, best_valid=valid,
                                 best_state=_clone_state(self.model))
                else:
                    state["bad_evals"] += 1
                finished = self.tasks.observe(self.model, epoch, valid) if self.tasks is not None else []
            for task in finished:   # that task's patience is spent: the model stops training it
                self.model.finish_task(task)
            record["valid_seconds"] = time.perf_counter() - t1
            self._note_valid_cost(record["valid_seconds"])
            state["eval_seconds"] += record["valid_seconds"]
            state["n_evals"] += 1
            record["valid"] = valid
            if finished:
                record["tasks_finished"] = finished
            if distributed.current() is not None:  # the other ranks keep or skip these weights likewise
                distributed.current().broadcast((improved, score, valid, state["bad_evals"]))
            self.callbacks.on_evaluation(self, epoch, valid, improved)
        state["history"].append(record)
        progress.epoch(record, score, improved)
        self.callbacks.on_epoch_end(self, record)
        if cfg.checkpoint and self.checkpoint_path is not None and distributed.is_main():
            self._save_checkpoint(optimizer, state)
        return self._stop_at_deadline(record, evaluate_now) or (evaluate_now and self._patience_out(state))

    def _stop_at_deadline(self, record: dict[str, Any], evaluated: bool) -> bool:
        """True when the deadline ended training: during this epoch, or now, right after a validation
        (no time left for another step and its validation)."""
        if self.out_of_time or (evaluated and self._deadline_reached()):
            self.out_of_time = True
            record["stopped_at_deadline"] = True
        return self.out_of_time

    def _deadline_reached(self) -> bool:
        """True when less than one validation pass is left before ``deadline`` (every rank agrees)."""
        if self.deadline is None:
            return False
        late = time.perf_counter() + self._valid_cost >= self.deadline
        dctx = distributed.current()
        return dctx.mean(float(late)) > 0 if dctx is not None else late

    def _note_valid_cost(self, seconds: float) -> None:
        """The reserve kept for the last validation: the slowest one measured (the hint until then)."""
        self._valid_cost = max(self._valid_cost, seconds) if self._valid_measured else seconds
        self._valid_measured = True

    def _patience_out(self, state: dict[str, Any]) -> bool:
        """Early stop: ``patience`` evaluations without improvement -- of every task's metric when
        the model selects per task, else of ``valid_metric``."""
        if self.tasks is not None:
            return self.tasks.all_done
        return state["bad_evals"] >= self.cfg.patience

    def _init_averaging(self, dctx: distributed.DistContext | None) -> None:
        """``train.ema_decay`` and per-task selection (:mod:`fusionrec.train.averaging`)."""
        if self.cfg.ema_decay is not None:
            self.ema = WeightEMA(self.model, float(self.cfg.ema_decay))
        if self.evaluator is not None:
            self.tasks = TaskSelection.for_model(self.model, self.cfg.patience)
        if self.tasks is not None and dctx is not None:
            raise UserError(f"model {self.model.name!r} selects one state per task, which torchrun training "
                            "does not support", "torchrun", "train it in one process, or switch the model's "
                            "per-task selection off (multitask: model.params.task_checkpoints=false)")

    def _train_epoch(self, sampler, optimizer: torch.optim.Optimizer, epoch: int) -> float:
        model = self.model
        model.train()
        with compute_on(self.device):
            model.pre_epoch()
        # (seed, epoch) -> sampling stream: resume-safe without storing RNG state.
        rng = np.random.default_rng([self.seed, epoch])
        dctx = distributed.current()
        loss_fn = getattr(self, "_loss_fn", model.calculate_loss)
        total, n = 0.0, 0
        for batch in sampler.epoch(rng):   # drawn on the host (numpy): the same batches on every device
            if dctx is not None:  # every rank drew the same batch; each trains on its slice
                batch = dctx.shard(batch)
            batch = to_device(batch, self.device)
            optimizer.zero_grad(set_to_none=True)
            with compute_on(self.device):
                loss = loss_fn(batch)
            if loss.dim() != 0:
                loss = loss.sum()
            finite = bool(torch.isfinite(loss))
            if dctx is not None:  # all ranks stop together, or none does
                finite = dctx.mean(float(finite)) == 1.0
            if not finite:
                return float("nan")
            with compute_on(self.device):
                loss.backward()
                optimizer.step()
            if self.ema is not None:
                self.ema.update()
            rows = len(next(iter(batch.values())))
            total += float(loss.detach()) * rows
            n += rows
            if self._deadline_reached():   # checked every step: a budget is never overrun by a whole epoch
                self.out_of_time = True
                break
        mean = total / max(n, 1)
        return dctx.mean(mean) if dctx is not None else mean

    # ------------------------------------------------------------------ distributed (torchrun)
    def _receive_start(self, dctx: distributed.DistContext, optimizer: torch.optim.Optimizer,
                       state: dict[str, Any]) -> None:
        """Rank 0's resumed weights, optimizer moments and progress, on every rank."""
        sent = dctx.broadcast((self.model.state_dict(), optimizer.state_dict(), state) if dctx.is_main else None)
        if not dctx.is_main:
            model_state, optim_state, main_state = sent
            self.model.load_state_dict(model_state)
            optimizer.load_state_dict(optim_state)
            state.update(main_state)

    def _follow_evaluation(self, epoch: int, record: dict[str, Any], state: dict[str, Any]) -> bool:
        """A rank other than 0 at an evaluation: take rank 0's verdict; True when training stops."""
        improved, score, valid, bad_evals = distributed.current().broadcast(None)
        state["n_evals"] += 1
        state["bad_evals"] = bad_evals
        record["valid"] = valid
        if improved:
            with self.ema.applied() if self.ema is not None else contextlib.nullcontext():
                state.update(best_score=score, best_epoch=epoch, best_valid=valid,
                             best_state=_clone_state(self.model))
        state["history"].append(record)
        return state["bad_evals"] >= self.cfg.patience

    def _validate(self) -> dict[str, float]:
        self.model.eval()
        with torch.no_grad():
            result = self.evaluator.evaluate(self.model, split="valid")
        return {k: float(v) for k, v in result.items()}

    def _check_valid_metric(self) -> None:
        """Fail before the first epoch when the evaluator will not report ``valid_metric``."""
        keys = getattr(self.evaluator, "metric_keys", None)
        if self.evaluator is None or not callable(keys):
            return  # a custom evaluator: checked on the first validation instead
        check_valid_metric(self.cfg.valid_metric, keys(self.model, "valid"), self.model.name)

    def _improved(self, score: float, best: float) -> bool:
        if best == -math.inf:  # nothing chosen yet (the sentinel of a fresh run)
            return not math.isnan(score)
        if self.cfg.valid_metric in LOWER_IS_BETTER:
            return score < best
        return score > best

    def _score(self, valid: dict[str, float]) -> float:
        key = self.cfg.valid_metric
        if key not in valid:
            raise UserError(
                f"validation metric {key!r} is not computed by the evaluator",
                "train.valid_metric",
                f"choose one of {sorted(valid)} (e.g. --set train.valid_metric=recall@20) "
                "or add its k / metric to eval.ks / eval.metrics",
            )
        return float(valid[key])

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        payload = {"model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
                   **{key: state[key] for key in STATE_KEYS}, "seed": self.seed, "model_name": self.model.name}
        if self.ema is not None:
            payload["ema"] = self.ema.state_dict()
        if self.tasks is not None:
            payload["tasks"] = self.tasks.state_dict()
        write_checkpoint(self.checkpoint_path, payload)

    def _load_checkpoint(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        payload = read_checkpoint(self.checkpoint_path, self.model.name)
        if payload is None:
            return
        self.model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        for key in STATE_KEYS:
            state[key] = payload[key]
        if self.ema is not None and "ema" in payload:
            self.ema.load_state_dict(payload["ema"])
        if self.tasks is not None and "tasks" in payload:
            self.tasks.load_state_dict(payload["tasks"])
            for task in self.tasks.finished():
                self.model.finish_task(task)


def _clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


__all__ = [
    "CHECKPOINT_NAME",
    "EvaluatorLike",
    "TrainResult",
    "Trainer",
    "seed_everything",
]
