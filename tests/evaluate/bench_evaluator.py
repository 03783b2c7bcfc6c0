"""Timing/memory benchmark of a full validation pass (not collected by pytest).

    nice -n 5 python tests/evaluate/bench_evaluator.py [--repeats 5] [--synthetic]

Builds Datasets straight from the MMRec-format files in ../shared/data (lastfm2k,
amazon-baby) and times ``Evaluator.evaluate`` of a dot-product model (random
64-d embeddings: the cost of ranking does not depend on embedding quality).
Reports the first pass (includes building the split's CSR ground truth and
masks) and the median of the following passes (what each training epoch pays).
``--synthetic`` adds a 40k users x 25k items case to check the memory bound.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fusionrec.data.dataset import Dataset, TrainData
from fusionrec.evaluate import Evaluator
from fusionrec.models.base import RecModel

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPLIT_NAMES = {0: "train", 1: "valid", 2: "test"}


class DotModel(RecModel):
    """Scores = user_emb @ item_emb.T, like MF/LightGCN at inference time."""

    name = "dot"

    def __init__(self, data: TrainData, dim: int = 64, seed: int = 0) -> None:
        super().__init__(data, {})
        g = torch.Generator().manual_seed(seed)
        self.user = torch.nn.Parameter(torch.randn(data.n_users, dim, generator=g) * 0.1)
        self.item = torch.nn.Parameter(torch.randn(data.n_items, dim, generator=g) * 0.1)

    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        return self.user[users] @ self.item.T


def mmrec_dataset(path: Path, name: str) -> Dataset:
    frame = pd.read_csv(path, sep="\t")
    inter = pd.DataFrame({
        "user": frame["userID"].to_numpy(np.int64),
        "item": frame["itemID"].to_numpy(np.int64),
        "split": frame["x_label"].map(SPLIT_NAMES).to_numpy(object),
    })
    n_users, n_items = int(inter["user"].max()) + 1, int(inter["item"].max()) + 1
    return Dataset(name, range(n_users), range(n_items), inter)


def synthetic_dataset(n_users: int, n_items: int, per_user: int = 20, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, n_items, size=users.size)
    split = rng.choice(np.array(["train", "valid", "test"], dtype=object), size=users.size, p=[0.8, 0.1, 0.1])
    inter = pd.DataFrame({"user": users, "item": items, "split": split})
    return Dataset("synthetic", range(n_users), range(n_items), inter)


def bare_pass(model: DotModel, users: np.ndarray, batch: int = 1024, k: int = 50) -> float:
    """The unavoidable work alone: score each batch and take its top-k (no masks, no metrics)."""
    t0 = time.perf_counter()
    with torch.no_grad():
        for b0 in range(0, len(users), batch):
            torch.topk(model.full_sort_predict(torch.from_numpy(users[b0:b0 + batch])), k, dim=1)
    return time.perf_counter() - t0


def bench(ds: Dataset, repeats: int, beyond: bool = False) -> dict[str, float]:
    model = DotModel(ds.train_data())
    feats = model.item.detach().numpy() if beyond else None
    ev = Evaluator(ds, ks=(10, 20, 50), batch_users=1024, beyond_accuracy=beyond, item_features=feats)
    t0 = time.perf_counter()
    first = ev.evaluate(model, "valid")
    first_s = time.perf_counter() - t0
    times, bare, ratios = [], [], []
    users = ev.eval_users("valid")
    for _ in range(repeats):
        # interleave the evaluator and the bare baseline so both see the same machine load
        t0 = time.perf_counter()
        ev.evaluate(model, "valid")
        times.append(time.perf_counter() - t0)
        bare.append(bare_pass(model, users))
        ratios.append(times[-1] / bare[-1])
    return {"users": first["n_users"], "first_s": first_s, "median_s": statistics.median(times),
            "min_s": min(times), "max_s": max(times), "bare_median_s": statistics.median(bare),
            "ratio_median": statistics.median(ratios), "recall@20": first["recall@20"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--synthetic", action="store_true", help="also run 40k users x 25k items")
    parser.add_argument("--only", default=None, help="run only the case with this name")
    parser.add_argument("--no-beyond", action="store_true", help="skip the beyond-accuracy runs")
    args = parser.parse_args(argv)
    print(f"torch threads: {torch.get_num_threads()}")
    cases: list[tuple[str, Dataset]] = []
    if (SHARED / "lastfm2k" / "lfm2k.inter").is_file():
        cases.append(("lastfm2k", mmrec_dataset(SHARED / "lastfm2k" / "lfm2k.inter", "lastfm2k")))
    if (SHARED / "amazon-baby" / "baby.inter").is_file():
        cases.append(("amazon-baby", mmrec_dataset(SHARED / "amazon-baby" / "baby.inter", "amazon-baby")))
    if args.synthetic:
        cases.append(("synthetic-40kx25k", synthetic_dataset(40_000, 25_000)))
    for name, ds in cases:
        if args.only and name != args.only:
            continue
        for beyond in (False,) if args.no_beyond else (False, True):
            res = bench(ds, args.repeats, beyond)
            print(f"{name:20s} {ds.n_users}x{ds.n_items} beyond={beyond!s:5s} eval users={int(res['users'])} "
                  f"first={res['first_s']:.3f}s median={res['median_s']:.3f}s "
                  f"(min {res['min_s']:.3f}, max {res['max_s']:.3f}, {args.repeats} runs); "
                  f"bare score+topk median={res['bare_median_s']:.3f}s, "
                  f"evaluator/bare median ratio={res['ratio_median']:.2f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
