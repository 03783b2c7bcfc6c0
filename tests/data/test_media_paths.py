"""Media columns under any recognised name, path patterns with format specs, missing and corrupt files."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from fusionrec.cli import main
from fusionrec.data.validate import validate_path
from fusionrec.errors import UserError

IDS = ["0108775015", "0108775044", "0110065001", "0111565001"]


def _shop(tmp_path: Path, image_column: str | None = None) -> Path:
    lines = ["customer_id,article_id"] + [f"c{n % 2},{i}" for n, i in enumerate(IDS)]
    (tmp_path / "transactions.csv").write_text("\n".join(lines) + "\n")
    for i in IDS[:2]:  # a real photo for the first two
        (tmp_path / "images" / i[:3]).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), "blue").save(tmp_path / "images" / i[:3] / f"{i}.jpg")
    (tmp_path / "images" / "011").mkdir(exist_ok=True)
    (tmp_path / "images" / "011" / f"{IDS[2]}.jpg").write_bytes(b"this is not a jpeg")  # corrupt; IDS[3] missing
    header = "article_id,prod_name" + (f",{image_column}" if image_column else "")
    rows = [f"{i},name {i}" + (f",images/{i[:3]}/{i}.jpg" if image_column else "") for i in IDS]
    (tmp_path / "articles.csv").write_text("\n".join([header, *rows]) + "\n")
    return tmp_path / "transactions.csv"


def _check_masks(ds, report) -> None:
    assert ds.items["image_path"].tolist() == [f"images/010/{IDS[0]}.jpg", f"images/010/{IDS[1]}.jpg", None, None]
    corrupt, missing = report.by_code("file_corrupt")[0], report.by_code("file_missing")[0]
    assert corrupt.severity == missing.severity == "warning"
    assert corrupt.line == 4 and missing.line == 5  # the item's line in articles.csv
    assert ds.n_items == 4 and ds.n_interactions == 4  # the items and their events stay


def test_pattern_with_a_format_spec_on_the_id_text(tmp_path: Path) -> None:
    path = _shop(tmp_path)
    ds, report = validate_path(path, item_columns={"image_path": "images/{article_id:.3}/{article_id}.jpg"})
    assert not report.fatal, report.to_text()
    _check_masks(ds, report)
    assert report.stats["image_coverage"] == 0.5


@pytest.mark.parametrize("alias", ["poster", "image", "photo", "image_file"])
def test_any_image_column_alias_becomes_image_path(tmp_path: Path, alias: str) -> None:
    ds, report = validate_path(_shop(tmp_path, alias))
    _check_masks(ds, report)
    assert alias not in ds.items.columns  # it lives on as the standard column


def test_media_folder_is_discovered_without_a_column(tmp_path: Path) -> None:
    pytest.importorskip("fusionrec.data.media")
    ds, report = validate_path(_shop(tmp_path))
    _check_masks(ds, report)
    found = report.by_code("media_discovered")[0]
    assert "images/{article_id:.3}/{article_id}.jpg" in found.message


def test_unknown_column_in_a_pattern_lists_the_columns(tmp_path: Path) -> None:
    path = _shop(tmp_path)
    ds, report = validate_path(path, item_columns={"image_path": "images/{item_id:.3}/{item_id}.jpg"})
    assert ds is None and report.fatal
    with pytest.raises(UserError) as err:
        report.raise_if_fatal()
    assert "['item_id']" in err.value.what and "article_id" in err.value.fix and "prod_name" in err.value.fix


def test_numeric_format_spec_on_text_ids_says_how_to_fix_it(tmp_path: Path) -> None:
    _, report = validate_path(_shop(tmp_path), item_columns={"image_path": "images/{article_id:05d}.jpg"})
    issue = next(i for i in report.issues if i.severity == "fatal")
    assert "does not apply" in issue.message and "{column:0>10}" in issue.fix


def test_cli_text_columns_are_exactly_what_gets_encoded(tmp_path: Path, capsys) -> None:
    (tmp_path / "interactions.csv").write_text("user_id,item_id\nu1,a\nu1,b\nu2,c\n")
    (tmp_path / "items.csv").write_text("item_id,name,blurb,title\na,Lamp,warm light,IGNORED\nb,Desk,,IGNORED\n"
                                        "c,,,IGNORED\nd,Chair,oak,IGNORED\n")
    assert main(["data", "validate", str(tmp_path / "interactions.csv"), "--item-columns", "text=name,blurb"]) == 0
    out = capsys.readouterr().out
    assert "text coverage: 75.0%" in out  # c has neither name nor blurb
    ds, _ = validate_path(tmp_path / "interactions.csv", item_columns={"text": "name,blurb"})
    assert ds.items["text"].tolist() == ["Lamp. warm light", "Desk", None, "Chair. oak"]


def test_cli_reads_the_item_table_beside_the_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "interactions.csv").write_text("user_id,item_id\nu1,a\nu1,zzz\n")
    (tmp_path / "items.csv").write_text("item_id,title\na,Lamp\n")
    assert main(["data", "validate", str(tmp_path / "interactions.csv")]) == 0
    out = capsys.readouterr().out
    assert "unknown_item" in out and "interactions.csv line 3" in out


def test_a_media_pattern_works_without_an_item_table(tmp_path: Path) -> None:
    (tmp_path / "clicks.csv").write_text("visitor_id,sku\nv1,0042\nv2,0043\nv2,0042\n")
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (4, 4), "white").save(tmp_path / "photos" / "0042.jpg")
    ds, report = validate_path(tmp_path / "clicks.csv", item_columns={"image_path": "photos/{sku}.jpg"})
    assert not report.fatal, report.to_text()
    assert list(ds.item_ids) == ["0042", "0043"]
    assert ds.items["image_path"].iloc[0] == "photos/0042.jpg" and ds.items["image_path"].isna().tolist()[1]
    assert report.by_code("file_missing")[0].count == 1


def test_an_empty_media_role_switches_images_off(tmp_path: Path) -> None:
    ds, report = validate_path(_shop(tmp_path, "poster"), item_columns={"image_path": ""})
    assert "image_path" not in ds.items.columns and not report.by_code("file_missing")
    assert "poster" in ds.items.columns  # kept as plain side data


def test_url_media_paths_are_a_warning_with_a_fix(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text("user_id,item_id\nu1,a\nu2,b\n")
    (tmp_path / "items.csv").write_text("item_id,image\na,https://cdn.example.com/a.jpg\nb,\n")
    ds, report = validate_path(tmp_path / "interactions.csv")
    url = report.by_code("path_url")[0]
    assert url.severity == "warning" and url.line == 2 and "download" in url.fix
    assert ds.items["image_path"].isna().all() and ds.n_interactions == 2
