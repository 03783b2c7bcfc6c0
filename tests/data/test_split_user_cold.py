"""User cold-start split and user attributes in the Dataset: valid/test users never train."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.config import DataConfig, RunConfig
from fusionrec.data.dataset import Dataset
from fusionrec.data.loading import load_dataset
from fusionrec.data.split import apply_split, user_cold_start_split
from fusionrec.errors import UserError


def _dataset(n_users: int = 50, n_items: int = 30, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    rows = [(u, int(i)) for u in range(n_users) for i in rng.choice(n_items, int(rng.integers(2, 12)), replace=False)]
    return Dataset("toy", range(n_users), range(n_items), pd.DataFrame(rows, columns=["user", "item"]))


def test_user_cold_split_keeps_every_user_in_one_part() -> None:
    ds = user_cold_start_split(_dataset(), (0.8, 0.1, 0.1), seed=3)
    parts = ds.interactions.groupby("user")["split"].nunique()
    assert (parts == 1).all()
    groups = ds.interactions.groupby("user")["split"].first().value_counts()
    assert groups["train"] == 40 and groups["valid"] == 5 and groups["test"] == 5
    train_users = set(ds.split_frame("train")["user"])
    assert not train_users & set(ds.split_frame("test")["user"])
    assert not train_users & set(ds.split_frame("valid")["user"])


def test_user_cold_split_is_seeded_and_selectable_from_config() -> None:
    a = apply_split(_dataset(), "user_cold_start", (0.8, 0.1, 0.1), seed=7)
    b = user_cold_start_split(_dataset(), (0.8, 0.1, 0.1), seed=7)
    c = user_cold_start_split(_dataset(), (0.8, 0.1, 0.1), seed=8)
    assert (a.interactions["split"] == b.interactions["split"]).all()
    assert not (a.interactions["split"] == c.interactions["split"]).all()
    assert RunConfig.model_validate({"data": {"split": {"method": "user_cold_start"}}}).data.split.method \
        == "user_cold_start"


def test_user_cold_split_without_training_users_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no training user"):
        user_cold_start_split(_dataset(n_users=3), (0.1, 0.45, 0.45))


def test_user_attributes_load_in_user_order_with_masks(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": ["u1", "u2", "u3", "u1"], "item_id": ["a", "b", "a", "c"]}).to_csv(
        tmp_path / "events.csv", index=False)
    # u4 has attributes but no events; u3 has events but a blank gender; u2 is not in the user table
    pd.DataFrame({"user_id": ["u4", "u3", "u1"], "age": [50, 31, 24], "gender": ["F", "", "M"],
                  "email": ["x", "y", "z"]}).to_csv(tmp_path / "users.csv", index=False)
    cfg = DataConfig(name="t", format="csv", path=str(tmp_path / "events.csv"), users_path=str(tmp_path / "users.csv"),
                     user_columns={"user": "user_id", "attributes": "age,gender"}, split={"method": "random"})
    ds = load_dataset(cfg)
    assert list(ds.users.columns) == ["user_id", "age", "gender"]       # only the declared attributes
    row = {str(u): i for i, u in enumerate(ds.user_ids)}
    assert ds.users.loc[row["u1"], "age"] == "24" and ds.users.loc[row["u1"], "gender"] == "M"
    masks = ds.user_attribute_masks()
    assert not masks["gender"][row["u3"]] and masks["age"][row["u3"]]
    assert not masks["age"][row["u2"]]                                   # not in the table: all missing
    assert ds.train_data().user_frame is ds.users
