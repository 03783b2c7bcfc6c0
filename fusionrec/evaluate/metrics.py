"""Metric definitions: top-K ranking metrics, beyond-accuracy metrics, pointwise metrics.

Ranking metrics work on a *hit matrix*: ``hits[u, j]`` is True when the item
at rank ``j + 1`` of user ``u``'s recommendation list is one of the user's
held-out positives; ``n_pos[u]`` is the number of held-out positives. With
``h_j`` the hit at rank ``j`` (1-based) and ``m = n_pos``, the per-user values
are (then averaged over users):

==========  ====================================================================
recall@K    ``sum_{j<=K} h_j / m``  (MMRec/RecBole: denominator is *all* positives,
            not ``min(m, K)``)
precision@K ``sum_{j<=K} h_j / K``  (K even when fewer than K items were rankable)
ndcg@K      ``DCG/IDCG`` with binary gain ``DCG = sum_{j<=K} h_j / log2(j+1)`` and
            ``IDCG = sum_{j<=min(m,K)} 1 / log2(j+1)`` (MMRec's definition)
map@K       ``sum_{j<=K} P@j * h_j / min(m, K)``  (MMRec's normalisation)
mrr@K       ``1 / rank of the first hit`` if it is within K, else 0
hit@K       1 if any of the first K items is a hit, else 0 (a.k.a. HitRate@K)
==========  ====================================================================

These are exactly the definitions in MMRec's ``utils/metrics.py`` for the
metrics MMRec has (recall, ndcg, precision, map); MMRec has no MRR/Hit, which
follow RecBole. MMRec rounds reported values to 4 decimals; we do not round.

Beyond-accuracy metrics are computed on the recommended lists themselves
(item ids, ``-1`` = empty slot): catalogue coverage, intra-list diversity and
novelty. Pointwise metrics (AUC, log loss, MAE, RMSE) score predictions for
individual (user, item) pairs.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from fusionrec.errors import UserError

RANKING_METRICS = ("recall", "ndcg", "precision", "map", "mrr", "hit")
BEYOND_ACCURACY_METRICS = ("coverage", "diversity", "novelty")
# metrics where smaller is better (early stopping and "best" table cells flip for them)
LOWER_IS_BETTER = frozenset({"logloss", "mae", "rmse", "logloss_click", "logloss_conversion", "logloss_cvr"})
# accepted spellings -> canonical name (users type "HitRate" or "NDCG")
METRIC_ALIASES = {
    "recall": "recall", "ndcg": "ndcg", "precision": "precision", "prec": "precision",
    "map": "map", "mrr": "mrr", "hit": "hit", "hitrate": "hit", "hit_rate": "hit", "hr": "hit",
}


def canonical_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    """Normalise metric names (case, aliases); raise a UserError naming an unknown one."""
    out: list[str] = []
    for name in metrics:
        key = str(name).strip().lower()
        if key not in METRIC_ALIASES:
            raise UserError(
                f"unknown ranking metric {name!r}",
                where="eval.metrics",
                fix=f"use some of {list(RANKING_METRICS)}",
            )
        if METRIC_ALIASES[key] not in out:
            out.append(METRIC_ALIASES[key])
    if not out:
        raise UserError("no ranking metric selected", where="eval.metrics",
                        fix=f"list at least one of {list(RANKING_METRICS)}")
    return tuple(out)


def check_ks(ks: Iterable[int] | int) -> tuple[int, ...]:
    """Sorted unique positive cutoffs; raise a UserError naming a bad one."""
    if isinstance(ks, (int, np.integer)):
        ks = [int(ks)]
    out = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or int(k) <= 0:
            raise UserError(f"cutoff K={k!r} is not a positive integer", where="eval.ks",
                            fix="give cutoffs such as [10, 20, 50]")
        out.append(int(k))
    if not out:
        raise UserError("no cutoff K given", where="eval.ks", fix="give cutoffs such as [10, 20, 50]")
    return tuple(sorted(set(out)))


# ---------------------------------------------------------------------------- ranking
def _as_numpy(x: Any) -> np.ndarray:
    # accept torch tensors too, without importing torch here (metrics are plain numpy:
    # [users, K] arrays are small, and numpy avoids thread-pool overhead on tiny ops)
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def ranking_metrics_per_user(
    hits: np.ndarray | Any,
    n_pos: np.ndarray | Any,
    ks: Sequence[int],
    metrics: Sequence[str] = RANKING_METRICS,
) -> dict[str, np.ndarray]:
    """Per-user ranking metrics from a hit matrix.

    ``hits``: bool ``[U, L]`` with ``L >= max(ks)`` (rank order, best first);
    ``n_pos``: ``[U]`` number of held-out positives per user (must be > 0).
    Returns ``{"recall@10": float64 array [U], ...}`` for every metric and K.
    One cumulative pass serves all cutoffs, so asking for many K is cheap.
    """
    hits_a = _as_numpy(hits).astype(bool, copy=False)
    n_pos_a = _as_numpy(n_pos).astype(np.float64)
    if hits_a.ndim != 2:
        raise ValueError(f"hits must be 2-D [users, ranks], got shape {hits_a.shape}")
    ks = check_ks(ks)
    metrics = canonical_metrics(metrics)
    kmax = max(ks)
    if hits_a.shape[1] < kmax:
        raise ValueError(f"hit matrix has {hits_a.shape[1]} ranks but K={kmax} was requested")
    if n_pos_a.shape != (hits_a.shape[0],):
        raise ValueError(f"n_pos has shape {n_pos_a.shape}, expected ({hits_a.shape[0]},)")
    if (n_pos_a <= 0).any():
        raise ValueError("every evaluated user needs at least one positive (n_pos > 0)")

    h = hits_a[:, :kmax].astype(np.float64)
    cum_hits = h.cumsum(axis=1)                                 # hits within the first j ranks
    ranks = np.arange(1, kmax + 1, dtype=np.float64)
    disc = 1.0 / np.log2(ranks + 1.0)                           # rank j -> 1 / log2(j + 1)
    out: dict[str, np.ndarray] = {}
    if "ndcg" in metrics:
        dcg = (h * disc).cumsum(axis=1)
        ideal = disc.cumsum()                                   # IDCG when m >= j
    if "map" in metrics:
        ap_sum = (cum_hits / ranks * h).cumsum(axis=1)          # sum of P@j over hit ranks
    if "mrr" in metrics:
        # rank of the first hit (kmax + 1 when there is none)
        first = np.where(h > 0, ranks, kmax + 1.0).min(axis=1) if len(h) else np.zeros(0)
    for k in ks:
        col = cum_hits[:, k - 1]
        for name in metrics:
            if name == "recall":
                val = col / n_pos_a
            elif name == "precision":
                val = col / k
            elif name == "hit":
                val = (col > 0).astype(np.float64)
            elif name == "ndcg":
                ideal_len = np.minimum(n_pos_a, k).astype(np.int64)
                val = dcg[:, k - 1] / ideal[ideal_len - 1]
            elif name == "map":
                val = ap_sum[:, k - 1] / np.minimum(n_pos_a, k)
            elif name == "mrr":
                val = np.where(first <= k, 1.0 / first, 0.0)
            else:  # pragma: no cover - canonical_metrics guards this
                raise AssertionError(name)
            out[f"{name}@{k}"] = val
    return out


def ranking_metrics(
    hits: np.ndarray | Any,
    n_pos: np.ndarray | Any,
    ks: Sequence[int],
    metrics: Sequence[str] = RANKING_METRICS,
) -> dict[str, float]:
    """Mean over users of :func:`ranking_metrics_per_user`."""
    per_user = ranking_metrics_per_user(hits, n_pos, ks, metrics)
    return {key: float(val.mean()) if val.size else float("nan") for key, val in per_user.items()}


def hits_from_lists(lists: np.ndarray, positives: Sequence[Iterable[int]]) -> np.ndarray:
    """Hit matrix for explicit recommendation lists (``-1`` marks an empty slot)."""
    lists = np.asarray(lists)
    out = np.zeros(lists.shape, dtype=bool)
    for u, (row, pos) in enumerate(zip(lists, positives)):
        pos_set = {int(p) for p in pos}
        out[u] = [int(i) >= 0 and int(i) in pos_set for i in row]
    return out


# ---------------------------------------------------------------------------- beyond accuracy
def self_information(item_popularity: np.ndarray) -> np.ndarray:
    """``-log2(share)`` per item, share = item's training interactions / all training interactions.

    Items never seen in training would have infinite self-information; their
    count is floored at 1 (as if seen once) so one cold item cannot dominate
    the average. Used by :func:`novelty`.
    """
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.ndim != 1 or (pop < 0).any():
        raise ValueError("item_popularity must be a 1-D array of non-negative counts")
    total = pop.sum()
    if total <= 0:
        raise ValueError("item_popularity sums to 0: novelty needs training interactions")
    return -np.log2(np.maximum(pop, 1.0) / total)


def normalise_features(features: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised float32 rows plus a presence mask (rows absent or all-zero are not present)."""
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2:
        raise ValueError(f"item features must be 2-D (items x dim), got shape {feats.shape}")
    norms = np.linalg.norm(feats, axis=1)
    present = np.isfinite(norms) & (norms > 0)
    if mask is not None:
        present &= np.asarray(mask, dtype=bool)
    out = np.zeros_like(feats)
    out[present] = feats[present] / norms[present, None]
    return out, present


