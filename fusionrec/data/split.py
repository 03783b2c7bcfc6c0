"""Splits and k-core filtering. Every function is seeded and deterministic.

All splits return a copy of the dataset whose ``interactions["split"]`` holds
``train`` / ``valid`` / ``test`` per row; ids are unchanged.

* :func:`random_split` - per-user random split with MMRec's rule (its
  ``preprocessing/1splitting.ipynb``): a user with ``n < 10`` interactions gets
  ``n-2`` train, 1 valid, 1 test; otherwise ``vt = int(n * (valid+test))``,
  ``valid = vt // 2`` (in proportion for unequal ratios), ``test = vt - valid``
  and the rest train.
* :func:`leave_last_out_split` - per user by time: last -> test, second last -> valid.
* :func:`temporal_split` - one global time line cut at the ratio quantiles, so
  every train event is no later than every valid event, and valid than test.
* :func:`cold_start_split` - items (not events) are split: all events of an item
  go to the item's group, so valid/test items never occur in train.
* :func:`user_cold_start_split` - users are split: all events of a user go to the
  user's group, so valid/test users never occur in train (new users, recommended
  from their attributes and first events: :mod:`fusionrec.evaluate.user_cold`).
* ``predefined`` (:func:`apply_split`) keeps the split read from the file.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError

log = logging.getLogger(__name__)
_LABELS = np.array(["train", "valid", "test"], dtype=object)


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0):
        raise UserError(f"split ratios {list(ratios)} must be three non-negative numbers summing to 1",
                        "data.split.ratios", "use e.g. [0.8, 0.1, 0.1]")
    return float(ratios[0]), float(ratios[1]), float(ratios[2])


def _rank_within_user(users: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows visited in ``order``: position of each row within its user, and the user's size."""
    sorted_users = users[order]
    # stable sort by user keeps the visiting order inside every user
    by_user = order[np.argsort(sorted_users, kind="stable")]
    u_sorted = users[by_user]
    starts = np.r_[0, np.flatnonzero(np.diff(u_sorted)) + 1]
    sizes = np.diff(np.r_[starts, len(u_sorted)])
    rank_sorted = np.arange(len(u_sorted)) - np.repeat(starts, sizes)
    rank = np.empty(len(users), dtype=np.int64)
    rank[by_user] = rank_sorted
    size = np.empty(len(users), dtype=np.int64)
    size[by_user] = np.repeat(sizes, sizes)
    return rank, size


