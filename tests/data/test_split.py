"""Splits and k-core: the properties each one promises, on small hand-made data and on shared data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.data.split import (
    apply_split,
    cold_start_split,
    kcore_filter,
    leave_last_out_split,
    mmrec_counts,
    random_split,
    temporal_split,
)
from fusionrec.errors import UserError


def _dataset(n_users: int = 60, n_items: int = 40, seed: int = 0, with_time: bool = True) -> Dataset:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        k = int(rng.integers(1, 30))
        for i in rng.choice(n_items, size=min(k, n_items), replace=False):
            rows.append((u, int(i), float(rng.integers(1, 6)), float(rng.integers(0, 10_000))))
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    if not with_time:
        frame["timestamp"] = np.nan
    return Dataset("toy", range(n_users), range(n_items), frame)


def _counts(ds: Dataset) -> pd.DataFrame:
    return ds.interactions.groupby("user")["split"].value_counts().unstack(fill_value=0).reindex(
        columns=["train", "valid", "test"], fill_value=0)


def test_mmrec_rule_counts_small_example() -> None:
    n = np.array([1, 2, 3, 9, 10, 15, 19, 20, 27])
    tr, va, te = mmrec_counts(n)
    # fewer than 10: n-2 / 1 / 1 (a single interaction stays in train)
    assert list(zip(tr[:4], va[:4], te[:4])) == [(1, 0, 0), (0, 1, 1), (1, 1, 1), (7, 1, 1)]
    # MMRec notebook: vt = int(0.2 n), valid = vt // 2, test = vt - valid
    assert list(zip(tr[4:], va[4:], te[4:])) == [(8, 1, 1), (12, 1, 2), (16, 1, 2), (16, 2, 2), (22, 2, 3)]
    tr, va, te = mmrec_counts(n, rounding="round")
    # round: train = round(0.8 n), valid = round(0.1 n), test = rest
    assert list(zip(tr[4:], va[4:], te[4:])) == [(8, 1, 1), (12, 2, 1), (15, 2, 2), (16, 2, 2), (22, 3, 2)]


def test_random_split_follows_counts_and_is_deterministic() -> None:
    ds = _dataset()
    a = random_split(ds, seed=7)
    b = random_split(ds, seed=7)
    c = random_split(ds, seed=8)
    assert (a.interactions["split"] == b.interactions["split"]).all()
    assert not (a.interactions["split"] == c.interactions["split"]).all()
    counts = _counts(a)
    n = counts.sum(axis=1).to_numpy()
    tr, va, te = mmrec_counts(n)
    assert (counts["train"].to_numpy() == tr).all()
    assert (counts["valid"].to_numpy() == va).all()
    assert (counts["test"].to_numpy() == te).all()


def test_random_split_round_reproduces_shared_reference_counts(shared_data: Path) -> None:
    """The ml100k/mmrec reference split was made with round(): same per-user counts from raw ml100k."""
    from fusionrec.data.readers import read_table

    ds = read_table(shared_data / "ml100k" / "interactions.csv")
    ours = _counts(random_split(ds, seed=999, rounding="round"))
    ref = pd.read_csv(shared_data / "ml100k" / "mmrec" / "ml100k.inter", sep="\t")
    umap = pd.read_csv(shared_data / "ml100k" / "mmrec" / "u_id_mapping.csv", sep="\t")
    ref["user_id"] = ref["userID"].map(dict(zip(umap["userID"], umap["user_id"])))
    ref_counts = ref.groupby("user_id")["x_label"].value_counts().unstack(fill_value=0)
    ours.index = [ds.user_ids[u] for u in ours.index]
    ours = ours.loc[ref_counts.index]
    assert (ours["train"].to_numpy() == ref_counts[0].to_numpy()).all()
    assert (ours["valid"].to_numpy() == ref_counts[1].to_numpy()).all()
    assert (ours["test"].to_numpy() == ref_counts[2].to_numpy()).all()
    assert ours.sum().tolist() == [80000, 9988, 10012]


def test_leave_last_out_by_time() -> None:
    ds = leave_last_out_split(_dataset())
    inter = ds.interactions
    for _, g in inter.groupby("user"):
        if len(g) >= 3:
            assert (g["split"] == "test").sum() == 1 and (g["split"] == "valid").sum() == 1
            t_test = g.loc[g["split"] == "test", "timestamp"].iloc[0]
            t_valid = g.loc[g["split"] == "valid", "timestamp"].iloc[0]
            assert g.loc[g["split"] == "train", "timestamp"].max() <= t_valid <= t_test
        elif len(g) == 1:
            assert (g["split"] == "train").all()
    assert (leave_last_out_split(_dataset()).interactions["split"] == inter["split"]).all()


def test_temporal_split_orders_time() -> None:
    ds = temporal_split(_dataset(), (0.7, 0.15, 0.15))
    inter = ds.interactions
    ts = {s: inter.loc[inter["split"] == s, "timestamp"] for s in ("train", "valid", "test")}
    assert ts["train"].max() <= ts["valid"].min() and ts["valid"].max() <= ts["test"].min()
    assert ts["train"].max() <= ts["test"].min()
    assert abs(len(ts["train"]) / len(inter) - 0.7) < 0.01


def test_time_splits_need_timestamps() -> None:
    ds = _dataset(with_time=False)
    with pytest.raises(UserError, match="needs timestamps"):
        temporal_split(ds)
    with pytest.raises(UserError, match="needs timestamps"):
        leave_last_out_split(ds)


def test_cold_start_split_items_never_seen_in_train() -> None:
    ds = _dataset()
    a = cold_start_split(ds, seed=3)
    inter = a.interactions
    train_items = set(inter.loc[inter["split"] == "train", "item"])
    for s in ("valid", "test"):
        items = set(inter.loc[inter["split"] == s, "item"])
        assert items and not (items & train_items)
    assert not (set(inter.loc[inter["split"] == "valid", "item"]) & set(inter.loc[inter["split"] == "test", "item"]))
    # items (not events) are split by the ratios
    n_active = inter["item"].nunique()
    assert len(train_items) == round(0.8 * n_active)
    assert (cold_start_split(ds, seed=3).interactions["split"] == inter["split"]).all()


def test_kcore_every_survivor_has_k() -> None:
    ds = _dataset(n_users=200, n_items=80, seed=1)
    out = kcore_filter(ds, 10)
    u_deg = out.interactions.groupby("user").size()
    i_deg = out.interactions.groupby("item").size()
    assert u_deg.min() >= 10 and i_deg.min() >= 10
    assert out.n_users == len(u_deg) and out.n_items == len(i_deg)   # compacted
    assert out.n_interactions < ds.n_interactions
    # original ids survive the re-indexing
    orig = ds.interactions.assign(u=ds.user_ids[ds.interactions["user"]], i=ds.item_ids[ds.interactions["item"]])
    kept = out.interactions.assign(u=out.user_ids[out.interactions["user"]], i=out.item_ids[out.interactions["item"]])
    assert set(zip(kept["u"], kept["i"])) <= set(zip(orig["u"], orig["i"]))
    with pytest.raises(UserError, match="removed every interaction"):
        kcore_filter(ds, 1000)


def test_apply_split_predefined_requires_split() -> None:
    ds = _dataset()
    with pytest.raises(UserError, match="predefined"):
        apply_split(ds, "predefined")
    split = random_split(ds)
    assert apply_split(split, "predefined") is split
    with pytest.raises(UserError, match="unknown split method"):
        apply_split(ds, "bogus")