def catalogue_coverage(lists: np.ndarray, n_items: int, k: int | None = None) -> float:
    """Share of the ``n_items`` catalogue items that appear in at least one top-``k`` list."""
    lists = np.asarray(lists)
    if k is not None:
        lists = lists[:, :k]
    items = np.unique(lists[lists >= 0])
    return float(len(items) / n_items) if n_items else float("nan")


def intra_list_diversity_per_user(
    lists: np.ndarray, unit_features: np.ndarray, present: np.ndarray, ks: Sequence[int]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per-user ILD@K = mean over item pairs of ``1 - cos`` (only items with features count).

    Uses ``sum_{i<j} cos_ij = (||sum_i f_i||^2 - sum_i ||f_i||^2) / 2`` on unit
    vectors, which avoids building the K x K similarity matrix per user.
    Returns ``{k: (values [U], defined [U] bool)}``; a list with fewer than two
    items that have features has no pair and is left out of the average.
    """
    lists = _as_numpy(lists)
    valid = lists >= 0
    safe = np.where(valid, lists, 0)
    use = valid & present[safe]
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k in ks:
        sel = use[:, :k]
        vecs = unit_features[safe[:, :k]] * sel[..., None]
        total = vecs.sum(axis=1, dtype=np.float64)
        n = sel.sum(axis=1).astype(np.float64)
        pair_cos = ((total * total).sum(axis=1) - n) / 2.0
        n_pairs = n * (n - 1) / 2.0
        defined = n_pairs > 0
        out[k] = (np.where(defined, 1.0 - pair_cos / np.maximum(n_pairs, 1.0), 0.0), defined)
    return out


def intra_list_diversity(lists: np.ndarray, features: np.ndarray, k: int | None = None,
                         mask: np.ndarray | None = None) -> float:
    """Mean over users of the mean pairwise ``1 - cosine`` between the items of each list."""
    lists = np.asarray(lists, dtype=np.int64)
    k = lists.shape[1] if k is None else k
    unit, present = normalise_features(features, mask)
    vals, defined = intra_list_diversity_per_user(lists, unit, present, [k])[k]
    return float(vals[defined].mean()) if defined.any() else float("nan")


def novelty_per_user(lists: np.ndarray, info: np.ndarray, ks: Sequence[int]
                     ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per-user mean self-information of the first K recommended items (``-1`` slots skipped)."""
    lists = _as_numpy(lists)
    valid = lists >= 0
    vals = np.where(valid, info[np.where(valid, lists, 0)], 0.0)
    out = {}
    for k in ks:
        n = valid[:, :k].sum(axis=1).astype(np.float64)
        defined = n > 0
        out[k] = (np.where(defined, vals[:, :k].sum(axis=1) / np.maximum(n, 1.0), 0.0), defined)
    return out


def novelty(lists: np.ndarray, item_popularity: np.ndarray, k: int | None = None) -> float:
    """Mean over users of the mean ``-log2(popularity share)`` of the recommended items."""
    lists = np.asarray(lists, dtype=np.int64)
    k = lists.shape[1] if k is None else k
    vals, defined = novelty_per_user(lists, self_information(item_popularity), [k])[k]
    return float(vals[defined].mean()) if defined.any() else float("nan")


# ---------------------------------------------------------------------------- pointwise
def _pair(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float], names: tuple[str, str]
          ) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{names[0]} has {x.size} values but {names[1]} has {y.size}; they must align")
    if x.size == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty")
    for arr, name in ((x, names[0]), (y, names[1])):
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise ValueError(f"{name}[{bad}] = {arr[bad]} is not finite")
    return x, y


