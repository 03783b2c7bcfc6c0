"""``fusionrec data convert`` keeps media files and feature files: the converted folder loads the same."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fusionrec.cli import main
from fusionrec.cli_args import load_description
from fusionrec.data.loading import load_dataset
from fusionrec.data.validate import validate_path


def _folder(root: Path) -> Path:
    src = root / "shop"
    (src / "photos" / "010").mkdir(parents=True)
    ids = ["0108775015", "0108775044", "0110065001"]
    for i in ids[:2]:
        Image.new("RGB", (6, 6), "red").save(src / "photos" / "010" / f"{i}.jpg")
    pd.DataFrame({
        "customer_id": ["c1", "c1", "c2", "c2"], "article_id": [ids[0], ids[1], ids[0], ids[2]],
        "t_dat": ["2018-09-20", "2018-09-21", "2018-09-21", "2018-09-22"],
        "split": ["train", "train", "train", "test"],
    }).to_csv(src / "transactions.csv", index=False)
    pd.DataFrame({"article_id": ids, "prod_name": ["Strap top", "Tee", None], "colour": ["Black", "White", "Red"],
                  "image": [f"photos/{i[:3]}/{i}.jpg" for i in ids]}).to_csv(src / "articles.csv", index=False)
    feats = np.arange(9, dtype=np.float32).reshape(3, 3)
    np.save(src / "text_feat.npy", feats)
    np.save(src / "text_missing.npy", np.array([False, False, True]))
    return src


def test_convert_keeps_media_and_features(tmp_path: Path, capsys) -> None:
    src = _folder(tmp_path)
    out = tmp_path / "converted"
    args = ["data", "convert", str(src / "transactions.csv"), "--out", str(out),
            "--features", "text=text_feat.npy:text", "--item-columns", "attributes=colour"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 media file(s) linked, 0 copied" in printed or "0 media file(s) linked, 2 copied" in printed
    before, report = validate_path(src / "transactions.csv", features={"text": {"path": "text_feat.npy"}},
                                   item_columns={"attributes": "colour"})
    assert not report.fatal

    again = load_dataset(load_description(out))
    assert list(again.item_ids) == list(before.item_ids) and list(again.user_ids) == list(before.user_ids)
    assert again.interactions["split"].tolist() == ["train", "train", "train", "test"]  # the split is kept
    assert again.interactions["timestamp"].tolist() == before.interactions["timestamp"].tolist()
    # media: the files are inside the new folder, the item paths point at them
    assert again.root == out.resolve() or again.root == out
    paths = again.items["image_path"].tolist()
    assert paths == ["photos/010/0108775015.jpg", "photos/010/0108775044.jpg", None]
    for rel in paths[:2]:
        assert (out / rel).read_bytes() == (src / rel).read_bytes()
    assert again.items["text"].tolist() == before.items["text"].tolist() == ["Strap top", "Tee", None]
    # features: same matrix, same kind
    mod = again.modalities["text"]
    assert mod.kind == "text"
    np.testing.assert_array_equal(mod.features, before.modalities["text"].features)
    np.testing.assert_array_equal(mod.mask, before.modalities["text"].mask)
    assert again.items.attrs["roles"]["attributes"] == ["colour"]


def test_convert_writes_the_missing_mask(tmp_path: Path) -> None:
    src = _folder(tmp_path)
    ds, _ = validate_path(src / "transactions.csv",
                          features={"text": {"path": "text_feat.npy", "missing": "text_missing.npy"}})
    from fusionrec.data.convert import convert_dataset

    result = convert_dataset(ds, tmp_path / "out")
    assert np.load(tmp_path / "out" / "text_missing.npy").tolist() == [False, False, True]
    assert result.linked + result.copied == 2
    again = load_dataset(load_description(tmp_path / "out"))
    assert again.modalities["text"].mask.tolist() == [True, True, False]
