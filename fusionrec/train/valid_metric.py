"""``train.valid_metric`` checked against the keys a validation pass reports, with a fix that says why it is missing."""
from __future__ import annotations

import difflib

from fusionrec.errors import UserError
from fusionrec.evaluate.pointwise import POINTWISE_METRICS


def check_valid_metric(metric: str, choices: list[str], model_name: str = "the model") -> None:
    """Raise a :class:`UserError` naming the valid choices when ``metric`` is not among ``choices``.

    ``choices`` are the keys a validation pass reports (``Evaluator.metric_keys`` or
    ``fusionrec.evaluate.evaluator.validation_metric_keys``); the fix says why the metric
    is missing: a K not in ``eval.ks``, a metric not in ``eval.metrics``, or AUC / log loss
    for a model that does not predict pair probabilities.
    """
    metric = str(metric).lower()
    if metric in choices:
        return
    name, _, k = metric.partition("@")
    ks = sorted({int(c.partition("@")[2]) for c in choices if "@" in c})
    names = list(dict.fromkeys(c.partition("@")[0] for c in choices if "@" in c))
    close = difflib.get_close_matches(metric, choices, n=1)
    hint = f" (closest: {close[0]})" if close else ""
    if metric in POINTWISE_METRICS:
        why = (f"{metric} is computed only for models that predict click probabilities (dcn); "
               f"{model_name} ranks items without them")
        fix = f"use a ranking metric such as --set train.valid_metric={choices[0]}, or train dcn"
    elif name in names and k.isdigit():
        why = f"K={k} is not one of the evaluation cutoffs eval.ks={ks}"
        fix = (f"add it with --set 'eval.ks={sorted({*ks, int(k)})}', or choose one of {choices}{hint}")
    else:
        why = f"{metric!r} is not a metric the evaluator reports"
        fix = f"choose one of {choices}{hint}, e.g. --set train.valid_metric={close[0] if close else choices[0]}"
    raise UserError(f"train.valid_metric {metric!r} cannot drive early stopping: {why}",
                    "train.valid_metric", fix)


__all__ = ["check_valid_metric"]
