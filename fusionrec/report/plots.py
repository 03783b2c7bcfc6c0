"""The report's figures, drawn with matplotlib's Agg canvas and returned as inline PNG data URIs.

No pyplot: figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, so
drawing touches no global state and needs no display. Every function takes plain numbers
(means, stds, per-seed lists) and returns ``"data:image/png;base64,..."``.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fusionrec.report.analysis import Breakdown, mean_std
from fusionrec.report.projection import ItemMap

DPI = 96
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
           "#CCB974", "#64B5CD")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_data_uri(fig: Figure) -> str:
    """The figure as an inline PNG (``data:image/png;base64,...``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[tuple[float, float]]], ylabel: str,
                 title: str = "", ax=None, width: float = 7.0, height: float = 3.2) -> str | None:
    """Bars per group, one bar per series with its ± std as an error bar.

    ``series[name][g]`` is ``(mean, std)`` of group ``g``; NaN means leave the bar out.
    """
    fig = None
    if ax is None:
        fig = _figure(width, height)
        ax = fig.add_subplot()
    n = max(len(series), 1)
    x = np.arange(len(groups))
    bar = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        means = np.array([v[0] for v in values], dtype=float)
        stds = np.array([v[1] for v in values], dtype=float)
        spread = np.nan_to_num(stds) if np.nan_to_num(stds).any() else None
        ax.bar(x + (i - (n - 1) / 2) * bar, np.nan_to_num(means), bar * 0.95, yerr=spread,
               capsize=3, color=_colour(i), label=name)
    ax.set_xticks(x, list(groups), rotation=15 if max((len(g) for g in groups), default=0) > 12 else 0)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return to_data_uri(fig) if fig is not None else None


def metric_bars(runs: Mapping[str, Mapping[str, tuple[float, float]]], metrics: Sequence[str]) -> str:
    """Test metrics (mean ± std over seeds) per run, side by side."""
    series = {name: [vals.get(m, (np.nan, 0.0)) for m in metrics] for name, vals in runs.items()}
    return grouped_bars(list(metrics), series, "test (mean ± std over seeds)", width=6.4, height=3.0)


def training_curves(history: Mapping[str, Sequence[Mapping]], valid_metric: str,
                    best_epochs: Mapping[str, int], title: str) -> str | None:
    """Loss and the valid metric per epoch, one line per seed, the chosen epoch marked (★ and a
    dashed line). None when no epoch has a loss (a closed-form model)."""
    if not any(r.get("loss") is not None for recs in history.values() for r in recs):
        return None
    fig = _figure(8.0, 3.0)
    ax_loss, ax_valid = fig.subplots(1, 2)
    for i, (seed, records) in enumerate(history.items()):
        colour = _colour(i)
        ep = [r["epoch"] for r in records if r.get("loss") is not None]
        ax_loss.plot(ep, [r["loss"] for r in records if r.get("loss") is not None], color=colour, label=f"seed {seed}")
        ev = [(r["epoch"], r["valid"][valid_metric]) for r in records if valid_metric in (r.get("valid") or {})]
        if ev:
            ax_valid.plot(*zip(*ev), marker="o", markersize=3, color=colour, label=f"seed {seed}")
        best = best_epochs.get(str(seed))
        chosen = [v for e, v in ev if e == best]
        if best and chosen:
            ax_valid.axvline(best, color=colour, linestyle="--", alpha=0.6)
            ax_valid.plot([best], chosen, marker="*", markersize=14, color=colour, markeredgecolor="black")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_valid.set(xlabel="epoch", ylabel=f"valid {valid_metric}", title=f"valid {valid_metric} (★ chosen epoch)")
    for ax in (ax_loss, ax_valid):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return to_data_uri(fig)


def breakdown_bars(per_run: Mapping[str, Breakdown], metrics: Sequence[str]) -> str | None:
    """One breakdown (the same groups across runs): a panel per metric, grouped bars per run."""
    groups: list[str] = []
    for b in per_run.values():
        groups += [g for g in b.groups if g not in groups]
    if not groups:
        return None
    fig = _figure(4.6 * len(metrics), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics):
        series = {name: [mean_std(b.values.get(g, {}).get(metric, [])) for g in groups]
                  for name, b in per_run.items()}
        grouped_bars(groups, series, f"test {metric}", ax=ax)
    fig.suptitle(next(iter(per_run.values())).title, fontsize=10)
    return to_data_uri(fig)


