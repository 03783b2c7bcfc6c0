"""Readers on every shared dataset, the tolerant raw parser, and RecBole atomic files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.loading import load_preset
from fusionrec.data.readers import (
    read_mmrec,
    read_raw,
    read_recbole,
    read_table,
    write_recbole,
)
from fusionrec.errors import UserError


# ---------------------------------------------------------------------- shared datasets
def test_ml100k_csv_with_items_and_images(shared_data: Path) -> None:
    root = shared_data / "ml100k"
    ds = read_table(root / "interactions.csv", items_path=root / "items.csv",
                    item_columns={"item": "item_id", "text": "title,overview", "image_path": "images/{item_id}.jpg"})
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (943, 1682, 100000)
    assert ds.interactions["rating"].between(1, 5).all() and ds.interactions["timestamp"].notna().all()
    assert not ds.has_split
    # ids are the MovieLens integers, items in item-table order
    assert ds.item_ids[0] == 1 and ds.user_index(196) >= 0
    first = ds.interactions.iloc[0]
    assert (ds.user_ids[first["user"]], ds.item_ids[first["item"]], first["rating"]) == (196, 242, 3.0)
    items = ds.items
    assert items.loc[0, "text"].startswith("Toy Story (1995). Led by Woody")
    assert items["image_path"].notna().sum() == 1663       # 19 posters are missing
    assert items["text"].notna().sum() == 1682              # every item has a title


def test_ml100k_mmrec_reference_split_and_missing_image_mask(shared_data: Path) -> None:
    folder = shared_data / "ml100k" / "mmrec"
    ds = read_mmrec(folder)
    assert (ds.n_users, ds.n_items) == (943, 1682)
    assert ds.interactions["split"].value_counts().to_dict() == {"train": 80000, "valid": 9988, "test": 10012}
    missing = np.load(folder / "image_missing.npy")
    image = ds.modalities["image"]
    assert image.kind == "image" and image.dim == 1280
    assert (image.mask == ~missing).all() and (~image.mask).sum() == 19
    # the mean-vector placeholder rows become zeros + mask False, not a real row
    assert not image.features[missing].any()
    raw = np.load(folder / "image_feat.npy")
    assert np.allclose(image.features[~missing], raw[~missing])
    text = ds.modalities["text"]
    assert text.kind == "text" and text.mask.all() and np.allclose(text.features, np.load(folder / "text_feat.npy"))
    # MMRec ids: internal j == itemID j
    assert list(ds.item_ids[:3]) == [0, 1, 2]


def test_ml100k_mmrec_preset_maps_item_table_through_id_map(shared_data: Path) -> None:
    ds = load_preset("ml100k-mmrec")
    imap = pd.read_csv(shared_data / "ml100k" / "mmrec" / "i_id_mapping.csv", sep="\t")
    movielens_of = dict(zip(imap["itemID"], imap["item_id"]))
    items = ds.items
    assert (items["item_id"].to_numpy() == np.arange(1682)).all()
    assert all(int(items.loc[j, "source_item_id"]) == movielens_of[j] for j in (0, 100, 1681))
    # poster files and the image_missing mask agree on which items have no poster
    assert (items["image_path"].notna().to_numpy() == ds.modalities["image"].mask).all()


def test_lastfm2k_audio_float64_becomes_float32(shared_data: Path) -> None:
    folder = shared_data / "lastfm2k"
    ds = read_mmrec(folder)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (1858, 1425, 56345)
    assert ds.interactions["split"].value_counts().to_dict() == {"train": 44327, "test": 7219, "valid": 4799}
    kinds = {m.name: (m.kind, m.dim, m.features.dtype) for m in ds.modalities.values()}
    assert kinds == {"all_minilm_l6_v2": ("text", 384, np.float32), "vggish": ("audio", 128, np.float32),
                     "whisper": ("audio", 512, np.float32)}
    raw = np.load(folder / "vggish.npy")
    assert raw.dtype == np.float64
    assert np.allclose(ds.modalities["vggish"].features, raw.astype(np.float32))


def test_amazon_baby_mmrec_ids(shared_data: Path) -> None:
    ds = read_mmrec(shared_data / "amazon-baby")
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (19445, 7050, 160792)
    assert ds.interactions["split"].value_counts().to_dict() == {"train": 119674, "valid": 20559, "test": 20559}
    train_items = set(ds.split_frame("train")["item"])
    assert {1940, 2461}.isdisjoint(train_items) and {1940, 2461} <= set(ds.interactions["item"])
    assert not ds.modalities


def test_ml1m_predefined_cold_start_split(shared_data: Path) -> None:
    ds = load_preset("ml1m")
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (6018, 3018, 933517)
    counts = ds.interactions["split"].value_counts().to_dict()
    assert counts == {"train": 529952, "valid": 106695, "test": 296870}
    inter = ds.interactions
    train_items = set(inter.loc[inter["split"] == "train", "item"])
    assert train_items.isdisjoint(inter.loc[inter["split"] != "train", "item"])
    assert ds.items["image_path"].notna().sum() == 3013
    assert ds.interactions["rating"].isna().all() and ds.interactions["timestamp"].isna().all()


# ---------------------------------------------------------------------- tolerant parsing
def test_raw_csv_line_numbers_with_quotes_blanks_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('a,b,c\n1,2,3\n4,5\n\n6,7,8,9\n"x\ny",1,2\n10,,12\n')
    raw = read_raw(path)
    assert list(raw.line) == [2, 6, 8]
    assert raw.frame.loc[1, "a"] == "x\ny" and pd.isna(raw.frame.loc[2, "b"])
    assert raw.malformed["line"].tolist() == [3, 5]
    assert raw.malformed["detail"].tolist() == ["expected 3 fields, got 2", "expected 3 fields, got 4"]


def test_raw_sniffs_delimiter_and_falls_back_to_latin1(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("user;item;title\n1;2;caf\xe9\n".encode("latin-1"))
    raw = read_raw(path)
    assert raw.delimiter == ";" and raw.encoding == "latin-1" and raw.frame.loc[0, "title"] == "café"


def test_jsonl_and_parquet_give_the_same_dataset(tmp_path: Path) -> None:
    frame = pd.DataFrame({"uid": [3, 1, 3, 2], "iid": [10, 11, 12, 10], "stars": [5.0, 3.0, 4.0, 1.0]})
    frame.to_parquet(tmp_path / "x.parquet")
    lines = [frame.iloc[[k]].to_json(orient="records", lines=True).strip() for k in range(len(frame))]
    lines.insert(2, "{not json")
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n")
    cols = {"user": "uid", "item": "iid", "rating": "stars"}
    a = read_table(tmp_path / "x.parquet", columns=cols)
    b = read_table(tmp_path / "x.jsonl", columns=cols)
    for ds in (a, b):
        assert list(ds.user_ids) == [1, 2, 3] and list(ds.item_ids) == [10, 11, 12]
        assert ds.interactions["rating"].tolist() == [5.0, 3.0, 4.0, 1.0]
    from fusionrec.data.validate import validate_path

    _, report = validate_path(tmp_path / "x.jsonl", columns=cols)
    issue = report.by_code("malformed_line")[0]
    assert issue.line == 3 and "invalid JSON" in issue.examples[0]


def test_string_ids_stay_strings(tmp_path: Path) -> None:
    (tmp_path / "i.csv").write_text("user_id,item_id\nA1,007\nA2,B00X\nA1,B00X\n")
    ds = read_table(tmp_path / "i.csv")
    assert list(ds.item_ids) == ["007", "B00X"] and list(ds.user_ids) == ["A1", "A2"]


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found") as info:
        read_table(tmp_path / "absent.csv")
    assert "absent.csv" in info.value.message and "fix:" in info.value.message


# ---------------------------------------------------------------------- RecBole
def test_recbole_atomic_files(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\ti1\t4\t100\nu1\ti2\t5\t200\nu2\ti1\t3\t150\nu2\ti3\tbad\t300\n")
    (folder / "toy.item").write_text(
        "item_id:token\tmovie_title:token_seq\tgenre:token_seq\tyear:token\n"
        "i1\tToy Story\tAnimation Comedy\t1995\ni2\tHeat\tAction Crime\t1995\ni3\tCasino\tCrime Drama\t1995\n")
    ds = read_recbole(folder)
    assert list(ds.user_ids) == ["u1", "u2"] and list(ds.item_ids) == ["i1", "i2", "i3"]
    assert ds.n_interactions == 3                              # the 'bad' rating row is quarantined
    assert ds.items.loc[0, "text"] == "Toy Story. Animation Comedy"
    assert ds.items.attrs["roles"]["attributes"] == ["year"]
    from fusionrec.data.validate import validate_path

    _, report = validate_path(folder)
    assert report.format == "recbole" and report.by_code("bad_rating")[0].line == 5


def test_recbole_round_trip_of_shared_dataset(shared_data: Path, tmp_path: Path) -> None:
    src = load_preset("lastfm2k")
    write_recbole(src, tmp_path / "rb", "lfm")
    assert (tmp_path / "rb" / "lfm.train.inter").is_file()
    back = read_recbole(tmp_path / "rb")
    assert back.n_interactions == src.n_interactions

    def events(ds):
        return set(zip(ds.user_ids[ds.interactions["user"]].tolist(), ds.item_ids[ds.interactions["item"]].tolist(),
                       ds.interactions["split"].tolist()))

    assert events(back) == events(src)
    names = dict(zip(back.items["item_id"].tolist(), back.items["name"].tolist()))
    assert names[0] == src.items.loc[0, "name"]


def test_recbole_round_trip_keeps_leading_zero_ids(tmp_path) -> None:
    from fusionrec.data.validate import validate_path

    (tmp_path / "interactions.csv").write_text("customer_id,article_id,count\nc1,0108775015,2\nc2,0010,1\n")
    ds, report = validate_path(tmp_path / "interactions.csv", columns={"weight": "count"})
    assert report.by_code("unused_role")[0].severity == "info"
    write_recbole(ds, tmp_path / "rb", "shop")
    again = read_recbole(tmp_path / "rb")
    assert sorted(again.item_ids) == ["0010", "0108775015"] and sorted(again.user_ids) == ["c1", "c2"]