def auc(labels: np.ndarray | Sequence[float], scores: np.ndarray | Sequence[float]) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula; tied scores get their average rank,
    so a tie between a positive and a negative counts one half."""
    y, s = _pair(labels, scores, ("labels", "scores"))
    pos = y > 0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes; got {n_pos} positives and {n_neg} negatives")
    ranks = rankdata(s, method="average")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(labels: np.ndarray | Sequence[float], probs: np.ndarray | Sequence[float],
             eps: float = 1e-7) -> float:
    """Mean binary cross-entropy; probabilities are clipped to ``[eps, 1 - eps]`` so a
    confident mistake costs ``-log(eps)`` instead of infinity."""
    y, p = _pair(labels, probs, ("labels", "probabilities"))
    if ((p < 0) | (p > 1)).any():
        raise ValueError("log loss needs probabilities in [0, 1]; pass logits=True for raw scores")
    p = np.clip(p, eps, 1.0 - eps)
    y = (y > 0).astype(np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def mae(pred: np.ndarray | Sequence[float], truth: np.ndarray | Sequence[float]) -> float:
    """Mean absolute error."""
    p, t = _pair(pred, truth, ("predictions", "truth"))
    return float(np.abs(p - t).mean())


def rmse(pred: np.ndarray | Sequence[float], truth: np.ndarray | Sequence[float]) -> float:
    """Root mean squared error."""
    p, t = _pair(pred, truth, ("predictions", "truth"))
    return float(np.sqrt(((p - t) ** 2).mean()))


def evaluate_ratings(pred: np.ndarray | Sequence[float], truth: np.ndarray | Sequence[float]) -> dict[str, float]:
    """``{"mae", "rmse", "n"}`` for rating predictions."""
    return {"mae": mae(pred, truth), "rmse": rmse(pred, truth), "n": float(np.asarray(truth).size)}


def evaluate_pointwise(labels: np.ndarray | Sequence[float], scores: np.ndarray | Sequence[float],
                       logits: bool = False, eps: float = 1e-7) -> dict[str, float]:
    """``{"auc", "logloss", "n"}`` for click/label predictions.

    ``scores`` are probabilities unless ``logits=True`` (then a sigmoid is
    applied for the log loss; AUC only needs the order, which is the same).
    """
    s = np.asarray(scores, dtype=np.float64)
    probs = 1.0 / (1.0 + np.exp(-s)) if logits else s
    return {"auc": auc(labels, s), "logloss": log_loss(labels, probs, eps), "n": float(s.size)}
