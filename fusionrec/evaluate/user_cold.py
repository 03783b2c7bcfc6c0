"""New-user (user cold-start) protocol: rank for users never seen in training.

With a ``user_cold_start`` split (:func:`fusionrec.data.split.user_cold_start_split`) every
valid/test user is absent from training. For each such user the events are ordered by
time (file order breaks ties) and the first ``max(n_first)`` positives form the *given*
pool; the truth is the user's positives after that pool, the same for every ``n``, so the
rows of the table are comparable. For ``n`` in ``n_first`` (default 0, 1, 3) the model
is given the user's first ``n`` events as history (``n = 0``: attributes alone); all pool
items are masked from the ranking, given or not, because they are not part of the truth.

A *scorer* maps ``(users, histories)`` to ``[B, n_items]`` scores:

* :func:`model_scorer` uses a model's ``new_user_scores(codes, histories)`` when it has one
  (two_tower: user attributes + first events), else ``full_sort_predict`` (a model
  without a new-user path, e.g. ``pop``, ignores the given events).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from fusionrec.data.dataset import Dataset, positive_rows
from fusionrec.errors import UserError
from fusionrec.evaluate.metrics import ranking_metrics

Scorer = Callable[[np.ndarray, list[list[int]]], torch.Tensor | np.ndarray]


@dataclass
class NewUserCases:
    """The held-out users of one split with their ordered first events and their truth."""

    users: np.ndarray                 # internal user ids [U]
    first: list[list[int]]            # each user's first max(n_first) positive items, in time order
    truth: list[np.ndarray]           # positives after the first ones
    # each user's arrival: the time of its first event (NaN when the data has no timestamps); a
    # model that reads it (two_tower's new_user_recency_days) sees only training events before it
    arrival: np.ndarray | None = None


def new_user_cases(dataset: Dataset, split: str = "test", n_first: Sequence[int] = (0, 1, 3)) -> NewUserCases:
    """Users of ``split`` that have no training event, with their first events and truth."""
    pool = max(n_first) if n_first else 0
    frame = dataset.split_frame(split)
    frame = frame[positive_rows(frame)]
    train_users = set(dataset.split_frame("train")["user"].unique().tolist())
    seen = frame["user"].isin(train_users)
    if seen.all() and len(frame):
        raise UserError(f"every {split} user also has training events: this is not a new-user split",
                        "data.split.method", "use data.split.method: user_cold_start")
    frame = frame[~seen.to_numpy()]
    ts = frame["timestamp"].to_numpy(np.float64)
    order = np.lexsort((np.arange(len(frame)), np.nan_to_num(ts, nan=-np.inf), frame["user"].to_numpy()))
    users_sorted = frame["user"].to_numpy()[order]
    items_sorted = frame["item"].to_numpy()[order]
    starts = np.r_[0, np.flatnonzero(np.diff(users_sorted)) + 1, len(users_sorted)]
    ts_sorted = ts[order]
    users, first, truth, arrival = [], [], [], []
    for a, b in pairwise(starts):
        items = list(dict.fromkeys(items_sorted[a:b].tolist()))   # a repeated item counts once
        rest = np.asarray(items[pool:], dtype=np.int64)
        if len(rest) == 0:
            continue  # nothing left to predict after the given events
        users.append(int(users_sorted[a]))
        first.append(items[:pool])
        truth.append(rest)
        arrival.append(float(ts_sorted[a]))
    return NewUserCases(np.asarray(users, dtype=np.int64), first, truth, np.asarray(arrival, dtype=np.float64))


def model_scorer(model: torch.nn.Module, cases: NewUserCases | None = None) -> Scorer:
    """Scores from a model's new-user path (attributes + given events), else its ``full_sort_predict``.

    With ``cases``, each user's arrival time is passed on (a new-user prior with recency reads it).
    """
    new_user = getattr(model, "new_user_scores", None)
    arrival = {} if cases is None or cases.arrival is None else dict(zip(cases.users.tolist(), cases.arrival.tolist()))

    from fusionrec.train.device import compute_on, model_device

    dev = model_device(model)   # the users go where the model is (train.device)

    def score(users: np.ndarray, histories: list[list[int]]) -> torch.Tensor:
        t_users = torch.as_tensor(users, dtype=torch.long).to(dev)
        with torch.no_grad(), compute_on(dev):
            if new_user is not None:
                codes = model.user_codes[t_users] if getattr(model, "user_attr", None) is not None else None
                times = [arrival.get(int(u), np.nan) for u in users] if arrival else None
                return new_user(codes, histories, times=times)
            return model.full_sort_predict(t_users)
    return score


def evaluate_new_users(scorer: Scorer, cases: NewUserCases, n_items: int, n_first: Sequence[int] = (0, 1, 3),
                       ks: Sequence[int] = (10, 20, 50), batch: int = 256) -> dict[int, dict[str, float]]:
    """``{n: {"recall@20": ..., ...}}``: ranking metrics when each user's first ``n`` events are given."""
    if len(cases.users) == 0:
        raise UserError("no new user with events left to predict", "user cold-start protocol",
                        "use a user_cold_start split with enough events per user (or fewer first events)")
    kmax = max(ks)
    n_pos = np.array([len(t) for t in cases.truth], dtype=np.float64)
    out: dict[int, dict[str, float]] = {}
    for n in n_first:
        hits = np.zeros((len(cases.users), kmax), dtype=bool)
        for start in range(0, len(cases.users), batch):
            idx = np.arange(start, min(start + batch, len(cases.users)))
            given = [cases.first[i][:n] for i in idx]
            scores = scorer(cases.users[idx], given)
            scores = torch.as_tensor(scores, dtype=torch.float32).clone()
            for row, i in enumerate(idx):
                scores[row, cases.first[i]] = -torch.inf       # the pool is never a target
            top = torch.topk(scores, min(kmax, n_items), dim=1).indices.numpy()
            for row, i in enumerate(idx):
                hits[i, : top.shape[1]] = np.isin(top[row], cases.truth[i])
        res = ranking_metrics(hits, n_pos, ks, ("recall", "ndcg", "hit"))
        res["users"] = float(len(cases.users))
        out[int(n)] = res
    return out


def new_user_metrics(dataset: Dataset, model: torch.nn.Module, n_first: Sequence[int] = (0, 1, 3),
                     ks: Sequence[int] = (10, 20, 50), split: str = "test") -> dict[str, float]:
    """Flat ``{"new_users@1/recall@20": ...}`` keys of :func:`evaluate_new_users` (results.json, tables)."""
    cases = new_user_cases(dataset, split, n_first)
    table = evaluate_new_users(model_scorer(model, cases), cases, dataset.n_items, n_first, ks)
    return {f"new_users@{n}/{k}": v for n, row in table.items() for k, v in row.items()}


__all__ = ["NewUserCases", "evaluate_new_users", "model_scorer", "new_user_cases", "new_user_metrics"]
