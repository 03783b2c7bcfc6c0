"""Evaluation: full-ranking top-K metrics, beyond-accuracy metrics, pointwise metrics, reports.

``Evaluator(dataset, ks, protocol="full"|"mmrec", ...)`` ranks every evaluated
user against the whole catalogue in user batches; ``metrics`` holds the metric
definitions; ``report`` turns results into JSON and tables with mean ± std over seeds.
"""
from fusionrec.evaluate.evaluator import CANDIDATES, EVAL_SPLITS, PROTOCOLS, Evaluator
from fusionrec.evaluate.metrics import (
    BEYOND_ACCURACY_METRICS,
    RANKING_METRICS,
    auc,
    catalogue_coverage,
    evaluate_pointwise,
    evaluate_ratings,
    intra_list_diversity,
    log_loss,
    mae,
    novelty,
    ranking_metrics,
    rmse,
)
from fusionrec.evaluate.report import (
    aggregate_seeds,
    format_table,
    results_markdown,
    write_json,
)

__all__ = [
    "BEYOND_ACCURACY_METRICS",
    "CANDIDATES",
    "EVAL_SPLITS",
    "PROTOCOLS",
    "RANKING_METRICS",
    "Evaluator",
    "aggregate_seeds",
    "auc",
    "catalogue_coverage",
    "evaluate_pointwise",
    "evaluate_ratings",
    "format_table",
    "intra_list_diversity",
    "log_loss",
    "mae",
    "novelty",
    "ranking_metrics",
    "results_markdown",
    "rmse",
    "write_json",
]