def share_bars(shares: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str | None:
    """Per popularity bucket: share of catalogue items and training interactions, and each run's
    share of the top-K recommendation slots."""
    first = next((s for s in shares.values() if s), None)
    if first is None:
        return None
    buckets = list(first)
    series = {
        "catalogue items": [(first[b]["catalogue items"], 0.0) for b in buckets],
        "training interactions": [(first[b]["training interactions"], 0.0) for b in buckets],
    }
    for name, s in shares.items():
        series[f"recommended: {name}"] = [(s.get(b, {}).get("recommendations", np.nan), 0.0) for b in buckets]
    return grouped_bars(buckets, series, "share", title="popularity bias: where the recommendation slots go",
                        width=8.0)


def beyond_bars(per_run: Mapping[str, Mapping[str, Sequence[float]]]) -> str | None:
    """Coverage, novelty, diversity, popularity lift: one panel each, one bar per run."""
    metrics: list[str] = []
    for values in per_run.values():
        metrics += [m for m in values if m not in metrics]
    if not metrics:
        return None
    fig = _figure(2.4 * len(metrics) + 0.5, 3.0)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    names = list(per_run)
    for ax, metric in zip(axes, metrics):
        stats = [mean_std(per_run[n].get(metric, [])) for n in names]
        ax.bar(range(len(names)), [np.nan_to_num(m) for m, _ in stats], yerr=[s for _, s in stats], capsize=3,
               color=[_colour(i) for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=20 if len(names) > 1 else 0, fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return to_data_uri(fig)


def ablation_bars(labels: Sequence[str], values: Mapping[str, Sequence[tuple[float, float]]],
                  chosen: int | None = None) -> str:
    """Horizontal bars per variant with ± std error bars, one panel per metric; the variant
    ``chosen`` on the validation split (never on these test numbers) is drawn in another colour."""
    fig = _figure(4.0 * len(values) + 2.5, 0.45 * len(labels) + 1.2)
    axes = np.atleast_1d(fig.subplots(1, len(values), sharey=True))
    y = np.arange(len(labels))
    for ax, (metric, stats) in zip(axes, values.items()):
        means = [np.nan_to_num(m) for m, _ in stats]
        colours = [_colour(3) if i == chosen else _colour(0) for i in range(len(labels))]
        ax.barh(y, means, xerr=[s for _, s in stats], capsize=3, color=colours)
        ax.set_title(f"test {metric}" + (" (red: best on valid)" if chosen is not None else ""), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, list(labels), fontsize=8)
    axes[0].invert_yaxis()
    return to_data_uri(fig)


def item_map(m: ItemMap, categories: Sequence[str] | None, cold: np.ndarray | None, colour_by: str | None) -> str:
    """A projected map: points coloured by category (grey without one), cold items as crosses."""
    from matplotlib import colormaps

    fig = _figure(5.2, 3.8)
    ax = fig.add_subplot()
    xy = m.xy
    is_cold = cold[m.rows] if cold is not None else np.zeros(len(m.rows), dtype=bool)
    if categories is None:
        groups = {"items": np.ones(len(m.rows), dtype=bool)}
    else:
        cats = np.asarray([categories[r] for r in m.rows], dtype=object)
        groups = {str(c): cats == c for c in sorted(set(cats.tolist()))}
    cmap = colormaps["tab20"]
    for i, (name, sel) in enumerate(groups.items()):
        colour = cmap(i % 20) if categories is not None else "#4C72B0"
        ax.scatter(xy[sel & ~is_cold, 0], xy[sel & ~is_cold, 1], s=9, color=colour, label=name, alpha=0.8)
        if (sel & is_cold).any():
            ax.scatter(xy[sel & is_cold, 0], xy[sel & is_cold, 1], s=22, color=colour, marker="x")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(m.title, fontsize=10)
    if categories is not None and len(groups) <= 20:
        ax.legend(fontsize=7, markerscale=1.5, title=colour_by, title_fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), frameon=False)
    return to_data_uri(fig)


__all__ = [
    "ablation_bars",
    "beyond_bars",
    "breakdown_bars",
    "grouped_bars",
    "item_map",
    "metric_bars",
    "share_bars",
    "to_data_uri",
    "training_curves",
]
