"""The metric keys an evaluation reports, known before anything is scored (what
``train.valid_metric`` may name, checked before training starts)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fusionrec.evaluate.metrics import canonical_metrics, check_ks
from fusionrec.evaluate.pointwise import (
    POINTWISE_METRICS,
    supports_pointwise,
    task_metric_keys,
)
from fusionrec.evaluate.rating import RATING_METRICS, supports_ratings


def validation_metric_keys(ks: Sequence[int], metrics: Sequence[str], pointwise: bool | Sequence[str]) -> list[str]:
    """Metric keys a validation pass reports: every ranking ``metric@K``, plus ``auc`` and
    ``logloss`` for a model that predicts pair probabilities (``pointwise`` True), or the
    model's own extra keys when ``pointwise`` is a list (:func:`model_metric_keys`)."""
    keys = values_keys(canonical_metrics(metrics), check_ks(ks))
    if isinstance(pointwise, bool):
        return keys + list(POINTWISE_METRICS) if pointwise else keys
    return keys + list(pointwise)


def model_metric_keys(model: Any) -> list[str]:
    """The keys a model (an instance or a class) adds to the ranking metrics: ``auc``/``logloss``
    when it predicts pair probabilities, per-task AUC / log loss for a multi-task ranker, and
    ``rmse``/``mae`` when it predicts ratings."""
    keys = list(POINTWISE_METRICS) + task_metric_keys(model) if supports_pointwise(model) else []
    return keys + (list(RATING_METRICS) if supports_ratings(model) else [])


def values_keys(metrics: Sequence[str], ks: Sequence[int]) -> list[str]:
    """Result keys in a stable order: metric-major, K ascending (``recall@10, recall@20, ...``)."""
    return [f"{m}@{k}" for m in metrics for k in ks]
