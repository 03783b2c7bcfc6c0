"""Pointwise (click / label) evaluation: AUC and log loss of a model's pair probabilities.

A model that predicts the probability of a (user, item) pair -- it has
``predict_pairs(users, items) -> probabilities`` like the ``dcn`` ranker -- is scored
on the *labelled rows* of a split:

* when the split has explicit negatives (label 0: shown, not clicked; or a rating
  under ``data.positive_rating``), its positives and explicit negatives, row by row;
* when it has none (implicit feedback), its positives plus ``negatives_per_positive``
  uniformly sampled items per positive that the user never interacted with in any
  split. The sample is drawn once per split with a fixed seed, so every validation
  epoch compares the model against the same rows.

:class:`PointwiseRows` says which of the two was used (``source``), so reports can
state it next to the numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fusionrec.data.dataset import Dataset, positive_rows
from fusionrec.evaluate.metrics import LOWER_IS_BETTER, auc, log_loss

POINTWISE_METRICS = ("auc", "logloss")
# rejection rounds before giving up on users whose interactions cover almost every item
_MAX_ROUNDS = 50


@dataclass(frozen=True)
class PointwiseRows:
    """The labelled (user, item) rows a split's AUC / log loss are computed on."""

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    source: str             # "explicit" (the split's own negatives) or "sampled"
    n_positive: int
    n_negative: int
    # the rows' own label values (event stages: 0 shown, 1 clicked, 2 converted) and ratings, for
    # multi-task rankers whose conversion target is a label stage or a rating threshold; sampled
    # negatives carry 0 and NaN
    events: np.ndarray | None = None
    ratings: np.ndarray | None = None

    def describe(self) -> str:
        """One line for reports, e.g. ``"120 positives vs 480 explicit negatives"``."""
        kind = "explicit negatives" if self.source == "explicit" else "sampled negatives (the split has no explicit ones)"
        return f"{self.n_positive} positives vs {self.n_negative} {kind}"

    def to_dict(self) -> dict[str, Any]:
        return {"negatives": self.source, "n_positive": self.n_positive, "n_negative": self.n_negative}


def supports_pointwise(model: Any) -> bool:
    """True when ``model`` (an instance or a class) predicts pair probabilities."""
    return callable(getattr(model, "predict_pairs", None))


def pointwise_rows(dataset: Dataset, split: str, negatives_per_positive: int = 1, seed: int = 0) -> PointwiseRows:
    """The labelled rows of ``split`` (see the module docstring)."""
    frame = dataset.split_frame(split)
    users = frame["user"].to_numpy(np.int64)
    items = frame["item"].to_numpy(np.int64)
    positive = positive_rows(frame)
    events = frame["label"].to_numpy(np.float64)
    ratings = frame["rating"].to_numpy(np.float64)
    if (~positive).any():
        labels = positive.astype(np.float32)
        return PointwiseRows(users, items, labels, "explicit", int(positive.sum()), int((~positive).sum()),
                             events, ratings)
    neg_users = np.repeat(users, int(negatives_per_positive))
    neg_items = _sample_unseen(dataset, neg_users, np.random.default_rng([seed, _split_code(split)]))
    keep = neg_items >= 0
    all_users = np.concatenate([users, neg_users[keep]])
    all_items = np.concatenate([items, neg_items[keep]])
    labels = np.concatenate([np.ones(len(users), np.float32), np.zeros(int(keep.sum()), np.float32)])
    n_neg = int(keep.sum())
    return PointwiseRows(all_users, all_items, labels, "sampled", len(users), n_neg,
                         np.concatenate([events, np.zeros(n_neg)]), np.concatenate([ratings, np.full(n_neg, np.nan)]))


