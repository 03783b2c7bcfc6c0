"""discover_pattern: media folders matched to item ids, flat and nested, ids with leading zeros."""
from __future__ import annotations

from pathlib import Path

import pytest

from fusionrec.data.media import discover_pattern, fill_pattern, media_kind, scan_media


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00")


def test_nested_prefix_folders_keep_leading_zeros(tmp_path: Path) -> None:
    ids = ["0108775015", "0108775044", "0110065001", "0111565001", "0120129001"]
    for i in ids[:4]:  # the last article has no photo
        _touch(tmp_path / "images" / i[:3] / f"{i}.jpg")
    pattern, evidence = discover_pattern(tmp_path, ids, "image", "article_id")
    assert pattern == "images/{article_id:.3}/{article_id}.jpg"
    assert "4 of 5 items" in evidence
    # the pattern is a Python format string over the id *string*: the zero stays
    assert fill_pattern(pattern, "article_id", "0108775015") == "images/010/0108775015.jpg"
    assert (tmp_path / fill_pattern(pattern, "article_id", ids[2])).is_file()


def test_flat_folder_and_stray_files(tmp_path: Path) -> None:
    for i in ("1", "2", "10"):
        _touch(tmp_path / "posters" / f"{i}.jpg")
    _touch(tmp_path / "posters" / "logo.png")
    _touch(tmp_path / "posters" / "notes.txt")  # not an image: ignored
    pattern, evidence = discover_pattern(tmp_path, [str(i) for i in range(1, 21)], "image", "movieId")
    assert pattern == "posters/{movieId}.jpg"
    assert "3 of 20 items" in evidence and "1 file(s) there match no item id" in evidence


def test_prefix_folders_with_ids_of_different_lengths(tmp_path: Path) -> None:
    # a folder named exactly like a short id is still the id-prefix layout
    for i in ("7", "71", "712", "8", "85"):
        _touch(tmp_path / "img" / i[:1] / f"{i}.png")
    pattern, _ = discover_pattern(tmp_path, ["7", "71", "712", "8", "85"], "image")
    assert pattern == "img/{item_id:.1}/{item_id}.png"


def test_files_not_named_by_ids_give_no_pattern(tmp_path: Path) -> None:
    for name in ("front", "back", "side"):
        _touch(tmp_path / "photos" / f"{name}.jpg")
    pattern, evidence = discover_pattern(tmp_path, ["a1", "a2"], "image")
    assert pattern is None
    assert "none is named by an item id" in evidence and "'a" in evidence


def test_a_folder_mostly_of_other_files_is_not_the_media_folder(tmp_path: Path) -> None:
    _touch(tmp_path / "assets" / "1.jpg")
    for n in range(5):
        _touch(tmp_path / "assets" / f"banner{n}.jpg")
    pattern, evidence = discover_pattern(tmp_path, ["1", "2"], "image")
    assert pattern is None and "only 1 of 6" in evidence


def test_audio_and_hidden_folders(tmp_path: Path) -> None:
    _touch(tmp_path / "previews" / "t1.mp3")
    _touch(tmp_path / "previews" / "t2.wav")
    _touch(tmp_path / ".cache" / "t3.mp3")  # hidden: never scanned
    assert {m.stem for m in scan_media(tmp_path, "audio")} == {"t1", "t2"}
    pattern, evidence = discover_pattern(tmp_path, ["t1", "t2", "t3"], "audio", "track_id")
    # two extensions cannot share one pattern: the more common one wins, the other is named
    assert pattern in ("previews/{track_id}.mp3", "previews/{track_id}.wav")
    assert "also seen" in evidence
    assert discover_pattern(tmp_path, ["t1"], "image")[0] is None


def test_media_kind_and_bad_kind(tmp_path: Path) -> None:
    assert media_kind("a/B.JPG") == "image" and media_kind("x.flac") == "audio" and media_kind("x.txt") is None
    with pytest.raises(ValueError, match="kind must be one of"):
        scan_media(tmp_path, "video")
