"""Dataset.from_frames and the file validator build datasets through one builder, so they agree."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fusionrec.data.dataset import Dataset
from fusionrec.data.validate import validate_path
from fusionrec.errors import UserError


def _frames(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    (root / "img").mkdir(parents=True)
    Image.new("RGB", (4, 4), "green").save(root / "img" / "007.jpg")
    inter = pd.DataFrame({
        "user_id": ["u2", "u1", "u1", "u2"],
        "item_id": ["007", "010", "007", "007"],
        "rating": [4.0, 3.5, 5.0, 4.0],
        "timestamp": ["2024-01-02T10:00:00Z", "2024-01-03", "2024-01-04T00:00:00+01:00", "2024-01-05"],
    })
    items = pd.DataFrame({
        "item_id": ["007", "010", "099"],
        "title": ["Lamp", "Desk", "Chair"],
        "overview": ["warm light", None, "oak"],
        "image_path": ["img/007.jpg", "img/010.jpg", None],
    })
    return inter, items


def test_frames_and_files_build_the_same_dataset(tmp_path: Path) -> None:
    inter, items = _frames(tmp_path)
    inter.to_csv(tmp_path / "interactions.csv", index=False)
    items.to_csv(tmp_path / "items.csv", index=False)
    from_files, report = validate_path(tmp_path)
    assert not report.fatal, report.to_text()
    from_frames = Dataset.from_frames("x", inter, items, rating_col="rating", timestamp_col="timestamp",
                                      root=tmp_path)
    assert list(from_frames.user_ids) == list(from_files.user_ids)
    assert list(from_frames.item_ids) == list(from_files.item_ids) == ["007", "010", "099"]
    pd.testing.assert_frame_equal(from_frames.interactions, from_files.interactions)
    # ISO timestamps are parsed in both (they used to become NaN in from_frames)
    assert from_frames.interactions["timestamp"].notna().all()
    assert from_frames.interactions["timestamp"].iloc[2] == pytest.approx(1704322800.0)  # 2024-01-04 UTC-1h
    for col in ("text", "image_path"):
        assert from_frames.items[col].tolist() == from_files.items[col].tolist()
    assert from_frames.items["text"].tolist() == ["Lamp. warm light", "Desk", "Chair. oak"]
    assert from_frames.items["image_path"].tolist() == ["img/007.jpg", None, None]  # the missing file is masked


def test_from_frames_refuses_rows_validation_would_set_aside(tmp_path: Path) -> None:
    inter, items = _frames(tmp_path)
    inter.loc[1, "item_id"] = "404"
    with pytest.raises(UserError) as err:
        Dataset.from_frames("x", inter, items)
    assert "unknown_item" in err.value.what and "<interactions> row 2" in err.value.where
    inter.loc[1, "item_id"] = "010"
    inter.loc[1, "rating"] = float("nan")  # a mapped rating must hold a value
    with pytest.raises(UserError, match="bad_rating"):
        Dataset.from_frames("x", inter, items, rating_col="rating")
    with pytest.raises(UserError):
        Dataset.from_frames("x", inter.rename(columns={"user_id": "who"}), items, user_col="user_id")


def test_from_frames_int_ids_and_items_without_events() -> None:
    inter = pd.DataFrame({"u": [3, 1, 3], "i": np.array([20, 10, 10], dtype=np.int64)})
    ds = Dataset.from_frames("ints", inter, pd.DataFrame({"i": [10, 20, 30]}), user_col="u", item_col="i")
    assert [int(v) for v in ds.item_ids] == [10, 20, 30] and [int(v) for v in ds.user_ids] == [1, 3]
    lean = Dataset.from_frames("ints", inter, pd.DataFrame({"i": [10, 20, 30]}), user_col="u", item_col="i",
                               keep_items_without_interactions=False)
    assert [int(v) for v in lean.item_ids] == [10, 20]
