"""What a training run returns (:class:`TrainResult`), what it needs of an evaluator, and how a seed is set."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from fusionrec.models.base import RecModel


class EvaluatorLike(Protocol):
    """What the trainer needs from :class:`fusionrec.evaluate.Evaluator`."""

    def evaluate(self, model: RecModel, split: str = "valid") -> dict[str, float]: ...


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`.

    ``best_epoch`` is 1-based (0 for closed-form models); ``history`` has one
    dict per epoch with ``epoch``, ``loss``, ``seconds`` and, on evaluated
    epochs, ``valid`` (the full metric dict); ``best_valid`` is the metric dict
    of the restored (best) model.
    """

    best_epoch: int
    best_score: float
    history: list[dict[str, Any]]
    seconds_per_epoch: float
    total_seconds: float
    stopped_early: bool
    best_valid: dict[str, float] = field(default_factory=dict)
    eval_seconds_per_epoch: float = 0.0
    device: str = "cpu"   # where it trained (train.device resolved)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so model initialisation is reproducible."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


__all__ = ["EvaluatorLike", "TrainResult", "seed_everything"]
