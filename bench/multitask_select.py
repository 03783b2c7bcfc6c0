"""Choose between multi-task configurations on the validation split, with the acceptance's own test.

The rule (fixed before the fresh seeds were run; docs/benchmarks/multitask.md, "Selection rule"):

* references: the single-task rankers trained on each label alone -- ``click only`` (click AUC),
  ``conversion only`` and ``cvr on clicks`` (conversion AUC over every impression) -- with the
  candidates' training settings and seeds;
* per candidate and seed, its **margin** is the worst of its three valid AUC differences to those
  references: ``min(click - click only, conversion - conversion only, conversion - cvr on clicks)``,
  using the valid metrics of the model it serves (with ``task_checkpoints`` not those of one epoch);
* the choice is the candidate with the highest margin averaged over the seeds; a tie (equal to
  1e-9) goes to the higher mean valid ``auc_tasks``;
* only then is the chosen model's test row read, next to the references' test rows; on test the
  acceptance is ``click >= click only - LEVEL`` and ``conversion >= conversion only - LEVEL`` on
  the mean over seeds, and ``conversion > cvr on clicks`` on the mean and on every seed.

Candidates are the rows whose label starts with ``esmm`` (every multi-task architecture is run
under that label, the configuration in the suffix); references are the rows whose label starts
with the reference's name. Input: result files written by ``bench/multitask.py --out`` (each
model's ``served_per_seed`` holds its served valid and test metrics per seed).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# (reference row, metric compared): the acceptance's three comparisons
REFERENCES = (("click only", "auc_click"), ("conversion only", "auc_conversion"), ("cvr on clicks", "auc_conversion"))
LEVEL = 0.002   # "at least level" on test: the mean may trail by at most this much AUC
TIE = 1e-9


def load_rows(sources: list[str], default_key: str, rows: list[str] | None = None) -> dict[str, dict[int, Any]]:
    """``{label: {seed: {"valid": {...}, "test": {...}}}}`` from ``FILE[:KEY]`` result files."""
    out: dict[str, dict[int, Any]] = {}
    for source in sources:
        path, _, key = source.partition(":")
        report = json.loads(Path(path).read_text())
        key = key or default_key
        if key not in report or "models" not in report[key]:
            raise SystemExit(f"{path}: no results under {key!r} (keys: {', '.join(report)}); "
                             f"name it as {path}:<key>")
        for label, model in report[key]["models"].items():
            if rows and label not in rows:
                continue
            seeds = model.get("seeds") or report[key].get("seeds") or report.get("seeds")
            served = model.get("served_per_seed")
            if served is None and seeds is not None and len(seeds) == 1 and "valid" in model:
                # a one-seed run written before served_per_seed existed: its means are that seed's values
                served = [{part: {k: v["mean"] for k, v in model[part].items()} for part in ("valid", "test")}]
            if not served or not seeds or len(served) != len(seeds):
                continue   # combined rows (click x cvr-on-clicks) and runs without per-seed metrics
            seen = out.setdefault(label, {})   # a row run one seed per process: merged over the sources
            for seed, metrics in zip((int(s) for s in seeds), served):
                if seed in seen:
                    raise SystemExit(f"{path}:{key}: row {label!r}, seed {seed} is also in an earlier source; "
                                     f"pass each once or pick rows with --rows")
                seen[seed] = metrics
    return out


def _reference(rows: dict[str, dict[int, Any]], name: str) -> str:
    found = [label for label in rows if label.startswith(name)]
    if len(found) != 1:
        raise SystemExit(f"selection needs exactly one {name!r} row, found {found or 'none'}; "
                         f"restrict the rows with --rows")
    return found[0]


def select(rows: dict[str, dict[int, Any]]) -> dict[str, Any]:
    """Apply the rule; returns every candidate's per-seed valid AUCs and margins, the choice and its
    test comparison."""
    refs = {name: _reference(rows, name) for name, _ in REFERENCES}
    candidates = [label for label in rows if label.startswith("esmm")]
    if not candidates:
        raise SystemExit("no candidate: no row's label starts with 'esmm'")
    seeds = sorted(set.intersection(*(set(rows[label]) for label in [*refs.values(), *candidates])))
    if not seeds:
        raise SystemExit("the candidates and references share no seed")
    table: dict[str, Any] = {}
    for label in candidates:
        per_seed = []
        for seed in seeds:
            valid = rows[label][seed]["valid"]
            diffs = {f"{metric} - {name}": valid[metric] - rows[refs[name]][seed]["valid"][metric]
                     for name, metric in REFERENCES}
            per_seed.append({"seed": seed, "auc_click": valid["auc_click"], "auc_conversion": valid["auc_conversion"],
                             "auc_tasks": valid["auc_tasks"], "diffs": diffs, "margin": min(diffs.values())})
        table[label] = {"per_seed": per_seed, "margin": float(np.mean([p["margin"] for p in per_seed])),
                        "auc_tasks": float(np.mean([p["auc_tasks"] for p in per_seed]))}
    best = max(table.values(), key=lambda t: t["margin"])["margin"]
    tied = [label for label in candidates if table[label]["margin"] >= best - TIE]
    chosen = max(tied, key=lambda label: table[label]["auc_tasks"])
    return {"seeds": seeds, "references": refs, "candidates": table, "chosen": chosen,
            "test": test_comparison(rows, chosen, refs, seeds)}


def test_comparison(rows: dict[str, dict[int, Any]], chosen: str, refs: dict[str, str],
                    seeds: list[int]) -> dict[str, Any]:
    """The chosen model's test AUCs against the references', per seed and mean ± std, and the verdict."""
    def values(label: str, metric: str) -> list[float]:
        return [rows[label][s]["test"][metric] for s in seeds]

    click, conv = values(chosen, "auc_click"), values(chosen, "auc_conversion")
    ref_click = values(refs["click only"], "auc_click")
    ref_conv = values(refs["conversion only"], "auc_conversion")
    ref_cvr = values(refs["cvr on clicks"], "auc_conversion")
    verdict = {
        "click at least level with click only": bool(np.mean(click) >= np.mean(ref_click) - LEVEL),
        "conversion at least level with conversion only": bool(np.mean(conv) >= np.mean(ref_conv) - LEVEL),
        "conversion above cvr on clicks (mean and every seed)":
            bool(np.mean(conv) > np.mean(ref_cvr) and all(a > b for a, b in zip(conv, ref_cvr))),
    }
    return {"per_seed": {"chosen auc_click": click, "click only auc_click": ref_click,
                         "chosen auc_conversion": conv, "conversion only auc_conversion": ref_conv,
                         "cvr on clicks auc_conversion": ref_cvr},
            "verdict": verdict, "met": all(verdict.values())}


def report_text(result: dict[str, Any]) -> str:
    """Markdown: valid margins of every candidate, the choice, then the test comparison."""
    seeds = result["seeds"]
    lines = [f"seeds {', '.join(map(str, seeds))}; references: " + ", ".join(result["references"].values()), "",
             ("| candidate (valid) | seed | auc_click | auc_conversion | - click only | - conversion only "
              "| - cvr on clicks | margin |"), "|---|---|---|---|---|---|---|---|"]
    for label, t in result["candidates"].items():
        for p in t["per_seed"]:
            d = list(p["diffs"].values())
            lines.append(f"| {label} | {p['seed']} | {p['auc_click']:.4f} | {p['auc_conversion']:.4f} | "
                         + " | ".join(f"{x:+.4f}" for x in d) + f" | {p['margin']:+.4f} |")
        lines.append(f"| {label} | mean | | | | | | **{t['margin']:+.4f}** |")
    lines += ["", f"chosen on valid: **{result['chosen']}**", "",
              "| test | " + " | ".join(map(str, seeds)) + " | mean ± std |", "|---|" + "---|" * (len(seeds) + 1)]
    for row, vals in result["test"]["per_seed"].items():
        lines.append(f"| {row} | " + " | ".join(f"{v:.4f}" for v in vals)
                     + f" | {np.mean(vals):.4f} ± {np.std(vals, ddof=1) if len(vals) > 1 else 0.0:.4f} |")
    lines.append("")
    lines += [f"* {k}: {'yes' if v else 'NO'}" for k, v in result["test"]["verdict"].items()]
    lines.append(f"* acceptance 1 on this dataset: {'met' if result['test']['met'] else 'not met'}")
    return "\n".join(lines)