def mmrec_counts(
    n: np.ndarray,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    min_interactions: int = 10,
    rounding: str = "mmrec",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/valid/test counts for users with ``n`` interactions.

    Users with ``n < min_interactions`` get ``n-2 / 1 / 1`` (MMRec). Others:

    * ``rounding="mmrec"`` - MMRec's notebook arithmetic: ``vt = int(n * (valid+test))``,
      ``valid = vt // 2`` (in proportion for unequal ratios), ``test = vt - valid``.
    * ``rounding="round"`` - ``train = round(n * train)``, ``valid = round(n * valid)``
      (round half to even), ``test`` the rest; this is how the shared
      ``ml100k/mmrec`` reference split was made (80,000 / 9,988 / 10,012).

    A single interaction stays in train (MMRec's rule is undefined there: it would
    emit two labels for one row).
    """
    r_train, rv, rt = _check_ratios(ratios)
    n = np.asarray(n, dtype=np.int64)
    if rounding == "mmrec":
        # valid+test as the sum of the two ratios: 0.1 + 0.1 == 0.2 exactly, whereas
        # 1 - 0.8 = 0.19999999999999996 would turn int(10 * ...) into 1 instead of 2
        vt = np.floor(n * (rv + rt) + 1e-9).astype(np.int64)
        n_valid = np.floor(vt * (rv / (rv + rt)) + 1e-9).astype(np.int64) if rv + rt > 0 else np.zeros_like(n)
        n_test = vt - n_valid
    elif rounding == "round":
        n_tr = np.round(n * r_train).astype(np.int64)
        n_valid = np.minimum(np.round(n * rv).astype(np.int64), n - n_tr)
        n_test = n - n_tr - n_valid
    else:
        raise UserError(f"unknown rounding {rounding!r}", "random_split(rounding=...)", "use 'mmrec' or 'round'")
    small = n < min_interactions
    n_valid = np.where(small, np.minimum(1, np.maximum(n - 1, 0)), n_valid)
    n_test = np.where(small, np.where(n >= 2, 1, 0), n_test)
    n_train = n - n_valid - n_test
    return n_train, n_valid, n_test


def random_split(
    dataset: Dataset,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 999,
    min_interactions: int = 10,
    rounding: str = "mmrec",
) -> Dataset:
    """Per-user random split with MMRec's rule (see :func:`mmrec_counts` for ``rounding``).

    Rows are shuffled with ``seed`` and, per user, the first ``n_train`` go to
    train, the next ``n_valid`` to valid and the rest to test.
    """
    inter = dataset.interactions
    if len(inter) == 0:
        raise UserError("cannot split an empty dataset", dataset.name, "load interactions first")
    rng = np.random.default_rng(seed)
    users = inter["user"].to_numpy()
    order = rng.permutation(len(users))
    rank, size = _rank_within_user(users, order)
    n_train, n_valid, _ = mmrec_counts(size, ratios, min_interactions, rounding)
    labels = np.where(rank < n_train, 0, np.where(rank < n_train + n_valid, 1, 2))
    return dataset.with_split(_LABELS[labels])


def _timestamps(dataset: Dataset, method: str) -> np.ndarray:
    ts = dataset.interactions["timestamp"].to_numpy(np.float64)
    if np.isnan(ts).all():
        raise UserError(f"{method} split needs timestamps but dataset {dataset.name!r} has none",
                        "data.split.method",
                        "map a timestamp column (--columns timestamp=<col>) or use split method 'random'")
    if np.isnan(ts).any():
        log.warning("%d interactions without timestamp are treated as the oldest", int(np.isnan(ts).sum()))
        ts = np.where(np.isnan(ts), -np.inf, ts)
    return ts


def leave_last_out_split(dataset: Dataset, n_valid: int = 1, n_test: int = 1, new_items: float = 0.0,
                         seed: int = 999) -> Dataset:
    """Per user by time: the last ``n_test`` events -> test, the ``n_valid`` before -> valid.

    Ties in time keep file order. A user needs more than ``n_valid + n_test``
    events to keep one in train; shorter histories fill test first, then valid.

    ``new_items`` > 0 makes that share of the items (drawn with ``seed``) new arrivals:
    their training events are removed, so a valid/test event on one of them is a next
    item never seen in training (the item-cold slice of a sequential model), while
    every user keeps the same held-out events.
    """
    ts = _timestamps(dataset, "leave_last_out")
    users = dataset.interactions["user"].to_numpy()
    order = np.lexsort((np.arange(len(ts)), ts))  # by time, file order breaks ties
    rank, size = _rank_within_user(users, order)
    from_end = size - 1 - rank
    # keep at least one training event when the history allows it
    t = np.minimum(n_test, np.maximum(size - 1, 0))
    v = np.minimum(n_valid, np.maximum(size - 1 - t, 0))
    labels = np.where(from_end < t, 2, np.where(from_end < t + v, 1, 0))
    out = dataset.with_split(_LABELS[labels])
    if new_items <= 0:
        return out
    if new_items >= 1:
        raise UserError(f"new_items={new_items} must be a share in [0, 1)", "data.split.new_items",
                        "use e.g. 0.2 to hold out a fifth of the items as new arrivals")
    items = dataset.interactions["item"].to_numpy()
    active = np.unique(items)
    new = np.random.default_rng(seed).choice(active, round(len(active) * new_items), replace=False)
    return out.subset_interactions(~((labels == 0) & np.isin(items, new)))


def temporal_split(dataset: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Dataset:
    """Global time cut: the oldest ``ratios[0]`` of events train, then valid, then test.

    Events are ordered by time (file order breaks ties), so every train timestamp
    is <= every valid timestamp <= every test timestamp.
    """
    r_train, r_valid, _ = _check_ratios(ratios)
    ts = _timestamps(dataset, "temporal")
    n = len(ts)
    order = np.lexsort((np.arange(n), ts))
    cut1 = round(n * r_train)
    cut2 = round(n * (r_train + r_valid))
    labels = np.empty(n, dtype=np.int64)
    labels[order[:cut1]] = 0
    labels[order[cut1:cut2]] = 1
    labels[order[cut2:]] = 2
    return dataset.with_split(_LABELS[labels])


def cold_start_split(dataset: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 999) -> Dataset:
    """Item cold-start: shuffle the items that have events and cut them by ``ratios``.

    Every event goes to the split of its item, so no valid/test item appears in train.
    """
    r_train, r_valid, _ = _check_ratios(ratios)
    items = dataset.interactions["item"].to_numpy()
    active = np.unique(items)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(active)
    n = len(shuffled)
    cut1 = round(n * r_train)
    cut2 = round(n * (r_train + r_valid))
    group = np.zeros(dataset.n_items, dtype=np.int64)
    group[shuffled[cut1:cut2]] = 1
    group[shuffled[cut2:]] = 2
    return dataset.with_split(_LABELS[group[items]])


def user_cold_start_split(dataset: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1),
                          seed: int = 999) -> Dataset:
    """User cold-start: shuffle the users that have events and cut them by ``ratios``.

    Every event goes to the split of its user, so no valid/test user appears in train
    (``ratios=(0.8, 0.1, 0.1)`` holds out 10% of the users with all their events for test).
    """
    _check_ratios(ratios)
    users = dataset.interactions["user"].to_numpy()
    active = np.unique(users)
    shuffled = np.random.default_rng(seed).permutation(active)
    n = len(shuffled)
    cut1 = round(n * ratios[0])
    cut2 = round(n * (ratios[0] + ratios[1]))
    if cut1 == 0:
        raise UserError(f"user cold-start split of {n} user(s) with ratios {list(ratios)} leaves no training user",
                        "data.split.ratios", "raise the train share or use more users")
    group = np.zeros(dataset.n_users, dtype=np.int64)
    group[shuffled[cut1:cut2]] = 1
    group[shuffled[cut2:]] = 2
    return dataset.with_split(_LABELS[group[users]])


def kcore_filter(dataset: Dataset, k: int, item_k: int | None = None, compact: bool = True) -> Dataset:
    """Repeatedly drop users with fewer than ``k`` and items with fewer than ``item_k`` (default k) events.

    Iterates until stable, so every remaining user and item has enough events.
    Duplicate (user, item) events count once each. With ``compact`` the id space
    is re-indexed to the survivors (features follow).
    """
    if k <= 1 and (item_k or k) <= 1:
        return dataset
    item_k = k if item_k is None else item_k
    inter = dataset.interactions
    users = inter["user"].to_numpy()
    items = inter["item"].to_numpy()
    keep = np.ones(len(inter), dtype=bool)
    while True:
        u_deg = np.bincount(users[keep], minlength=dataset.n_users)
        i_deg = np.bincount(items[keep], minlength=dataset.n_items)
        new_keep = keep & (u_deg[users] >= k) & (i_deg[items] >= item_k)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    if not keep.any():
        raise UserError(f"{k}-core filtering removed every interaction of dataset {dataset.name!r}",
                        "data.kcore", "use a smaller k (or 0 to disable)")
    out = dataset.subset_interactions(keep)
    return out.compact() if compact else out


def apply_split(dataset: Dataset, method: str, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 999,
                min_interactions: int = 10, rounding: str = "mmrec", new_items: float = 0.0) -> Dataset:
    """Dispatch on a SplitConfig ``method``; ``predefined`` requires the file's own split."""
    if method == "predefined":
        if not dataset.has_split:
            raise UserError(f"split method is 'predefined' but dataset {dataset.name!r} has no split column",
                            "data.split.method",
                            "map the split column (--columns split=<col>) or choose random/temporal/"
                            "leave_last_out/cold_start")
        return dataset
    if method == "random":
        return random_split(dataset, ratios, seed, min_interactions, rounding=rounding)
    if method == "leave_last_out":
        return leave_last_out_split(dataset, new_items=new_items, seed=seed)
    if method == "temporal":
        return temporal_split(dataset, ratios)
    if method == "cold_start":
        return cold_start_split(dataset, ratios, seed)
    if method == "user_cold_start":
        return user_cold_start_split(dataset, ratios, seed)
    raise UserError(f"unknown split method {method!r}", "data.split.method",
                    "use predefined, random, leave_last_out, temporal, cold_start or user_cold_start")


def split_summary(dataset: Dataset) -> pd.DataFrame:
    """Interactions, users and items per split (a small table for reports)."""
    rows = []
    for name in ("train", "valid", "test"):
        part = dataset.split_frame(name)
        rows.append({"split": name, "interactions": len(part), "users": part["user"].nunique(),
                     "items": part["item"].nunique()})
    return pd.DataFrame(rows)


__all__ = [
    "apply_split",
    "apply_split_config",
    "cold_start_split",
    "kcore_filter",
    "leave_last_out_split",
    "mmrec_counts",
    "random_split",
    "split_summary",
    "temporal_split",
    "user_cold_start_split",
]


def apply_split_config(dataset: Dataset, split) -> Dataset:
    """Apply a :class:`fusionrec.config.SplitConfig` (method, ratios, seed, rule, rounding)."""
    return apply_split(dataset, split.method, tuple(split.ratios), split.seed, split.min_interactions,
                       rounding=split.rounding, new_items=getattr(split, "new_items", 0.0))
