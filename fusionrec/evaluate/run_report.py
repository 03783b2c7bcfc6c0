"""The results of one run (``fusionrec train``, ``pipeline.run_experiment``) as people read them.

* :func:`mean_std_block` -- the ``{"metric": {"mean", "std"}}`` blocks of ``results.json``
  (schema unchanged: benchmark scripts read it; ``std`` is 0 for a single seed);
* :func:`results_table_markdown` -- ``results.md``;
* :func:`run_summary_text` -- what ``fusionrec train`` prints at the end;
* :func:`evaluation_summary_text` -- what ``fusionrec evaluate`` prints.

Cells go through :class:`~fusionrec.evaluate.report.MeanStd` with the run's seed count,
so one seed shows its value alone (never ``± 0.0000``) and the caption says "1 seed".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fusionrec.evaluate.pointwise import POINTWISE_METRICS
from fusionrec.evaluate.report import (
    MeanStd,
    aggregate_seeds,
    format_cell,
    format_table,
    seeds_note,
)

# metrics shown in terminal summaries (everything is in results.json)
SUMMARY_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
# shown after them when the model reports them: AUC / log loss, per-task AUC / log loss of a
# multi-task ranker, MAE / RMSE of a rating model
_EXTRA_METRICS = (*POINTWISE_METRICS, "auc_click", "logloss_click", "auc_conversion", "logloss_conversion",
                  "auc_cvr", "rmse", "mae")
_ROW_INFO_KEYS = ("n_users", "n_users_total")


def mean_std_block(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``[{"recall@20": 0.1}, ...]`` -> ``{"recall@20": {"mean": ..., "std": ...}}`` (results.json)."""
    return {k: {"mean": v.mean, "std": v.std} for k, v in aggregate_seeds(per_seed).items()}


def block_cells(block: Mapping[str, Mapping[str, float]], n_seeds: int) -> dict[str, MeanStd]:
    """A results.json block as table cells that know the seed count."""
    return {k: MeanStd(v["mean"], v["std"], n_seeds) for k, v in block.items() if k not in _ROW_INFO_KEYS}


def summary_row(results: Mapping[str, Any], metrics: Sequence[str] = SUMMARY_METRICS) -> dict[str, Any]:
    """One terminal-table row: the test metrics of ``metrics`` (plus AUC / log loss when the
    model reports them) over the run's seeds, and seconds per epoch."""
    n = len(results.get("seeds") or [None])
    test = results["test"]
    shown = [m for m in metrics if m in test] + [m for m in _EXTRA_METRICS if m in test and m not in metrics]
    row: dict[str, Any] = {m: MeanStd(test[m]["mean"], test[m]["std"], n) for m in shown}
    row["s/epoch"] = results["timing"]["seconds_per_epoch"]["mean"]
    return row


def pointwise_note(results: Mapping[str, Any], split: str = "test") -> str | None:
    """Which rows AUC / log loss were computed on, or None for a model without them."""
    info = (results.get("pointwise") or {}).get(split)
    if not info:
        return None
    kind = ("explicit negatives" if info["negatives"] == "explicit"
            else "sampled negatives (the split has no explicit ones)")
    return f"AUC / log loss on {split}: {info['n_positive']} positives vs {info['n_negative']} {kind}"


def run_summary_text(results: Mapping[str, Any]) -> str:
    """The final table of ``fusionrec train`` with its caption lines."""
    n = len(results["seeds"])
    lines = [format_table({results["model"]: summary_row(results)}, fmt="text"),
             f"test split, {seeds_note(n)} (seeds: {', '.join(map(str, results['seeds']))})"]
    note = pointwise_note(results)
    if note:
        lines.append(note)
    return "\n".join(lines)


def evaluation_summary_text(name: str, split: str, metrics: Mapping[str, float], pointwise: str | None) -> str:
    """What ``fusionrec evaluate`` prints: ranking metrics (and AUC / log loss with the rows they used)."""
    shown = {k: v for k, v in metrics.items()
             if "@" in k or k in _EXTRA_METRICS or k.startswith(("auc_", "logloss_"))}
    text = format_table({f"{name} ({split})": shown}, fmt="text")
    users = metrics.get("n_users")
    if users is not None:
        total = metrics.get("n_users_total")
        sample = f" (a seeded sample of {int(total)}: eval.max_users)" if total is not None else ""
        text += f"\n{int(users)} users evaluated on {split}{sample}"
    if pointwise:
        text += f"\nAUC / log loss on {split}: {pointwise}"
    return text


def results_table_markdown(results: Mapping[str, Any]) -> str:
    """results.md: test and valid tables over seeds, and timings."""
    name = results["model"]
    n = len(results["seeds"])
    timing = block_cells(results["timing"], n)
    lines = [
        f"# {name} on {results['dataset']}",
        "",
        (f"Protocol `{results['protocol']}`, model selected on valid `{results['valid_metric']}`, "
         f"seeds {results['seeds']} ({seeds_note(n)}). Test scored once per seed."),
        "",
        "## Test",
        "",
        format_table({name: block_cells(results["test"], n)}, fmt="markdown", highlight_best=False),
        "",
    ]
    note = pointwise_note(results)
    if note:
        lines += [note + ".", ""]
    lines += [
        "## Valid (best epoch)",
        "",
        format_table({name: block_cells(results["valid"], n)}, fmt="markdown", highlight_best=False),
        "",
        "## Timing",
        "",
        "| " + " | ".join(timing) + " |",
        "|" + "---:|" * len(timing),
        "| " + " | ".join(_timing_cell(k, v) for k, v in timing.items()) + " |",
        "",
    ]
    return "\n".join(lines)


def _timing_cell(key: str, value: MeanStd) -> str:
    # epoch counts of a single seed are whole numbers: "7", not "7.00"
    if value.n == 1 and key in ("best_epoch", "epochs_run"):
        return str(int(value.mean))
    return format_cell(value, precision=2)


__all__ = [
    "SUMMARY_METRICS",
    "block_cells",
    "evaluation_summary_text",
    "mean_std_block",
    "pointwise_note",
    "results_table_markdown",
    "run_summary_text",
    "summary_row",
]
