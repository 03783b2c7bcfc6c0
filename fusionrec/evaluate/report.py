"""Results as JSON and as readable tables (markdown / plain text), with mean ± std over seeds.

Typical use (pipeline, ``fusionrec ablate``)::

    per_seed = [evaluator.evaluate(model_s, "test") for model_s in models]   # one dict per seed
    agg = aggregate_seeds(per_seed)              # {"recall@20": (mean, std), ...}
    print(format_table({"lightgcn": agg, "bpr": agg_bpr}, fmt="markdown"))
    write_json({"lightgcn": {"per_seed": per_seed, "mean_std": agg}}, "results.json")

The std is the sample standard deviation (``ddof=1``) over seeds, 0 for a
single seed: it estimates the spread a reader would see re-running with new seeds.
:func:`aggregate_seeds` returns :class:`MeanStd` pairs that remember how many seeds
they summarise, so a table shows a single seed's value alone (never ``± 0.0000``).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from fusionrec.evaluate.metrics import LOWER_IS_BETTER

Cell = float | int | tuple | list | None

# keys that describe a run rather than measure it; kept out of metric columns by default
NON_METRIC_KEYS = ("n_users", "n_users_total", "n", "seed", "best_epoch", "seconds", "total_seconds", "seconds_per_epoch")


class MeanStd(tuple):
    """A ``(mean, std)`` pair over ``n`` seeds; compares and unpacks like the plain tuple.

    ``n`` lets a table print a single seed's value alone: its std of 0 is not a
    measured spread, and ``0.1234 ± 0.0000`` would claim one.
    """

    n: int | None

    def __new__(cls, mean: float, std: float, n: int | None = None) -> Self:
        obj = super().__new__(cls, (float(mean), float(std)))
        obj.n = None if n is None else int(n)
        return obj

    def __getnewargs__(self) -> tuple[float, float, int | None]:  # copy / pickle keep ``n``
        return (self[0], self[1], self.n)

    @property
    def mean(self) -> float:
        return self[0]

    @property
    def std(self) -> float:
        return self[1]


def seeds_note(n_seeds: int) -> str:
    """How a table's cells were aggregated: ``"1 seed"`` or ``"mean ± sample std over 3 seeds"``."""
    return "1 seed" if int(n_seeds) == 1 else f"mean ± sample std over {int(n_seeds)} seeds"


