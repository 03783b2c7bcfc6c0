"""``fusionrec data init``: folders in tmp_path -> fusionrec.yaml with the right roles, which then loads."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from fusionrec.cli import main
from fusionrec.cli_args import load_description
from fusionrec.data.describe import describe_folder
from fusionrec.data.describe_yaml import render_yaml
from fusionrec.data.loading import load_dataset
from fusionrec.data.sniff import frame_stats, interaction_roles, side_roles
from fusionrec.errors import UserError


def _image(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def retail(root: Path, n_customers: int = 30, n_articles: int = 24) -> tuple[list[str], list[str]]:
    """transactions.csv (t_dat dates, hex customers, zero-padded articles), articles.csv for a quarter,
    photos under images/<first 3 digits>/<id>.jpg with two missing."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    customers = [hashlib.sha256(f"c{i}".encode()).hexdigest() for i in range(n_customers)]
    articles = [f"0{108775015 + 7919 * i:09d}" for i in range(n_articles)]
    rows = []
    for c in customers:
        for _ in range(6):
            a = articles[int(rng.integers(n_articles))]
            day = f"2020-09-{int(rng.integers(1, 29)):02d}"
            rows.append((day, c, a, round(float(rng.uniform(0.01, 0.05)), 4), int(rng.integers(1, 3))))
    rows.append(rows[0])  # a repeat purchase, byte-identical
    pd.DataFrame(rows, columns=["t_dat", "customer_id", "article_id", "price", "sales_channel_id"]).to_csv(
        root / "transactions.csv", index=False)
    kinds = ["Dress", "Trousers", "Sweater"]
    described = articles[::4]
    pd.DataFrame({
        "article_id": described,
        "prod_name": [f"{kinds[n % 3]} {a[-3:]}" for n, a in enumerate(described)],
        "product_type_name": [kinds[n % 3] for n in range(len(described))],
        "colour_group_name": ["Red", "Blue"] * (len(described) // 2),
        "detail_desc": [f"A soft {kinds[n % 3].lower()} in washed cotton, number {n}" for n in range(len(described))],
    }).to_csv(root / "articles.csv", index=False)
    for a in articles[2:]:
        _image(root / "images" / a[:3] / f"{a}.jpg")
    return customers, articles


def movielens(root: Path) -> None:
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    pairs = {(u, int(rng.integers(1, 21))) for u in range(1, 21) for _ in range(8)}
    frame = pd.DataFrame(sorted(pairs), columns=["userId", "movieId"])
    frame["rating"] = rng.choice([1.0, 2.5, 4.0, 5.0], len(frame))
    frame["timestamp"] = 881250949 + rng.integers(0, 10_000_000, len(frame))
    frame.to_csv(root / "ratings.csv", index=False)
    pd.DataFrame({"movieId": range(1, 21), "title": [f"Story number {m} (1995)" for m in range(1, 21)],
                  "genres": ["Comedy|Drama", "Action"] * 10}).to_csv(root / "movies.csv", index=False)
    for m in range(1, 21):
        _image(root / "posters" / f"{m}.jpg")


def test_retail_export(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    customers, articles = retail(root)
    desc = describe_folder(root)
    data = desc.data
    assert data["format"] == "csv" and data["path"] == "transactions.csv"
    assert data["columns"] == {"user": "customer_id", "item": "article_id", "timestamp": "t_dat"}
    items = data["item_columns"]
    assert data["items_path"] == "articles.csv" and items["item"] == "article_id"
    assert set(items["text"].split(",")) == {"prod_name", "detail_desc"}
    assert {"product_type_name", "colour_group_name"} <= set(items["attributes"].split(","))
    assert items["image_path"] == "images/{article_id:.3}/{article_id}.jpg"
    assert data["encoders"] == {"text": "minilm", "image": "efficientnet-lite0", "attribute": "attributes"}
    assert data["split"] == {"method": "temporal"}
    report = desc.report()
    assert "t_dat" in report and "parse as dates, e.g. 2020-09" in report
    assert "price" in report and "not used" in report and "repeat" in report

    cfg = load_description(root)  # the in-memory inspection, as `--data` without a fusionrec.yaml
    dataset = load_dataset(cfg)
    ids = {str(i) for i in dataset.item_ids}
    assert ids and ids <= set(articles)  # leading zeros kept: '0108775015', not 108775015
    assert {str(u) for u in dataset.user_ids} <= set(customers)
    assert dataset.has_split


def test_init_writes_a_commented_yaml_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "shop"
    retail(root)
    assert main(["data", "init", str(root)]) == 0
    out = capsys.readouterr().out
    assert "customer_id" in out and "-> user" in out and "wrote" in out
    text = (root / "fusionrec.yaml").read_text()
    assert "# Interactions:" in text and "# not used: price" in text
    parsed = yaml.safe_load(text)
    assert parsed["columns"]["timestamp"] == "t_dat"
    assert parsed["item_columns"]["image_path"] == "images/{article_id:.3}/{article_id}.jpg"

    (root / "fusionrec.yaml").write_text(text + "# my edit\n")
    assert main(["data", "init", str(root)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert (root / "fusionrec.yaml").read_text().endswith("# my edit\n")
    assert main(["data", "init", str(root), "--force", "--name", "hm"]) == 0
    assert yaml.safe_load((root / "fusionrec.yaml").read_text())["name"] == "hm"


def test_movielens_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "ml"
    movielens(root)
    assert main(["data", "init", str(root)]) == 0
    capsys.readouterr()
    data = yaml.safe_load((root / "fusionrec.yaml").read_text())
    assert data["columns"] == {"user": "userId", "item": "movieId", "timestamp": "timestamp", "rating": "rating"}
    assert data["items_path"] == "movies.csv"
    assert data["item_columns"]["image_path"] == "posters/{movieId}.jpg"
    assert "title" in data["item_columns"]["text"].split(",")
    dataset = load_dataset(load_description(root))
    assert dataset.interactions["rating"].notna().all()
    assert dataset.items["image_path"].notna().all()  # every poster found through the pattern


def test_mmrec_folder(tmp_path: Path) -> None:
    root = tmp_path / "baby"
    root.mkdir()
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"userID": np.repeat(np.arange(12), 5), "itemID": rng.integers(0, 10, 60)})
    frame = frame.drop_duplicates().reset_index(drop=True)
    last = frame.groupby("userID").cumcount(ascending=False)
    frame["x_label"] = np.select([last == 0, last == 1], [2, 1], 0)
    frame.to_csv(root / "baby.inter", sep="\t", index=False)
    np.save(root / "text_feat.npy", rng.normal(size=(10, 4)).astype(np.float32))
    np.save(root / "image_feat.npy", rng.normal(size=(10, 6)).astype(np.float32))
    desc = describe_folder(root)
    assert desc.layout == "mmrec" and desc.data["format"] == "mmrec" and desc.data["path"] == "baby.inter"
    assert desc.data["columns"]["split"] == "x_label" and desc.data["split"] == {"method": "predefined"}
    assert desc.data["features"]["text"] == {"path": "text_feat.npy", "kind": "text"}
    assert desc.data["features"]["image"]["kind"] == "image"
    (root / "fusionrec.yaml").write_text(render_yaml(desc))
    dataset = load_dataset(load_description(root))
    assert set(dataset.modalities) == {"text", "image"} and dataset.has_split


def test_recbole_folder(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += [f"u{u}\t{i:05d}\t4\t{1500000000 + 7 * u + i}" for u in range(10) for i in range(u % 3, 12, 2)]
    (root / "shop.inter").write_text("\n".join(lines) + "\n")
    item_lines = ["item_id:token\ttitle:token_seq\tcategory:token"]
    item_lines += [f"{i:05d}\twool jumper number {i}\t{['knit', 'denim'][i % 2]}" for i in range(12)]
    (root / "shop.item").write_text("\n".join(item_lines) + "\n")
    desc = describe_folder(root)
    assert desc.layout == "recbole"
    assert desc.data["item_columns"] == {"item": "item_id", "text": "title", "attributes": "category"}
    assert desc.data["encoders"] == {"text": "minilm", "attribute": "attributes"}
    (root / "fusionrec.yaml").write_text(render_yaml(desc))
    dataset = load_dataset(load_description(root))
    assert "00000" in {str(i) for i in dataset.item_ids}  # token ids stay strings


def test_labels_splits_and_users(tmp_path: Path) -> None:
    root = tmp_path / "clicks"
    root.mkdir()
    n = 60
    pd.DataFrame({
        "visitor_id": [f"v{i % 12}" for i in range(n)],
        "product_id": [f"p{(i * 7) % 15}" for i in range(n)],
        "clicked": [i % 3 != 0 for i in range(n)],
        "fold": [["train", "train", "valid", "test"][i % 4] for i in range(n)],
        "when": pd.date_range("2021-01-01", periods=n, freq="h").strftime("%d/%m/%Y %H:%M"),
    }).assign(clicked=lambda f: f.clicked.astype(int)).to_parquet(root / "events.parquet")
    pd.DataFrame({"visitor_id": [f"v{i}" for i in range(12)], "age_band": ["18-25", "26-40"] * 6}).to_csv(
        root / "users.csv", index=False)
    data = describe_folder(root).data
    assert data["format"] == "parquet"
    assert data["columns"] == {"user": "visitor_id", "item": "product_id", "split": "fold", "timestamp": "when",
                               "label": "clicked"}
    assert data["split"] == {"method": "predefined"}
    assert data["users_path"] == "users.csv"
    assert data["user_columns"] == {"user": "visitor_id", "attributes": "age_band"}
    assert "items_path" not in data and data["encoders"] == {}


def test_undecidable_columns_are_todos(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "odd"
    root.mkdir()
    pd.DataFrame({"a": ["x", "y", "x"], "b": ["1", "2", "3"], "flag": [0, 1, 1]}).to_csv(root / "log.csv", index=False)
    desc = describe_folder(root)
    assert desc.blocking and any("user id" in b for b in desc.blocking)
    text = render_yaml(desc)
    assert "# TODO:" in text and "columns.user" in text
    assert main(["data", "init", str(root)]) == 0  # written, with the TODOs for the user to decide
    out = capsys.readouterr().out
    assert "TODO" in out and "TODO line(s)" in out
    with pytest.raises(UserError, match="user"):
        load_dataset(load_description(root))


def test_bare_customer_and_product_columns_are_ids(tmp_path: Path) -> None:
    """Exports often name the id columns by the bare word ('customer', 'Product'), no _id suffix."""
    root = tmp_path / "shop"
    root.mkdir()
    pd.DataFrame({"customer": ["C01", "C02", "C01"], "Product": ["007", "008", "008"],
                  "date": ["2025-01-02", "2025-01-03", "2025-02-01"]}).to_parquet(root / "events.parquet")
    desc = describe_folder(root)
    assert not desc.blocking
    data = yaml.safe_load(render_yaml(desc))
    assert data["columns"]["user"] == "customer" and data["columns"]["item"] == "Product"
    assert data["columns"]["timestamp"] == "date"


def test_no_tables_at_all(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notes.md").write_text("hello")
    assert main(["data", "init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no interaction table" in err and "interactions.csv" in err
    assert not (tmp_path / "fusionrec.yaml").exists()
    assert main(["data", "init", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("values", [
    ["2020-09-01", "2020-09-02", "2020-10-11"],
    ["01/09/2020 10:00", "02/09/2020 11:30", "15/10/2020 08:05"],
    ["Sep 1, 2020", "Oct 12, 2020", "Jan 3, 2021"],
    ["2020-09-01T10:00:00Z", "2020-09-02T11:30:00+02:00", "2020-10-11T00:00:00Z"],
])
def test_dates_in_common_forms_are_timestamps(values: list[str]) -> None:
    frame = pd.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["1", "2", "3"], "when": values})
    guesses = interaction_roles(frame_stats(frame), "user_id", "item_id", "interactions")
    assert [(g.column, g.role) for g in guesses] == [("when", "timestamp")]
    assert "100% parse as dates" in guesses[0].reason


def test_content_decides_what_names_do_not() -> None:
    frame = pd.DataFrame({
        "user_id": list("abcdef"), "item_id": list("123456"),
        "event_ts": ["1600000000", "1600000500", "1600001000", "1600002000", "1600003000", "1600004000"],
        "stars_given": ["1", "5", "3", "4", "2", "5"],
        "is_return": ["0", "1", "0", "0", "1", "0"],
        "phase": ["train", "train", "valid", "test", "train", "train"],
        "store": ["north", "south", "north", "north", "south", "north"],
    })
    roles = {g.column: (g.role, g.todo) for g in interaction_roles(frame_stats(frame), "user_id", "item_id", "x")}
    assert roles["event_ts"] == ("timestamp", False) and roles["stars_given"] == ("rating", False)
    assert roles["phase"] == ("split", False) and roles["store"] == ("not used", False)
    assert roles["is_return"] == (None, True)  # 0/1 but not named like a label: the user decides


def test_item_columns_by_content() -> None:
    frame = pd.DataFrame({
        "sku": [f"s{i}" for i in range(8)],
        "blurb": [f"a warm knitted jumper with {i} buttons and a collar" for i in range(8)],
        "colour": ["red", "blue"] * 4, "price": [str(9.5 + i) for i in range(8)],
        "photo_url": [f"https://cdn.example.com/{i}.jpg" for i in range(8)],
        "thumb": [f"thumbs/{i}.webp" for i in range(8)], "ean": [f"40{i:011d}" for i in range(8)],
    })
    roles = {(g.column, g.role): g for g in side_roles(frame_stats(frame), "sku", "items")}
    assert ("blurb", "text") in roles and ("colour", "attribute") in roles and ("price", "attribute") in roles
    assert ("thumb", "image_path") in roles
    assert roles[("photo_url", None)].todo and "download" in roles[("photo_url", None)].reason
    assert ("ean", "not used") in roles


@pytest.mark.shared_data
def test_shared_folders_read_like_their_presets(shared_data: Path) -> None:
    """On the real ml100k and lastfm2k folders, data init finds what the hand-written presets say."""
    ml = describe_folder(shared_data / "ml100k").data
    assert ml["columns"] == {"user": "user_id", "item": "item_id", "timestamp": "timestamp", "rating": "rating"}
    assert ml["items_path"] == "items.csv" and ml["item_columns"]["image_path"] == "images/{item_id}.jpg"
    assert {"title", "genres", "overview"} <= set(ml["item_columns"]["text"].split(","))
    assert ml["users_path"] == "users.csv"
    lfm = describe_folder(shared_data / "lastfm2k").data
    assert lfm["format"] == "mmrec" and lfm["split"] == {"method": "predefined"}
    assert {spec["kind"] for spec in lfm["features"].values()} == {"text", "audio"}
    assert lfm["item_columns"]["text"] == "name,tags" and "text" not in lfm["encoders"]


def test_ids_no_name_gives_away_are_found_by_content(tmp_path: Path) -> None:
    """A German export: the item column holds the article table's keys, the user column is the
    remaining id that repeats; quantities, prices written 12,34 and dates are not ids."""
    root = tmp_path / "laden"
    root.mkdir()
    rng = np.random.default_rng(0)
    n = 300
    pd.DataFrame({
        "Kundennummer": [f"K{rng.integers(40):03d}" for _ in range(n)],
        "Artikelnummer": [f"{rng.integers(60):05d}" for _ in range(n)],
        "Bestelldatum": [f"{rng.integers(1, 28):02d}.0{rng.integers(1, 9)}.2025" for _ in range(n)],
        "Menge": rng.integers(1, 4, size=n),
        "Preis": [f"{rng.integers(1, 9)},{rng.integers(0, 99):02d}" for _ in range(n)],
    }).to_csv(root / "bestellungen.csv", sep=";", index=False)
    pd.DataFrame({"Artikelnummer": [f"{i:05d}" for i in range(60)],
                  "Beschreibung": [f"Ein schönes Ding aus Holz Nummer {i}" for i in range(60)]}
                 ).to_csv(root / "artikel.csv", sep=";", index=False)
    desc = describe_folder(root)
    assert not desc.blocking
    data = yaml.safe_load(render_yaml(desc))
    assert data["columns"]["user"] == "Kundennummer" and data["columns"]["item"] == "Artikelnummer"
    assert data["columns"]["timestamp"] == "Bestelldatum"
    assert any("check it" in g.reason for g in desc.guesses if g.column == "Kundennummer")
    assert main(["data", "init", str(root)]) == 0
    dataset = load_dataset(load_description(root))
    assert dataset.n_users == 40 and dataset.item_ids[0].startswith("0")
