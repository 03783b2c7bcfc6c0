"""Weight averaging and per-task selection for the trainer.

* :class:`WeightEMA` (``train.ema_decay``): an exponential moving average of the trainable
  weights, updated after every optimizer step (``torch.optim.swa_utils.AveragedModel``).
  Validation, model choice and the returned model use the averaged weights, so the chosen
  epoch is that of a smoothed trajectory instead of one noisy step: on a small validation
  split the epoch-to-epoch noise of the raw weights decides the choice more than the model does.
* :class:`TaskSelection`: a model that predicts several tasks may name one validation metric
  per task (``model.task_valid_metrics()``, e.g. the multitask ranker with
  ``task_checkpoints: true``). The trainer then keeps one valid-best state per task, tells the
  model when a task has run out of patience (``model.finish_task``: it stops training it), trains
  until every task has, and hands the per-task states to ``model.use_task_states`` at the end.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightEMA:
    """EMA of ``model``'s parameters (buffers stay the live model's)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = model
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))

    def update(self) -> None:
        """After an optimizer step (the first call copies the weights)."""
        self.averaged.update_parameters(self.model)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own again after it."""
        live = [p.detach().clone() for p in self.model.parameters()]
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(self.model.parameters(), live):
                    p.copy_(v)

    def copy_to_model(self) -> None:
        with torch.no_grad():
            for p, a in zip(self.model.parameters(), self.averaged.module.parameters()):
                p.copy_(a)

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.averaged.load_state_dict(state)


class TaskSelection:
    """One valid-best state per task of a model with ``task_valid_metrics()`` (see module docstring)."""

    def __init__(self, metrics: Mapping[str, str], patience: int) -> None:
        self.metrics = dict(metrics)
        self.patience = patience
        self.best: dict[str, dict[str, Any]] = {
            t: {"score": -math.inf, "epoch": 0, "bad": 0, "state": None} for t in self.metrics}

    @classmethod
    def for_model(cls, model: Any, patience: int) -> TaskSelection | None:
        metrics = model.task_valid_metrics() if callable(getattr(model, "task_valid_metrics", None)) else {}
        return cls(metrics, patience) if metrics else None

    def observe(self, model: torch.nn.Module, epoch: int, valid: Mapping[str, float]) -> list[str]:
        """Record one validation (``model`` holds the weights validated); returns the tasks that
        have just run out of patience."""
        finished = []
        for task, metric in self.metrics.items():
            b = self.best[task]
            if b["bad"] >= self.patience:
                continue
            score = float(valid[metric])
            if score > b["score"]:   # AUC-like task metrics: higher is better
                b.update(score=score, epoch=epoch, bad=0, state={k: v.detach().clone() for k, v in model.state_dict().items()})
            else:
                b["bad"] += 1
                if b["bad"] >= self.patience:
                    finished.append(task)
        return finished

    def finished(self) -> list[str]:
        return [t for t, b in self.best.items() if b["bad"] >= self.patience]

    @property
    def all_done(self) -> bool:
        return all(b["bad"] >= self.patience for b in self.best.values())

    def states(self) -> dict[str, dict[str, torch.Tensor]]:
        return {t: b["state"] for t, b in self.best.items() if b["state"] is not None}

    def epochs(self) -> dict[str, int]:
        return {t: int(b["epoch"]) for t, b in self.best.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = dict(state["best"])