def aggregate_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, MeanStd]:
    """``[{"recall@20": 0.1, ...}, {"recall@20": 0.12, ...}]`` -> ``{"recall@20": (0.11, 0.0141), ...}``.

    Only numeric keys are aggregated; a key missing from some seeds is aggregated
    over the seeds that have it. NaN values are ignored (a metric undefined for a seed).
    """
    if not results:
        raise ValueError("aggregate_seeds needs at least one result dict")
    keys: list[str] = []
    for res in results:
        for key, val in res.items():
            if key not in keys and _is_number(val):
                keys.append(key)
    out: dict[str, MeanStd] = {}
    for key in keys:
        vals = np.array([float(r[key]) for r in results if key in r and _is_number(r[key])], dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        if vals.size == 0:
            out[key] = MeanStd(float("nan"), float("nan"), 0)
        else:
            out[key] = MeanStd(vals.mean(), vals.std(ddof=1) if vals.size > 1 else 0.0, vals.size)
    return out


def _is_number(val: Any) -> bool:
    return isinstance(val, (int, float, np.integer, np.floating)) and not isinstance(val, bool)


def _metric_order(key: str) -> tuple[int, str, int]:
    # group by metric name, K ascending: recall@10, recall@20, ndcg@10, ...
    name, _, k = key.partition("@")
    try:
        kk = int(k)
    except ValueError:
        kk = -1
    return (0, name, kk)


def metric_columns(rows: Mapping[str, Mapping[str, Cell]], metrics: Sequence[str] | None = None,
                   include_non_metrics: bool = False) -> list[str]:
    """Columns to show: ``metrics`` if given (exact keys, or bare names like ``"recall"``
    meaning every K), else every key found, in first-seen metric order."""
    seen: list[str] = []
    for res in rows.values():
        for key in res:
            if key not in seen and (include_non_metrics or key not in NON_METRIC_KEYS):
                seen.append(key)
    if metrics is None:
        return seen
    cols: list[str] = []
    for m in metrics:
        if "@" in m or m in seen:
            if m in seen and m not in cols:
                cols.append(m)
        else:
            cols.extend(c for c in sorted((c for c in seen if c.partition("@")[0] == m), key=_metric_order)
                        if c not in cols)
    return cols


def format_cell(value: Cell, precision: int = 4, plus_minus: str = "±") -> str:
    """``0.1234`` -> ``"0.1234"``; ``(mean, std)`` -> ``"0.1234 ± 0.0056"``; missing -> ``"-"``.

    A :class:`MeanStd` of a single seed, or a std that is NaN / None, shows the mean alone.
    """
    if value is None:
        return "-"
    if isinstance(value, (tuple, list)):
        mean = float(value[0])
        std = float("nan") if value[1] is None else float(value[1])
        if math.isnan(mean):
            return "-"
        if getattr(value, "n", None) == 1 or math.isnan(std):
            return f"{mean:.{precision}f}"
        return f"{mean:.{precision}f} {plus_minus} {std:.{precision}f}"
    if _is_number(value):
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        v = float(value)
        return "-" if math.isnan(v) else f"{v:.{precision}f}"
    return str(value)


def format_table(
    rows: Mapping[str, Mapping[str, Cell]],
    metrics: Sequence[str] | None = None,
    fmt: str = "markdown",
    precision: int = 4,
    highlight_best: bool = True,
    row_header: str = "model",
) -> str:
    """One row per model (or ablation variant), one column per metric.

    ``rows`` maps a row name to a result dict whose values are floats or
    ``(mean, std)`` pairs (:func:`aggregate_seeds`). ``fmt`` is ``"markdown"``
    (best value per column in bold when ``highlight_best``) or ``"text"``
    (aligned plain text for terminals and logs). Higher is better for every
    metric except those in ``LOWER_IS_BETTER`` (log loss, MAE, RMSE).
    """
    if fmt not in ("markdown", "text"):
        raise ValueError(f"fmt {fmt!r} must be 'markdown' or 'text'")
    cols = metric_columns(rows, metrics)
    names = list(rows)
    best: dict[str, float] = {}
    if highlight_best and fmt == "markdown" and len(names) > 1:
        for c in cols:
            vals = [_mean(rows[n].get(c)) for n in names]
            vals = [v for v in vals if v is not None and not math.isnan(v)]
            if vals:
                best[c] = min(vals) if c in LOWER_IS_BETTER else max(vals)
    table: list[list[str]] = []
    for n in names:
        line = [str(n)]
        for c in cols:
            cell = format_cell(rows[n].get(c), precision)
            m = _mean(rows[n].get(c))
            if c in best and m is not None and m == best[c]:
                cell = f"**{cell}**"
            line.append(cell)
        table.append(line)
    header = [row_header, *cols]
    if fmt == "markdown":
        out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(cols)) + "|"]
        out += ["| " + " | ".join(line) + " |" for line in table]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    def render(r: list[str]) -> str:
        return "  ".join(r[0].ljust(widths[0]) if i == 0 else r[i].rjust(widths[i]) for i in range(len(r)))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), sep, *(render(r) for r in table)])


def _mean(value: Cell) -> float | None:
    if isinstance(value, (tuple, list)):
        return float(value[0])
    if _is_number(value):
        return float(value)
    return None


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths so ``json.dump`` accepts them; NaN -> None."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(results: Any, path: str | Path) -> Path:
    """Write ``results`` as pretty JSON (numpy and NaN safe); creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(results), indent=2, sort_keys=False) + "\n")
    return path


def read_json(path: str | Path) -> Any:
    """Read results written by :func:`write_json` (mean/std pairs come back as lists)."""
    return json.loads(Path(path).read_text())


def summarise_runs(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, dict[str, MeanStd]]:
    """``{"bpr": [seed results...], ...}`` -> ``{"bpr": aggregate_seeds(...), ...}``."""
    return {name: aggregate_seeds(res) for name, res in runs.items()}


def results_markdown(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str] | None = None,
    title: str | None = None,
    notes: Iterable[str] = (),
    precision: int = 4,
) -> str:
    """A small markdown report: optional title, one table of mean ± std over seeds, notes."""
    agg = summarise_runs(runs)
    n_seeds = {name: len(res) for name, res in runs.items()}
    parts = []
    if title:
        parts.append(f"# {title}\n")
    parts.append(format_table(agg, metrics, fmt="markdown", precision=precision))
    if len(set(n_seeds.values())) == 1:
        parts.append(f"\n{seeds_note(next(iter(n_seeds.values()))).capitalize()} per row.")
    else:
        per_row = ", ".join(f"{name}: {n}" for name, n in n_seeds.items())
        parts.append(f"\nMean ± sample std over seeds; a row of 1 seed shows its value alone (seeds per row: "
                     f"{per_row}).")
    for note in notes:
        parts.append(f"\n{note}")
    return "\n".join(parts) + "\n"
