"""Training-free reference rows for docs/benchmarks/user_coldstart.md (same splits and protocol).

* segment popularity: popularity among the training users of the new user's segment
  (gender, age band, occupation, or their combinations), blended with global popularity;
  the segment definition and blend weight are chosen on the valid users (first 0 events);
* item-kNN from the first events: cosine item-item co-occurrence over training users, summed
  over the given events, plus a popularity prior; its weight is chosen on the valid users
  with 3 given events.

These say how much signal ml100k's attributes and first events carry at all, beside the
learned attribute tower of ``bench/user_coldstart.py``.

    OMP_NUM_THREADS=1 nice python bench/user_coldstart_refs.py --seeds 1 2 3 --out bench/results/user_coldstart_refs.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from user_coldstart import KS, N_FIRST, load

from fusionrec.evaluate.user_cold import evaluate_new_users, new_user_cases

SEGMENTS = (("gender",), ("age_band",), ("occupation",), ("gender", "age_band"))
BLENDS = (0.3, 0.6, 1.0)
PRIORS = (0.1, 0.3, 1.0)


def segment_scorer(data, spec, alpha):
    users = data.users.copy()
    users["age_band"] = np.digitize(users["age"].astype(float), [18, 25, 35, 45, 50, 56])
    key = users[list(spec)].astype(str).agg("|".join, axis=1).to_numpy()
    train = data.split_frame("train")
    pop = np.bincount(train["item"], minlength=data.n_items).astype(float)
    seg = {}
    for k in np.unique(key):
        f = train[train["user"].isin(np.flatnonzero(key == k))]
        seg[k] = np.bincount(f["item"], minlength=data.n_items).astype(float)

    def score(batch, histories):
        rows = [alpha * seg[key[u]] / max(seg[key[u]].sum(), 1.0) + (1 - alpha) * pop / pop.sum() for u in batch]
        return torch.tensor(np.array(rows), dtype=torch.float32)
    return score


def knn_scorer(data, prior):
    x = data.interaction_matrix("train")
    pop = np.asarray(x.sum(axis=0)).ravel()
    norm = np.sqrt(pop) + 1e-9
    sim = (x.T @ x).toarray() / norm[:, None] / norm[None, :]
    np.fill_diagonal(sim, 0.0)

    def score(batch, histories):
        rows = [(sim[h].sum(axis=0) if h else 0.0) + prior * max(len(h), 1) * pop / pop.max() for h in histories]
        return torch.tensor(np.array(rows), dtype=torch.float32)
    return score


def run_seed(seed: int) -> dict:
    data = load(seed)
    valid, test = new_user_cases(data, "valid", N_FIRST), new_user_cases(data, "test", N_FIRST)
    best_seg = max(((s, a) for s in SEGMENTS for a in BLENDS), key=lambda sa: evaluate_new_users(
        segment_scorer(data, *sa), valid, data.n_items, (0,), KS)[0]["recall@20"])
    best_prior = max(PRIORS, key=lambda p: evaluate_new_users(
        knn_scorer(data, p), valid, data.n_items, (3,), KS)[3]["recall@20"])
    return {"seed": seed, "segment": {"chosen": [list(best_seg[0]), best_seg[1]],
                                      "test": evaluate_new_users(segment_scorer(data, *best_seg), test,
                                                                 data.n_items, N_FIRST, KS)},
            "itemknn_first_events": {"chosen_prior": best_prior,
                                     "test": evaluate_new_users(knn_scorer(data, best_prior), test,
                                                                data.n_items, N_FIRST, KS)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", default="bench/results/user_coldstart_refs.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = [run_seed(s) for s in args.seeds]
    for r in runs:
        print(r["seed"], {k: {n: round(v["recall@20"], 4) for n, v in r[k]["test"].items()}
                          for k in ("segment", "itemknn_first_events")}, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
