"""Hybrid cascade benchmark: what does re-ranking a retriever's top-N with the DCN-v2 ranker add?

One command (writes docs/benchmarks/cascade.md and cascade.json)::

    nice -n 5 python bench/cascade.py --dataset ml100k-mmrec --seeds 2024 2025 2026

Protocol (same data, same split, same shared Evaluator and protocol for every row):

1. retriever: EASE (closed form), ``l2`` chosen on VALID Recall@20 from a small grid;
2. ranker: DCN-v2 (``fusionrec.models.ranker``) over user/item IDs, user history and
   the dataset's modalities, trained with BCE on sampled negatives -- plain uniform
   negatives, or plus ``hard_negatives`` drawn from the retriever's top-N. Early
   stopping uses the *cascade's* VALID Recall@20 (the ranker is selected for the job
   it does: ordering the retriever's candidates);
3. ``top_n`` and ``blend`` (0 = ranker order only, 1 = retriever order) are chosen on
   VALID; the ranker variant (uniform vs hard negatives) is chosen on VALID with the
   first seed;
4. TEST is scored once per seed for: retriever alone, ranker alone (full ranking),
   the cascade with pure re-ranking (blend 0) and the valid-chosen blend; plus the
   ranker's AUC / log loss on held-out test positives vs sampled non-interacted items
   (1 and 4 negatives per positive).

Timings are wall-clock on a shared 2-core machine and noisy.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fusionrec.config import TrainConfig  # noqa: E402
from fusionrec.data.loading import load_preset, preset_data  # noqa: E402
from fusionrec.config import load_yaml_resource  # noqa: E402
from fusionrec.evaluate import Evaluator  # noqa: E402
from fusionrec.evaluate.metrics import evaluate_pointwise  # noqa: E402
from fusionrec.evaluate.report import aggregate_seeds, format_table  # noqa: E402
from fusionrec.models.cascade import Cascade  # noqa: E402
from fusionrec.models.registry import build_model  # noqa: E402
from fusionrec.train.trainer import Trainer, seed_everything  # noqa: E402

OUT = REPO / "docs" / "benchmarks"
METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


class CascadeValidation:
    """Trainer evaluator for the ranker: VALID metrics of the cascade it is part of."""

    def __init__(self, evaluator: Evaluator, data, retriever, top_n: int) -> None:
        self.evaluator, self.data, self.retriever, self.top_n = evaluator, data, retriever, top_n

    def evaluate(self, model, split: str = "valid") -> dict[str, float]:
        cascade = Cascade.from_models(self.data, self.retriever, model, top_n=self.top_n, blend=0.0)
        return self.evaluator.evaluate(cascade, split)


def pointwise_eval(dataset, model, split: str, negatives: int, seed: int) -> dict[str, float]:
    """AUC / log loss of held-out positives vs ``negatives`` random items the user never interacted with."""
    rng = np.random.default_rng(seed)
    frame = dataset.split_frame(split)
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy()
    seen = dataset.interaction_matrix(["train", "valid", "test"]).tocsr()
    neg_u = np.repeat(users, negatives)
    neg_i = rng.integers(0, dataset.n_items, len(neg_u))
    for _ in range(100):    # rejection: keep only items the user never interacted with
        bad = np.asarray(seen[neg_u, neg_i]).ravel() > 0
        if not bad.any():
            break
        neg_i[bad] = rng.integers(0, dataset.n_items, int(bad.sum()))
    all_u = np.concatenate([users, neg_u])
    all_i = np.concatenate([items, neg_i])
    labels = np.concatenate([np.ones(len(users)), np.zeros(len(neg_u))])
    probs = model.predict_pairs(torch.from_numpy(all_u), torch.from_numpy(all_i)).numpy()
    return evaluate_pointwise(labels, probs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml100k-mmrec")
    ap.add_argument("--seeds", type=int, nargs="+", default=[2024, 2025, 2026])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--ease-grid", type=float, nargs="+", default=[100.0, 200.0, 500.0])
    ap.add_argument("--top-n-grid", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--blend-grid", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75])
    ap.add_argument("--hard-grid", type=int, nargs="+", default=[0, 2],
                    help="hard negatives per positive to try for the ranker (chosen on valid, first seed)")
    ap.add_argument("--train-top-n", type=int, default=100, help="candidates during ranker training/early stopping")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    dataset = load_preset(args.dataset)
    preset = load_yaml_resource(f"datasets/{args.dataset}.yaml")
    protocol = preset.get("eval", {}).get("protocol", "full")
    ev = Evaluator(dataset, ks=(10, 20, 50), protocol=protocol)
    data = dataset.train_data()
    log: dict[str, Any] = {"dataset": args.dataset, "protocol": protocol, "seeds": args.seeds,
                           "modalities": list(dataset.modalities)}
    print(dataset, file=sys.stderr)

    # 1. retriever: EASE, l2 on VALID
    best = None
    ease_valid = {}
    for l2 in args.ease_grid:
        model = build_model("ease", data, {"l2": l2})
        model.fit(data)
        v = ev.evaluate(model, "valid")["recall@20"]
        ease_valid[l2] = v
        print(f"ease l2={l2}: valid recall@20 {v:.4f}", file=sys.stderr)
        if best is None or v > best[0]:
            best = (v, l2, model)
    _, l2, retriever = best
    log["retriever"] = {"model": "ease", "l2": l2, "valid_grid": ease_valid}
    # cache the retriever's scores: EASE is deterministic and re-used in every cascade below
    rscores = torch.as_tensor(retriever.full_sort_predict(torch.arange(dataset.n_users))).float()

    class CachedRetriever(torch.nn.Module):
        name, params, trainable = "ease", {"l2": l2}, False
        n_users, n_items = dataset.n_users, dataset.n_items

        def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
            return rscores[users]

    cached = CachedRetriever()
    train_cands = Cascade.from_models(data, cached, cached, top_n=args.train_top_n).candidates(
        torch.arange(dataset.n_users))

    # 2. ranker variants on the first seed, chosen on VALID (cascade recall@20)
    def train_ranker(seed: int, hard: int):
        seed_everything(seed)
        params = {"hard_negatives": hard}
        ranker = build_model("dcn", data, params)
        if hard:
            ranker.set_candidates(train_cands)
        cfg = TrainConfig(epochs=args.epochs, lr=1e-3, batch_size=2048, patience=args.patience,
                          checkpoint=False, progress=False, num_threads=args.threads)
        result = Trainer(ranker, data, cfg, CascadeValidation(ev, data, cached, args.train_top_n), seed=seed).fit()
        ranker.eval()
        return ranker, result

    variants = {}
    first = args.seeds[0]
    for hard in args.hard_grid:
        ranker, res = train_ranker(first, hard)
        variants[hard] = (ranker, res)
        print(f"dcn hard_negatives={hard}: best epoch {res.best_epoch}, cascade valid recall@20 "
              f"{res.best_score:.4f} ({res.total_seconds:.0f}s, {res.seconds_per_epoch:.1f}s/epoch)", file=sys.stderr)
    hard = max(variants, key=lambda h: variants[h][1].best_score)
    log["ranker_variant_valid"] = {str(h): variants[h][1].best_score for h in variants}
    log["ranker"] = {"model": "dcn", "hard_negatives": hard, "params": dict(variants[hard][0].params)}

    per_seed = []
    retr_test = ev.evaluate(cached, "test")
    for seed in args.seeds:
        if seed == first:
            ranker, res = variants[hard]
        else:
            ranker, res = train_ranker(seed, hard)
        # 3. top_n, blend on VALID
        grid = {}
        for top_n in args.top_n_grid:
            for blend in args.blend_grid:
                cas = Cascade.from_models(data, cached, ranker, top_n=top_n, blend=blend)
                grid[(top_n, blend)] = ev.evaluate(cas, "valid")["recall@20"]
        pure_n = max((k for k in grid if k[1] == 0.0), key=lambda k: grid[k])
        best_k = max(grid, key=lambda k: grid[k])
        # 4. TEST once per configuration
        rerank = ev.evaluate(Cascade.from_models(data, cached, ranker, top_n=pure_n[0], blend=0.0), "test")
        blended = ev.evaluate(Cascade.from_models(data, cached, ranker, top_n=best_k[0], blend=best_k[1]), "test")
        alone = ev.evaluate(ranker, "test")
        point1 = pointwise_eval(dataset, ranker, "test", 1, seed)
        point4 = pointwise_eval(dataset, ranker, "test", 4, seed)
        per_seed.append({
            "seed": seed, "best_epoch": res.best_epoch, "seconds_per_epoch": res.seconds_per_epoch,
            "train_seconds": res.total_seconds, "valid_grid": {f"{k[0]}/{k[1]}": v for k, v in grid.items()},
            "pure_top_n": pure_n[0], "best_top_n": best_k[0], "best_blend": best_k[1],
            "test": {"retriever": retr_test, "ranker": alone, "rerank": rerank, "blended": blended},
            "pointwise": {"neg1": point1, "neg4": point4},
        })
        print(f"seed {seed}: retriever {retr_test['recall@20']:.4f} | ranker alone {alone['recall@20']:.4f} | "
              f"re-rank top-{pure_n[0]} {rerank['recall@20']:.4f} | blend {best_k} {blended['recall@20']:.4f} | "
              f"AUC {point1['auc']:.4f}", file=sys.stderr)

    rows = {}
    labels = {
        "retriever": f"EASE (l2={l2:g}) retrieval alone",
        "ranker": "DCN-v2 ranker alone (full ranking)",
        "rerank": "cascade: EASE top-N -> DCN-v2 re-rank",
        "blended": "cascade, blended with retriever score",
    }
    for key, label in labels.items():
        rows[label] = aggregate_seeds([{m: s["test"][key][m] for m in METRICS} for s in per_seed])
    point_rows = {
        "1 negative per positive": aggregate_seeds([{"auc": s["pointwise"]["neg1"]["auc"],
                                                     "logloss": s["pointwise"]["neg1"]["logloss"]} for s in per_seed]),
        "4 negatives per positive": aggregate_seeds([{"auc": s["pointwise"]["neg4"]["auc"],
                                                      "logloss": s["pointwise"]["neg4"]["logloss"]} for s in per_seed]),
    }
    log["per_seed"] = per_seed
    log["wall_seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cascade.json").write_text(json.dumps(log, indent=1, default=float))
    table = format_table(rows, metrics=list(METRICS), fmt="markdown")
    ptable = format_table(point_rows, metrics=["auc", "logloss"], fmt="markdown", highlight_best=False)
    settings = "; ".join(f"seed {s['seed']}: re-rank top-{s['pure_top_n']}, blend top-{s['best_top_n']} "
                         f"w={s['best_blend']}, ranker best epoch {s['best_epoch']}, "
                         f"{s['seconds_per_epoch']:.1f} s/epoch" for s in per_seed)
    md = [
        f"# Hybrid cascade on {args.dataset}: retrieval vs retrieval + DCN-v2 re-ranking",
        "",
        f"Command: `nice -n 5 python bench/cascade.py --dataset {args.dataset} --seeds "
        f"{' '.join(map(str, args.seeds))} --epochs {args.epochs} --patience {args.patience} "
        f"--hard-grid {' '.join(map(str, args.hard_grid))} --threads {args.threads}` ({log['wall_seconds'] / 60:.0f} min on the shared 2-core box).",
        "",
        f"Same split, same shared `Evaluator` (protocol `{protocol}`, full ranking over all "
        f"{dataset.n_items} items), test scored once per seed; mean ± sample std over seeds "
        f"{args.seeds}. Modalities seen by the ranker: {', '.join(dataset.modalities) or 'none'}.",
        "",
        "## Test",
        "",
        table,
        "",
        "## Ranker as a CTR model (test positives vs random non-interacted items)",
        "",
        ptable,
        "",
        "## What was chosen on VALID",
        "",
        f"- retriever: EASE l2 from {args.ease_grid}: valid recall@20 "
        + ", ".join(f"{k:g}: {v:.4f}" for k, v in ease_valid.items()) + f" -> l2={l2:g}",
        f"- ranker negatives (first seed, cascade valid recall@20 with top-{args.train_top_n}): "
        + ", ".join(f"uniform+{h} hard: {variants[h][1].best_score:.4f}" for h in variants)
        + f" -> hard_negatives={hard}",
        f"- top_n from {args.top_n_grid}, blend from {args.blend_grid}: {settings}",
        "",
    ]
    (out / "cascade.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
