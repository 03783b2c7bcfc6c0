"""Warm-item vs cold-item metrics: where content features earn their keep.

An item is **cold** when it has no positive training interaction (a new arrival: no
model has seen anyone choose it), **warm** otherwise. :func:`slice_metrics` scores a
model once on a split with the evaluator's full ranking (every item competes, so a
cold item has to beat the whole catalogue, popular warm items included) and then
computes the ranking metrics twice, once per slice:

* a user's ground truth in a slice is only their held-out items of that slice;
* hits count only items of that slice (a warm hit does not count on the cold slice);
* users with no held-out item in a slice are left out of that slice's mean.

So ``cold`` Recall@20 answers "of the new items a user chose, how many were in their
top 20 of the whole catalogue?", and ``warm`` the same for the known items.

Result keys are ``"<slice>:<metric>@<k>"`` (``"cold:recall@20"``) plus
``"<slice>:n_users"`` and ``"<slice>:n_items"`` (items of the slice in the catalogue),
so they can sit next to the plain test metrics of a run and be aggregated over seeds.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fusionrec.errors import UserError
from fusionrec.evaluate.evaluator import Evaluator, values_keys
from fusionrec.evaluate.metrics import ranking_metrics_per_user

SLICES = ("warm", "cold")

__all__ = ["SLICES", "cold_item_mask", "slice_key", "slice_metrics"]


def slice_key(slice_name: str, metric: str) -> str:
    """``slice_key("cold", "recall@20") -> "cold:recall@20"``: the result key of a slice metric."""
    return f"{slice_name}:{metric}"


def cold_item_mask(evaluator: Evaluator) -> np.ndarray:
    """Bool ``[n_items]``: True for items without any positive training interaction."""
    return evaluator.item_popularity == 0


def slice_metrics(evaluator: Evaluator, model_or_fn: Any, split: str = "test",
                  cold: np.ndarray | None = None) -> dict[str, float]:
    """Ranking metrics of ``model_or_fn`` on ``split``, separately for warm and cold items.

    Parameters
    ----------
    evaluator:
        The run's :class:`Evaluator` (its protocol, masks, ``ks`` and metrics are used).
    model_or_fn:
        A :class:`~fusionrec.models.base.RecModel` or a score function, as for
        :meth:`Evaluator.evaluate`.
    split:
        ``"valid"`` (for model selection) or ``"test"``.
    cold:
        Bool ``[n_items]`` marking the cold items; default :func:`cold_item_mask`
        (no positive training interaction).

    Returns
    -------
    dict
        ``{"warm:recall@20": ..., "cold:ndcg@10": ..., "warm:n_users": ..., "cold:n_items": ...}``;
        a slice without any evaluated user gets NaN metrics and ``n_users`` 0.
    """
    cold_mask = cold_item_mask(evaluator) if cold is None else np.asarray(cold, dtype=bool)
    if cold_mask.shape != (evaluator.n_items,):
        raise UserError(
            f"cold item mask has shape {cold_mask.shape} but the dataset has {evaluator.n_items} items",
            "slice_metrics(cold=...)", "pass one bool per item (row j = item j), or leave it out to use "
            "'no positive training interaction'",
        )
    _, lists, hits = evaluator.ranked_lists(model_or_fn, split)
    truth = evaluator.split_truth(split).truth     # rows aligned with the ranked users
    in_list = lists >= 0
    row_of = np.repeat(np.arange(truth.shape[0]), np.diff(truth.indptr))  # CSR entry -> its user row
    keys = values_keys(evaluator.metrics, evaluator.ks)
    out: dict[str, float] = {}
    for name, members in (("warm", ~cold_mask), ("cold", cold_mask)):
        # per-user count of held-out items in this slice: sum of membership over the CSR row
        n_pos = np.bincount(row_of, weights=members[truth.indices], minlength=truth.shape[0]).astype(np.int64)
        slice_hits = hits & in_list & members[np.where(in_list, lists, 0)]
        keep = n_pos > 0
        if keep.any():
            values = ranking_metrics_per_user(slice_hits[keep], n_pos[keep], evaluator.ks, evaluator.metrics)
            out.update({slice_key(name, k): float(values[k].mean()) for k in keys})
        else:
            out.update({slice_key(name, k): float("nan") for k in keys})
        out[slice_key(name, "n_users")] = float(keep.sum())
        out[slice_key(name, "n_items")] = float(members.sum())
    return out
