"""Rating evaluation: MAE and RMSE of a model's predicted ratings on a split's rated rows.

A model that predicts explicit ratings has ``predict_ratings(users, items) -> ratings``
(:mod:`fusionrec.models.rating`). It is scored on every row of the split that carries a
rating (negative feedback included: a low rating is a rating to predict). The evaluator
adds ``mae`` and ``rmse`` to its result for such a model; both are lower-is-better, and a
rating model is selected on validation ``rmse`` unless the run names another metric.

:func:`rating_slices` splits the rows by whether their item has any training rating, so a
content model's ratings of items held out of training can be compared with the fallbacks
(the global mean, the user's mean) that a collaborative model is left with there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fusionrec.data.dataset import Dataset
from fusionrec.evaluate.metrics import mae, rmse

RATING_METRICS = ("rmse", "mae")


@dataclass(frozen=True)
class RatingRows:
    """The rated (user, item, rating) rows of one split."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray

    def __len__(self) -> int:
        return len(self.ratings)


def supports_ratings(model: Any) -> bool:
    """True when ``model`` (an instance or a class) predicts explicit ratings."""
    return callable(getattr(model, "predict_ratings", None))


def rating_rows(dataset: Dataset, split: str) -> RatingRows:
    """Every row of ``split`` with a finite rating."""
    frame = dataset.split_frame(split)
    ratings = frame["rating"].to_numpy(np.float64)
    keep = np.isfinite(ratings)
    return RatingRows(frame["user"].to_numpy(np.int64)[keep], frame["item"].to_numpy(np.int64)[keep],
                      ratings[keep])


def predict(model: Any, rows: RatingRows) -> np.ndarray:
    """``model.predict_ratings`` on ``rows`` in eval mode (the model's mode is restored)."""
    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    from fusionrec.train.device import compute_on, model_device

    dev = model_device(model)   # the pairs go where the model is (train.device)
    try:
        with torch.no_grad(), compute_on(dev):
            pred = model.predict_ratings(torch.from_numpy(rows.users.copy()).to(dev),
                                         torch.from_numpy(rows.items.copy()).to(dev))
    finally:
        if was_training:
            model.train(True)
    return torch.as_tensor(pred).detach().cpu().numpy().astype(np.float64)


def evaluate_ratings(model: Any, rows: RatingRows) -> dict[str, float]:
    """``{"rmse", "mae"}`` of the model's predicted ratings (NaN when the split has no rating)."""
    if len(rows) == 0:
        return {"rmse": float("nan"), "mae": float("nan")}
    pred = predict(model, rows)
    return {"rmse": rmse(pred, rows.ratings), "mae": mae(pred, rows.ratings)}


def fallback_predictions(dataset: Dataset, rows: RatingRows) -> dict[str, np.ndarray]:
    """What a model without an item's ratings falls back to: the global training mean, the
    item's training mean (the global mean for an item without one) and the user's training mean."""
    train = rating_rows(dataset, "train")
    mu = float(train.ratings.mean())

    def means(ids: np.ndarray, n: int) -> np.ndarray:
        total = np.bincount(ids, weights=train.ratings, minlength=n)
        count = np.bincount(ids, minlength=n)
        return np.where(count > 0, total / np.maximum(count, 1), mu)

    return {
        "global_mean": np.full(len(rows), mu),
        "item_mean": means(train.items, dataset.n_items)[rows.items],
        "user_mean": means(train.users, dataset.n_users)[rows.users],
    }


def rating_slices(model: Any, dataset: Dataset, split: str = "test") -> dict[str, dict[str, float]]:
    """RMSE / MAE of ``model`` and of the fallbacks, on the split's rows whose item is warm (has
    training ratings) and cold (none), e.g. ``{"cold": {"model:rmse": ..., "item_mean:rmse": ...}}``."""
    rows = rating_rows(dataset, split)
    train = rating_rows(dataset, "train")
    warm_items = np.zeros(dataset.n_items, dtype=bool)
    warm_items[train.items] = True
    pred = predict(model, rows) if len(rows) else np.empty(0)
    fallbacks = fallback_predictions(dataset, rows)
    out: dict[str, dict[str, float]] = {}
    for name, keep in (("warm", warm_items[rows.items]), ("cold", ~warm_items[rows.items])):
        block: dict[str, float] = {"n_rows": float(keep.sum())}
        if keep.any():
            for who, values in {"model": pred, **fallbacks}.items():
                block[f"{who}:rmse"] = rmse(values[keep], rows.ratings[keep])
                block[f"{who}:mae"] = mae(values[keep], rows.ratings[keep])
        out[name] = block
    return out


__all__ = [
    "RATING_METRICS",
    "RatingRows",
    "evaluate_ratings",
    "fallback_predictions",
    "predict",
    "rating_rows",
    "rating_slices",
    "supports_ratings",
]
