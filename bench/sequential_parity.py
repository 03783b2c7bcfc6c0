"""Issue 9 acceptance 1 (fusionrec vs RecBole 1.2.1 on ml100k), decided from the raw rows of both benches
(docs/benchmarks/sequential.md):

    python bench/sequential_parity.py --fusionrec docs/benchmarks/sequential_fusionrec.jsonl \
        --recbole docs/benchmarks/sequential_recbole.jsonl --state-root /work/helpers/recbole_state

Only runs to early stop count: fusionrec rows without an epoch cap or another split whose last epoch is
at least ``patience`` (10) past the valid-best one, and RecBole rows with ``early_stopped: true``.
RecBole runs still in progress (``progress.json`` under ``--state-root``) are listed with what they
have spent so far; their time so far is a lower bound of their whole run, which is the one thing
that can decide a point (1c) before they end. Every comparison uses the no-mask protocol (RecBole's:
nothing a user saw is masked) on test; fusionrec's best model is chosen on valid under that same
protocol (mean over seeds of valid no-mask NDCG@10), never on test.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean
from typing import Any

MODELS = {"gru4rec": "GRU4Rec", "sasrec": "SASRec"}  # fusionrec name -> RecBole name, table order
CANDIDATES = ("sasrec", "gru4rec", "mm_sasrec")  # fusionrec's sequential models for 1b
PATIENCE = 10


def _rows(path: str) -> list[dict[str, Any]]:
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.is_file() else []


def fusionrec_runs(path: str) -> dict[tuple[str, int], dict[str, Any]]:
    """(model, seed) -> the latest fusionrec run to early stop under the standard protocol."""
    out = {}
    for r in _rows(path):
        sets = r.get("sets") or []
        if r.get("system") != "fusionrec" or r.get("dataset", "ml100k") != "ml100k" or r.get("kind"):
            continue
        if any(s.startswith(("train.epochs", "data.split")) for s in sets):
            continue
        if r["epochs_run"] - r["best_epoch"] < PATIENCE or "valid_nomask:ndcg@10" not in r["test"]:
            continue
        t = r["test"]
        out[(r["model"], r["seed"])] = {
            "valid": t["valid_nomask:ndcg@10"], "valid_masked": r["valid"]["ndcg@10"],
            "recall": t["nomask:recall@10"], "ndcg": t["nomask:ndcg@10"],
            "wall": r["wall_seconds"], "cpu": r["cpu_seconds"], "epochs": f"{r['epochs_run']} ({r['best_epoch']})",
            "load": r["loadavg_end"][0], "sets": sets}
    return out


def recbole_runs(path: str, state_root: str | None) -> dict[tuple[str, int], dict[str, Any]]:
    """(model, seed) -> RecBole run to early stop, or (``finished: False``) one still in progress."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    if state_root and Path(state_root).is_dir():
        for prog in sorted(Path(state_root).glob("*/progress.json")):
            p = json.loads(prog.read_text())
            if p["finished"] or p["data"].rstrip("/").split("/")[-1] != "ml100k" or p.get("epochs"):
                continue
            partial = (p.get("partial_test") or {}).get("test") or {}
            out[(p["model"], p["seed"])] = {
                "finished": False, "valid": p["best_valid_ndcg10"], "recall": partial.get("recall@10"),
                "ndcg": partial.get("ndcg@10"), "wall": p["run_wall_seconds_so_far"],
                "cpu": p["run_cpu_seconds_so_far"], "epochs": f"{p['epochs_done']} ({p['best_epoch']}), "
                f"{p['cur_step']} of {PATIENCE + 1} without gain", "state": str(prog.parent),
                "load": (p.get("last_epoch") or {}).get("loadavg", [float("nan")])[0]}
    for r in _rows(path):
        if r.get("system", "").startswith("recbole") and r.get("early_stopped") and not r.get("epochs_cap"):
            out[(r["model"], r["seed"])] = {
                "finished": True, "valid": r["best_valid"]["ndcg@10"], "recall": r["test"]["recall@10"],
                "ndcg": r["test"]["ndcg@10"], "wall": r["wall_seconds"], "cpu": r["cpu_seconds"],
                "epochs": f"{r['epochs_run']} ({r['best_epoch']})", "load": r["loadavg_end"][0]}
    return out


def _f(x: float | None, nd: int = 4) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def runs_table(fr: dict, rb: dict) -> str:
    lines = [("| system | model | seed | state | epochs (best) | valid no-mask NDCG@10 | test no-mask Recall@10 | "
              "test no-mask NDCG@10 | whole run wall s | CPU s | load (1 min) at end |"), "|" + "---|" * 11]
    for (model, seed), r in sorted(fr.items()):
        lines.append(f"| fusionrec | {model} | {seed} | early-stopped | {r['epochs']} | {_f(r['valid'])} | "
                     f"{_f(r['recall'])} | {_f(r['ndcg'])} | {r['wall']:.0f} | {r['cpu']:.0f} | {r['load']:.1f} |")
    for (model, seed), r in sorted(rb.items()):
        done = r["finished"]
        state = "early-stopped" if done else "**running / unfinished** (test of the valid-best so far)"
        bound = "" if done else ">= "
        lines.append(f"| RecBole 1.2.1 | {model} | {seed} | {state} | {r['epochs']} | {_f(r['valid'])} | "
                     f"{_f(r['recall'])} | {_f(r['ndcg'])} | {bound}{r['wall']:.0f} | {bound}{r['cpu']:.0f} | "
                     f"{r['load']:.1f} |")
    return "\n".join(lines)


