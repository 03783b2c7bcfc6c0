"""scikit-surprise's SVD with its defaults on a fusionrec ratings split (run in its own venv).

``bench/ratings.py`` writes the split as CSV files (``user,item,rating``) and runs this script
with the venv's python, e.g. ``/tmp/surprise_venv/bin/python bench/ratings_surprise.py
--train train.csv --test test.csv --seeds 2024 2025 2026``; it prints one JSON line per seed:
``{"seed", "rmse", "mae", "seconds"}``. Surprise's SVD is seeded through ``random_state``;
its predictions are clipped to the rating scale, as ours are.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from surprise import SVD, Dataset, Reader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[2024])
    args = ap.parse_args()
    train = pd.read_csv(args.train)
    test = pd.read_csv(args.test)
    low, high = float(train["rating"].min()), float(train["rating"].max())
    data = Dataset.load_from_df(train[["user", "item", "rating"]], Reader(rating_scale=(low, high)))
    trainset = data.build_full_trainset()
    for seed in args.seeds:
        t0 = time.perf_counter()
        algo = SVD(random_state=seed)   # every other argument at its default
        algo.fit(trainset)
        pred = np.array([algo.predict(u, i).est for u, i in zip(test["user"], test["item"])])
        err = pred - test["rating"].to_numpy(np.float64)
        print(json.dumps({"seed": seed, "rmse": float(np.sqrt((err ** 2).mean())), "mae": float(np.abs(err).mean()),
                          "seconds": time.perf_counter() - t0}), flush=True)


if __name__ == "__main__":
    main()
