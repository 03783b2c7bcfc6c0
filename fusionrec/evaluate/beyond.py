"""Beyond-accuracy metrics of recommended lists: coverage, novelty and diversity at every K."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fusionrec.evaluate.metrics import intra_list_diversity_per_user, novelty_per_user


def beyond_accuracy_metrics(lists: np.ndarray, n_items: int, n_candidates: int, ks: Sequence[int],
                            self_info: np.ndarray | None, unit_features: np.ndarray | None,
                            feature_present: np.ndarray | None, chunk: int = 4096) -> dict[str, float]:
    """``coverage@K`` (share of the ``n_candidates`` items in any top-K list), ``novelty@K``
    (when ``self_info`` is given) and ``diversity@K`` (when ``unit_features`` are given, K >= 2)
    of ``lists`` ([U, kmax] item ids, -1 for empty slots)."""
    out: dict[str, float] = {}
    kmax = lists.shape[1]
    valid = lists >= 0
    # best (smallest) rank at which each item was recommended to anyone: coverage@K = #(rank < K)
    best_rank = np.full(n_items, kmax, dtype=np.int64)
    positions = np.broadcast_to(np.arange(kmax), lists.shape)
    np.minimum.at(best_rank, lists[valid], positions[valid])
    sums = {f"{name}@{k}": [0.0, 0] for name in ("novelty", "diversity") for k in ks}
    div_ks = [k for k in ks if k >= 2]  # a 1-item list has no pair
    # per-user work in chunks: diversity gathers [chunk, K, d] feature blocks
    for c0 in range(0, lists.shape[0], chunk):
        part = lists[c0:c0 + chunk]
        if self_info is not None:
            _accumulate(sums, "novelty", novelty_per_user(part, self_info, ks))
        if unit_features is not None and div_ks:
            _accumulate(sums, "diversity",
                        intra_list_diversity_per_user(part, unit_features, feature_present, div_ks))
    for k in ks:
        out[f"coverage@{k}"] = float((best_rank < k).sum()) / n_candidates if n_candidates else float("nan")
        if self_info is not None:
            out[f"novelty@{k}"] = _mean(sums[f"novelty@{k}"])
        if unit_features is not None and k >= 2:
            out[f"diversity@{k}"] = _mean(sums[f"diversity@{k}"])
    return out


def _accumulate(sums: dict[str, list], name: str, per_k: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    for k, (val, defined) in per_k.items():
        sums[f"{name}@{k}"][0] += float(val[defined].sum())
        sums[f"{name}@{k}"][1] += int(defined.sum())


def _mean(total_count: list) -> float:
    total, count = total_count
    return total / count if count else float("nan")