def evaluate_pairs(model: Any, rows: PointwiseRows) -> dict[str, float]:
    """``{"auc", "logloss"}`` of ``model.predict_pairs`` on ``rows`` (NaN when a class is missing)."""
    if rows.n_positive == 0 or rows.n_negative == 0:
        return {"auc": float("nan"), "logloss": float("nan")}
    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    from fusionrec.train.device import compute_on, model_device

    dev = model_device(model)   # the pairs go where the model is (train.device)
    try:
        with torch.no_grad(), compute_on(dev):
            # copies: read-only frames
            probs = model.predict_pairs(torch.tensor(rows.users, device=dev), torch.tensor(rows.items, device=dev))
    finally:
        if was_training:
            model.train(True)
    probs = torch.as_tensor(probs).detach().cpu().numpy().astype(np.float64)
    out = {"auc": auc(rows.labels, probs), "logloss": log_loss(rows.labels, probs)}
    if callable(getattr(model, "predict_tasks", None)):
        out.update(evaluate_tasks(model, rows))
    return out


def task_metric_keys(model: Any) -> list[str]:
    """``auc_<task>``, ``logloss_<task>`` for every task a multi-task ranker reports (its
    ``metric_tasks``), plus ``auc_tasks``, the mean AUC of its click and conversion tasks."""
    tasks = tuple(getattr(model, "metric_tasks", ()) or ())
    if not tasks:
        return []
    return [f"{m}_{t}" for t in tasks for m in ("auc", "logloss")] + ["auc_tasks"]


def evaluate_tasks(model: Any, rows: PointwiseRows) -> dict[str, float]:
    """Per-task AUC / log loss of a multi-task ranker on ``rows``.

    ``model.predict_tasks(users, items)`` gives ``{task: probabilities}`` and
    ``model.task_targets(clicks, events, ratings)`` gives ``{task: (labels, rows it is defined
    on)}``: click and conversion over every row (the impression space), the conversion rate given
    a click (``cvr``) over the clicked rows only. A task with one class on a split is NaN.
    """
    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    from fusionrec.train.device import compute_on, model_device

    dev = model_device(model)
    try:
        with torch.no_grad(), compute_on(dev):
            probs = model.predict_tasks(torch.tensor(rows.users, device=dev), torch.tensor(rows.items, device=dev))
    finally:
        if was_training:
            model.train(True)
    events = rows.events if rows.events is not None else rows.labels.astype(np.float64)
    ratings = rows.ratings if rows.ratings is not None else np.full(len(rows.labels), np.nan)
    targets = model.task_targets(rows.labels.astype(bool), events, ratings)
    out: dict[str, float] = {}
    for task in getattr(model, "metric_tasks", ()):
        y, defined = targets[task]
        p = torch.as_tensor(probs[task]).detach().cpu().numpy().astype(np.float64)[defined]
        y = np.asarray(y, dtype=np.float64)[defined]
        both = y.size > 0 and 0 < y.sum() < y.size
        out[f"auc_{task}"] = auc(y, p) if both else float("nan")
        out[f"logloss_{task}"] = log_loss(y, p) if y.size else float("nan")
    main = [out[f"auc_{t}"] for t in ("click", "conversion") if f"auc_{t}" in out]
    out["auc_tasks"] = float(np.mean(main)) if main else float("nan")
    return out


def _split_code(split: str) -> int:
    return {"train": 0, "valid": 1, "test": 2}.get(split, 3)


def _sample_unseen(dataset: Dataset, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniform item per entry of ``users`` that the user has no interaction with (any split,
    any label); -1 where none was found (a user who interacted with nearly every item)."""
    n_items = dataset.n_items
    inter = dataset.interactions
    seen = np.unique(inter["user"].to_numpy(np.int64) * n_items + inter["item"].to_numpy(np.int64))
    out = rng.integers(0, n_items, size=len(users))
    todo = np.arange(len(users))
    for _ in range(_MAX_ROUNDS):
        q = users[todo] * n_items + out[todo]
        pos = np.minimum(np.searchsorted(seen, q), max(seen.size - 1, 0))
        hit = seen[pos] == q if seen.size else np.zeros(len(todo), dtype=bool)
        todo = todo[hit]
        if todo.size == 0:
            return out
        out[todo] = rng.integers(0, n_items, size=todo.size)
    out[todo] = -1
    return out


__all__ = [
    "LOWER_IS_BETTER",
    "POINTWISE_METRICS",
    "PointwiseRows",
    "evaluate_pairs",
    "evaluate_tasks",
    "pointwise_rows",
    "supports_pointwise",
    "task_metric_keys",
]
