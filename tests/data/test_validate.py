"""Unit tests of single validation checks on tiny hand-written files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fusionrec.data.validate import validate_path


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_user_table_unknown_users_and_users_without_interactions(tmp_path: Path) -> None:
    _write(tmp_path, "interactions.csv", "user_id,item_id\nu1,a\nu9,a\nu2,b\n")
    _write(tmp_path, "users.csv", "user_id,age\nu1,30\nu2,40\nu3,50\nu2,41\n")
    ds, report = validate_path(tmp_path)
    assert ds is not None and ds.n_interactions == 3  # a user the table lacks keeps its events
    unknown = report.by_code("unknown_user")[0]
    assert unknown.severity == "warning" and unknown.line == 3 and unknown.column == "user_id"
    assert "'u9'" in unknown.examples[0] and "line 3" in unknown.examples[0]
    assert report.by_code("duplicate_user")[0].line == 5
    assert "user u3" in report.by_code("user_without_interactions")[0].examples
    assert list(ds.user_ids) == ["u1", "u2", "u3", "u9"]  # the table's users first


def test_split_label_and_date_checks(tmp_path: Path) -> None:
    path = _write(tmp_path, "e.csv",
                  "user_id,item_id,label,when,split\n"
                  "1,1,1,2024-01-02,train\n"
                  "1,2,0,2024-01-03,validation\n"
                  "2,1,yes,2024-01-04,test\n"
                  "2,2,1,not a date,test\n"
                  "3,1,1,2024-01-05,holdout\n"
                  "3,2,1,2024-01-06,0\n")
    ds, report = validate_path(path, columns={"timestamp": "when"})
    assert report.by_code("bad_label")[0].line == 4
    assert report.by_code("bad_timestamp")[0].line == 5
    assert report.by_code("bad_split")[0].line == 6
    assert ds.interactions["split"].tolist() == ["train", "valid", "train"]
    assert ds.interactions["label"].tolist() == [1.0, 0.0, 1.0]
    assert ds.interactions["timestamp"].iloc[0] == pytest.approx(1704153600.0)  # 2024-01-02 UTC


def test_mapped_column_missing_is_reported_and_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path, "e.csv", "user_id,item_id,extra\n1,1,x\n2,1,y\n")
    ds, report = validate_path(path, columns={"rating": "stars"})
    assert ds is not None and ds.interactions["rating"].isna().all()
    assert "stars" in report.by_code("missing_column")[0].message
    assert "extra" in report.by_code("extra_columns")[0].message


def test_feature_ids_align_rows_and_mask_mismatch_is_fatal(tmp_path: Path) -> None:
    _write(tmp_path, "interactions.csv", "user_id,item_id\n1,a\n1,b\n2,c\n")
    feats = np.array([[3.0, 3.0], [1.0, 1.0]], dtype=np.float32)  # rows for c and a; b has none
    np.save(tmp_path / "f.npy", feats)
    (tmp_path / "f_ids.txt").write_text("c\na\n")
    ds, report = validate_path(tmp_path, features={"f": {"path": "f.npy", "ids": "f_ids.txt", "kind": "image"}})
    mod = ds.modalities["f"]
    assert mod.mask.tolist() == [True, False, True]
    assert mod.features[ds.item_index("c")].tolist() == [3.0, 3.0]
    np.save(tmp_path / "m.npy", np.zeros(5, dtype=bool))
    np.save(tmp_path / "g.npy", np.ones((3, 2)))
    ds, report = validate_path(tmp_path, features={"g": {"path": "g.npy", "missing": "m.npy"}})
    assert ds is None and report.fatal and "missing-mask has 5 entries" in report.issues[-1].message


def test_mmrec_negative_or_out_of_range_ids(tmp_path: Path) -> None:
    _write(tmp_path, "x.inter", "userID\titemID\tx_label\n0\t0\t0\n0\t1\t1\n-1\t0\t0\n1\t7\t2\n1\t1\t2\n")
    np.save(tmp_path / "text_feat.npy", np.ones((2, 3), dtype=np.float32))
    ds, report = validate_path(tmp_path)
    assert report.format == "mmrec" and ds.n_interactions == 3 and ds.n_items == 2
    assert report.by_code("bad_id")[0].line == 4
    unknown = report.by_code("unknown_item")[0]
    assert unknown.line == 5 and "only 2 rows" in unknown.examples[0]


def test_symlink_loop_and_dotdot_inside_root_is_fine(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    Image.new("RGB", (4, 4), "red").save(tmp_path / "img" / "a.jpg")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    _write(tmp_path, "interactions.csv", "user_id,item_id\n1,a\n1,b\n")
    _write(tmp_path, "items.csv", "item_id,image_path\na,img/../img/a.jpg\nb,loop/x.jpg\n")
    ds, report = validate_path(tmp_path)
    assert ds.items["image_path"].tolist()[0] == "img/../img/a.jpg"
    assert ds.items["image_path"].isna().tolist() == [False, True]
    codes = {i.code for i in report.issues}
    assert "path_outside_root" in codes or "file_missing" in codes


def test_partial_item_table_keeps_every_event_and_masks_the_rest(tmp_path: Path) -> None:
    # a retailer's article export covers only some articles: their events are behaviour all the same
    _write(tmp_path, "transactions.csv", "customer_id,article_id\nc1,0001\nc1,0002\nc2,0003\nc2,0004\nc3,0003\n")
    _write(tmp_path, "articles.csv", "article_id,prod_name\n0001,Top\n")
    np.save(tmp_path / "f.npy", np.ones((1, 2), dtype=np.float32))  # one row per article of the table
    (tmp_path / "img").mkdir()
    for article in ("0001", "0003"):  # photos exist for articles with and without a table row
        Image.new("RGB", (4, 4), "red").save(tmp_path / "img" / f"{article}.png")
    ds, report = validate_path(tmp_path / "transactions.csv", features={"f": {"path": "f.npy", "kind": "text"}},
                               item_columns={"image_path": "img/{article_id}.png"})
    assert ds.n_interactions == 5 and report.ok
    assert list(ds.item_ids) == ["0001", "0002", "0003", "0004"]
    assert ds.items["text"].iloc[0] == "Top" and ds.items["text"].isna().tolist() == [False, True, True, True]
    assert ds.modalities["f"].mask.tolist() == [True, False, False, False]
    assert ds.items["image_path"].iloc[[0, 2]].tolist() == ["img/0001.png", "img/0003.png"]
    assert ds.items["image_path"].iloc[[1, 3]].isna().all()
    missing = report.by_code("file_missing")[0]  # reported per item, also for items only the events name
    # the examples point at the line of the item's first event
    assert missing.count == 2 and missing.examples[0].startswith("transactions.csv line 3") and \
        "img/0002.png" in missing.examples[0]
    unknown = report.by_code("unknown_item")[0]
    assert unknown.severity == "warning" and unknown.count == 3 and "3 item(s) in 4 row(s)" in unknown.message
    assert unknown.examples[0] == "item '0002': first at transactions.csv line 3"
