"""``fusionrec report``: gather every section's figures and tables, then write one HTML file.

:func:`build_report` is the public entry point (also from Python)::

    from fusionrec.report import build_report
    build_report(["runs/demo_two_tower_...", "runs/demo_bpr_..."], out="report.html")

Each section is a :class:`Section` (title, anchor, HTML body parts); sections that do not
apply to the given runs (no ablation, a model without item vectors, a closed-form model
without epochs) say so in a note instead of disappearing, so the reader knows why.
"""
from __future__ import annotations

import html
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fusionrec import output
from fusionrec.report import plots
from fusionrec.report.analysis import RunAnalysis, analyse, mean_std
from fusionrec.report.runs import Report, RunFolder, best_on_valid, collect
from fusionrec.report.sections import (
    ReportOptions,
    Section,
    embeddings_section,
    users_section,
)

TABLE_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@20", "hit@20", "mrr@20",
                 "auc", "logloss", "mae", "rmse")


def build_report(paths: Sequence[str | Path], out: str | Path | None = None,
                 options: ReportOptions | None = None) -> Path:
    """Write the HTML report of the run / ablation folders ``paths``; returns its path.

    Default ``out``: ``report.html`` inside the first folder.
    """
    from fusionrec.report.html import render_page

    options = options or ReportOptions()
    report = collect(list(paths))
    t0 = time.perf_counter()
    analyses = []
    for run in report.detailed():
        output.detail(f"report: scoring {run.path} on its test split")
        analyses.append(analyse(run, options.k))
    sections = [
        metrics_section(report, analyses),
        curves_section(report.detailed()),
        breakdowns_section(analyses),
        beyond_section(analyses),
        ablation_section(report),
        embeddings_section(analyses, options),
        users_section(analyses, options),
    ]
    out_path = Path(out) if out is not None else Path(paths[0]) / "report.html"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    title = "fusionrec report: " + ", ".join(r.label for r in report.detailed())
    # folder names only: the page may travel (CI artifact, e-mail), absolute paths would not mean much
    out_path.write_text(render_page(title, [Path(p).name for p in paths], sections), encoding="utf-8")
    output.detail(f"report built in {time.perf_counter() - t0:.1f}s")
    return out_path


# ---------------------------------------------------------------------- metrics
def _cell(block: dict, key: str, n: int, digits: int = 4) -> str:
    from fusionrec.evaluate.report import MeanStd, format_cell

    value = block.get(key)
    if not value:
        return "–"
    return format_cell(MeanStd(value["mean"], value["std"], n), precision=digits)


def metrics_section(report: Report, analyses: list[RunAnalysis]) -> Section:
    runs = report.detailed()
    sec = Section("metrics", "Metrics", "Test metrics of each run as mean ± sample std over its seeds (the model "
                  "of each seed chosen on the validation split, the test split scored once).")
    shown = [m for m in TABLE_METRICS if any(m in r.results.get("test", {}) for r in runs)]
    head = "".join(f"<th>{html.escape(_run_title(r, report))}</th>" for r in runs)
    rows = []
    for m in shown:
        cells = "".join(f"<td>{_cell(r.results.get('test', {}), m, len(r.seeds))}</td>" for r in runs)
        rows.append(f"<tr><th>test {html.escape(m)}</th>{cells}</tr>")
    rows.append("<tr><th>valid metric (chosen epoch)</th>" + "".join(
        f"<td>{html.escape(r.valid_metric)} {_cell(r.results.get('valid', {}), r.valid_metric, len(r.seeds))}</td>"
        for r in runs) + "</tr>")
    for key, name, digits in (("best_epoch", "chosen epoch", 1), ("seconds_per_epoch", "seconds / epoch", 2)):
        rows.append(f"<tr><th>{name}</th>" + "".join(
            f"<td>{_cell(r.results.get('timing', {}), key, len(r.seeds), digits)}</td>" for r in runs) + "</tr>")
    rows.append("<tr><th>seeds</th>" + "".join(f"<td>{', '.join(map(str, r.seeds))}</td>" for r in runs) + "</tr>")
    rows.append("<tr><th>dataset</th>" + "".join(f"<td>{html.escape(r.dataset_name)}</td>" for r in runs) + "</tr>")
    sec.parts.append(f'<div class="grid"><table class="metrics"><thead><tr><th></th>{head}</tr></thead>'
                     f'<tbody>{"".join(rows)}</tbody></table>')
    bars = {_run_title(r, report): {m: (r.results["test"][m]["mean"], r.results["test"][m]["std"])
                                    for m in shown if m in r.results.get("test", {}) and "@" in m} for r in runs}
    sec.image(plots.metric_bars(bars, [m for m in shown if "@" in m]), "test metrics per run")
    sec.parts.append("</div>")
    return sec


def _run_title(run: RunFolder, report: Report) -> str:
    for name, variants in report.ablations:
        if any(v is run for v in variants):
            return f"{run.model_name}, ablation {name}: {run.label} (best on valid)"
    return run.label