def acceptance(fr: dict, rb: dict, seeds: list[int]) -> str:
    out = []
    # 1a: fusionrec sasrec vs RecBole SASRec, same seed
    rows = ["| 1a seed | fusionrec sasrec R@10 / N@10 | RecBole SASRec R@10 / N@10 | relative difference |",
            "|---|---|---|---|"]
    rel = []
    for s in seeds:
        f, b = fr.get(("sasrec", s)), rb.get(("SASRec", s))
        if f and b and b["finished"]:
            d = ((f["recall"] / b["recall"] - 1) * 100, (f["ndcg"] / b["ndcg"] - 1) * 100)
            rel.append(d)
            rows.append(f"| {s} | {_f(f['recall'])} / {_f(f['ndcg'])} | {_f(b['recall'])} / {_f(b['ndcg'])} | "
                        f"{d[0]:+.1f}% / {d[1]:+.1f}% |")
        else:
            rows.append(f"| {s} | {_f(f and f['recall'])} / {_f(f and f['ndcg'])} | pending (RecBole not "
                        "early-stopped) | - |")
    out.append("\n".join(rows))
    # 1b: best fusionrec model on valid (no-mask NDCG@10, mean over seeds) vs RecBole's best of the two
    cands = sorted({m for m, _ in fr} | set(CANDIDATES))
    counts = {m: sum((m, s) in fr for s in seeds) for m in cands}
    means = {m: mean(fr[(m, s)]["valid"] for s in seeds if (m, s) in fr) if counts[m] else None for m in cands}
    def avg(m: str, key: str) -> float | None:
        vals = [fr[(m, s)][key] for s in seeds if (m, s) in fr]
        return mean(vals) if vals else None
    lines = [("| 1b candidate (fusionrec) | seeds to early stop | mean valid no-mask NDCG@10 (selects) | "
              "mean valid NDCG@10, fusionrec protocol | mean test no-mask R@10 / N@10 | mean wall / CPU s |"),
             "|---|---|---|---|---|---|"]
    lines += [f"| {m} | {counts[m]} | {_f(means[m])} | {_f(avg(m, 'valid_masked'))} | {_f(avg(m, 'recall'))} / "
              f"{_f(avg(m, 'ndcg'))} | {_f(avg(m, 'wall'), 0)} / {_f(avg(m, 'cpu'), 0)} |" for m in cands]
    complete = all(counts[m] == len(seeds) for m in cands)
    best = max((m for m in cands if counts[m]), key=means.get, default=None)
    lines.append(f"\nChosen on valid: **{best}**" + ("." if complete else
                 " -- provisional: not every candidate has all seeds to early stop."))
    rb_done = {m: [rb[(m, s)] for s in seeds if rb.get((m, s), {}).get("finished")] for m in MODELS.values()}
    if complete and all(len(v) == len(seeds) for v in rb_done.values()):
        fb = [fr[(best, s)] for s in seeds]
        for metric in ("recall", "ndcg"):
            ref = max(mean(r[metric] for r in v) for v in rb_done.values())
            got = mean(r[metric] for r in fb)
            lines.append(f"* {metric}@10: fusionrec {got:.4f} vs RecBole best {ref:.4f}: x{got / ref:.3f} "
                         f"({'met' if got >= 1.1 * ref else 'NOT met'}, needs x1.10)")
    else:
        lines.append("* pending: RecBole has not early-stopped on every seed of both models")
    out.append("\n".join(lines))
    # 1c: whole-run wall time of fusionrec's model (the chosen one decides) vs each RecBole model, same seed
    rows = [("| 1c fusionrec model, seed | fusionrec wall / CPU s | vs RecBole GRU4Rec wall / CPU s | "
             "vs RecBole SASRec wall / CPU s |"), "|---|---|---|---|"]
    for (model, s), f in sorted(fr.items()):
        cells = []
        for m in MODELS.values():
            b = rb.get((m, s))
            if not b:
                cells.append("-")
                continue
            ge = "" if b["finished"] else ">= "
            ok = b["wall"] >= 2 * f["wall"]
            verdict = ("met" if ok else ("NOT met" if b["finished"] else "open")) + ("" if b["finished"] else
                                                                                    " (bound: RecBole unfinished)")
            cells.append(f"{ge}{b['wall']:.0f} / {ge}{b['cpu']:.0f}: x{b['wall'] / f['wall']:.1f} wall, "
                         f"x{b['cpu'] / f['cpu']:.1f} CPU, {verdict}")
        chosen = " (chosen)" if model == best else ""
        rows.append(f"| {model}{chosen}, {s} | {f['wall']:.0f} / {f['cpu']:.0f} | " + " | ".join(cells) + " |")
    out.append("\n".join(rows))
    return "\n\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fusionrec", default="docs/benchmarks/sequential_fusionrec.jsonl")
    ap.add_argument("--recbole", default="docs/benchmarks/sequential_recbole.jsonl")
    ap.add_argument("--state-root", default="/work/helpers/recbole_state")
    ap.add_argument("--seeds", nargs="*", type=int, default=[2024, 2025, 2026])
    args = ap.parse_args()
    fr, rb = fusionrec_runs(args.fusionrec), recbole_runs(args.recbole, args.state_root)
    print(runs_table(fr, rb) + "\n\n" + acceptance(fr, rb, args.seeds))


if __name__ == "__main__":
    main()