# ---------------------------------------------------------------------- training curves
def curves_section(runs: list[RunFolder]) -> Section:
    sec = Section("curves", "Training curves", "Training loss and the validation metric per epoch, one line per "
                  "seed; ★ and the dashed line mark the epoch whose weights were kept (best on valid).")
    for run in runs:
        best = {str(r["seed"]): int(r.get("best_epoch", 0)) for r in run.results.get("per_seed", [])}
        uri = plots.training_curves(run.history, run.valid_metric, best, run.label)
        if uri:
            sec.image(uri, f"training curves of {run.label}")
        elif run.history:
            sec.note(f"{run.label}: a closed-form model, fitted once without epochs, so it has no curve "
                     f"(valid {run.valid_metric}: {run.valid_score():.4f}).")
        else:
            sec.note(f"{run.label}: no train_history.json in {run.path} (a run from an older fusionrec).")
    return sec


# ---------------------------------------------------------------------- breakdowns
def breakdowns_section(analyses: list[RunAnalysis]) -> Section:
    sec = Section("breakdowns", "Breakdowns", "Where the accuracy comes from: items with and without training "
                  "interactions, items by popularity, users by how much history they have. A group's metric "
                  "counts only its own held-out items (or users).")
    usable = [a for a in analyses if a.breakdowns]
    for a in analyses:
        if a.missing:
            sec.note(f"{a.run.label}: {a.missing}")
        for note in a.notes:
            sec.note(f"{a.run.label}: {note}")
    if not usable:
        return sec
    k = usable[0].k
    for i, first in enumerate(usable[0].breakdowns):
        sec.heading(first.title)
        per_run = {a.run.label: a.breakdowns[i] for a in usable}
        sec.image(plots.breakdown_bars(per_run, (f"recall@{k}", f"ndcg@{k}")), first.title)
        sizes = "; ".join(f"{g}: {s}" for g, s in first.sizes.items())
        if sizes:
            sec.note(f"group sizes ({usable[0].run.label}): {sizes}")
        if first.note:
            sec.note(first.note)
    return sec


# ---------------------------------------------------------------------- beyond accuracy
def beyond_section(analyses: list[RunAnalysis]) -> Section:
    usable = [a for a in analyses if a.beyond]
    k = usable[0].k if usable else 20
    sec = Section("beyond", "Beyond accuracy", f"coverage@{k}: share of the catalogue in anyone's top-{k}; "
                  f"novelty@{k}: mean -log2 training-popularity share of recommended items (higher = less "
                  f"obvious); diversity@{k}: mean pairwise 1 - cosine within a list, in the first content "
                  f"modality (the model's own item vectors without one); popularity lift@{k}: mean training "
                  "popularity of recommended items over the catalogue mean (1 = no popularity bias).")
    if not usable:
        sec.note("no run has a saved model to rank with: see the breakdowns section")
        return sec
    sec.image(plots.beyond_bars({a.run.label: a.beyond for a in usable}), "beyond-accuracy metrics per run")
    rows = []
    for a in usable:
        cells = "".join(f"<td>{m}: {_fmt(*mean_std(v))}</td>" for m, v in a.beyond.items())
        rows.append(f"<tr><th>{html.escape(a.run.label)}</th>{cells}</tr>")
    sec.parts.append(f'<table class="metrics"><tbody>{"".join(rows)}</tbody></table>')
    sec.image(plots.share_bars({a.run.label: a.shares for a in usable}), "popularity bias")
    return sec


def _fmt(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std else "")


# ---------------------------------------------------------------------- ablation
def ablation_section(report: Report) -> Section:
    sec = Section("ablation", "Ablation", "Each variant of an ablation (modality subset, fusion, alignment...) "
                  "with its test metrics as mean ± std over seeds; the variant best on valid is highlighted "
                  "in the table and shown in detail in the other sections.")
    if not report.ablations:
        sec.note("not an ablation: pass the --runs folder of `fusionrec ablate` (e.g. runs/ablate_demo) to "
                 "get this section")
        return sec
    for name, variants in report.ablations:
        sec.heading(f"ablation {name}: {variants[0].model_name} on {variants[0].dataset_name}")
        labels = [v.label for v in variants]
        metrics = [m for m in ("recall@20", "ndcg@20") if any(m in v.results.get("test", {}) for v in variants)]
        values = {m: [_ms(v.results.get("test", {}).get(m)) for v in variants] for m in metrics}
        best = best_on_valid(variants)
        if metrics:
            sec.image(plots.ablation_bars(labels, values, variants.index(best)), f"ablation {name}")
        head = "".join(f"<th>test {m}</th>" for m in metrics)
        rows = []
        for v in variants:
            cells = "".join(f"<td>{_cell(v.results.get('test', {}), m, len(v.seeds))}</td>" for m in metrics)
            cls = ' class="best"' if v is best else ""
            rows.append(f"<tr{cls}><th>{html.escape(v.label)}</th>{cells}<td>"
                        f"{_cell(v.results.get('valid', {}), v.valid_metric, len(v.seeds))}</td></tr>")
        sec.parts.append(f'<table class="metrics"><thead><tr><th>variant</th>{head}<th>valid '
                         f'{html.escape(variants[0].valid_metric)}</th></tr></thead><tbody>{"".join(rows)}'
                         "</tbody></table>")
    return sec


def _ms(block: dict | None) -> tuple[float, float]:
    return (float(block["mean"]), float(block["std"])) if block else (float("nan"), 0.0)


__all__ = ["ReportOptions", "Section", "build_report"]
