"""Acceptance: a deliberately broken copy of ml100k is validated; every problem is named with its
location, bad rows are quarantined, every good row survives, and fatal problems exit non-zero."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.cli import main
from fusionrec.config import DataConfig
from fusionrec.data.validate import load_validated, validate_path

N_ITEMS = 300
N_GOOD = 5000


def _build_broken(shared: Path, dst: Path) -> dict:
    """Write a broken ml100k subset; return the expected problems with their line numbers."""
    src = shared / "ml100k"
    dst.mkdir(parents=True)
    (dst / "images").mkdir()
    items = pd.read_csv(src / "items.csv").iloc[:N_ITEMS].copy()
    items["image_path"] = [f"images/{i}.jpg" for i in items["item_id"]]
    items.loc[items["item_id"] == 5, "image_path"] = "../../etc/passwd"
    items.loc[items["item_id"] == 6, "image_path"] = "/etc/passwd"
    items.loc[items["item_id"] == 8, "image_path"] = "images/evil.jpg"   # symlink escaping the root
    for i in items["item_id"]:
        if i in (5, 6, 7, 8):  # 7: the file is simply missing
            continue
        poster = src / "images" / f"{i}.jpg"
        if poster.exists():
            shutil.copyfile(poster, dst / "images" / f"{i}.jpg")
    os.symlink("/etc/passwd", dst / "images" / "evil.jpg")
    items = pd.concat([items, items[items["item_id"] == 9]])  # duplicate item row (last line)
    items.to_csv(dst / "items.csv", index=False)

    inter = pd.read_csv(src / "interactions.csv")
    inter = inter[inter["item_id"] <= N_ITEMS].head(N_GOOD)
    good_lines = [f"{u},{i},{r},{t}" for u, i, r, t in inter.itertuples(index=False)]
    injected = [
        (100, "1,2,3", "malformed_line"),                 # too few fields
        (200, "1,2,3,4,5", "malformed_line"),             # too many fields
        (400, "10,5,abc,881250949", "bad_rating"),
        (500, "10,5,4,yesterday", "bad_timestamp"),
        (600, ",5,4,881250949", "missing_id"),
    ]
    repeat_pos = 700  # a repeat of the first event: behaviour, kept and reported as information
    unknown_pos = 300  # an item items.csv lacks: kept as an item without side data, reported
    lines = list(good_lines)
    expected = {}
    unknown = "10,99999,4,881250949"
    for pos, text, reason in sorted([*injected, (repeat_pos, good_lines[0], ""), (unknown_pos, unknown, "")],
                                    reverse=True):
        lines.insert(pos, text)
    for pos, text, reason in injected:
        # header is line 1, so list index k is file line k + 2
        expected.setdefault(reason, []).append(lines.index(text, pos) + 2)
    (dst / "interactions.csv").write_text("user_id,item_id,rating,timestamp\n" + "\n".join(lines) + "\n")

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(N_ITEMS, 16)).astype(np.float32)
    feats[3, 5] = np.nan   # item 4 (row 3)
    feats[10, :] = np.inf  # item 11 (row 10)
    np.save(dst / "text_feat.npy", feats)
    return {"interactions": expected, "good": set(map(tuple, inter.to_numpy().tolist())),
            "repeat_line": lines.index(good_lines[0], repeat_pos) + 2,
            "unknown_line": lines.index(unknown, unknown_pos) + 2}


@pytest.fixture(scope="module")
def broken(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("broken") / "ml100k_broken"
    return folder, _build_broken(shared_data, folder)


def test_cli_names_every_problem_and_exits_zero(broken, tmp_path, capsys) -> None:
    folder, expected = broken
    qdir = tmp_path / "q"
    rc = main(["data", "validate", str(folder), "--quarantine-dir", str(qdir),
               "--features", "text=text_feat.npy:text", "--examples", "10"])
    out = capsys.readouterr().out
    assert rc == 0, out
    for reason, lines in expected["interactions"].items():
        assert reason in out
        for line in lines:
            assert f"interactions.csv line {line}" in out, (reason, line, out)
    assert "path_outside_root" in out and "items.csv line 6" in out   # item 5 is on line 6
    assert "path_absolute" in out and "items.csv line 7" in out
    assert "file_missing" in out and "items.csv line 8" in out
    assert "items.csv line 9" in out                                   # the escaping symlink
    assert "duplicate_item" in out and f"items.csv line {N_ITEMS + 2}" in out
    assert "nonfinite_feature" in out and "text_feat.npy row 3" in out and "text_feat.npy row 10" in out
    assert "INFO repeated_interaction" in out and f"interactions.csv line {expected['repeat_line']}" in out
    assert "WARNING unknown_item" in out and f"interactions.csv line {expected['unknown_line']}" in out

    q = pd.read_csv(qdir / "quarantine.csv")
    inter_q = q[q["file"].str.endswith("interactions.csv")]
    got = {r: sorted(g["line"].tolist()) for r, g in inter_q.groupby("reason")}
    assert got == {r: sorted(v) for r, v in expected["interactions"].items()}
    assert set(inter_q["action"]) == {"dropped"}
    # the quarantine keeps the row content, e.g. the non-numeric rating line
    assert "10,5,abc,881250949" in set(inter_q["content"])
    report = json.loads((qdir / "report.json").read_text())
    assert report["quarantined_per_reason"]["malformed_line"] == 2
    assert report["quarantined_per_reason"]["nonfinite_feature"] == 2
    assert report["stats"]["rows_good"] == N_GOOD + 2  # the repeated event and the unknown item's are kept
    assert report["stats"]["rows_read"] == N_GOOD + 7
    assert not report["fatal"]


def test_load_through_validation_keeps_every_good_row(broken, tmp_path) -> None:
    folder, expected = broken
    cfg = DataConfig(name="broken", format="csv", path=str(folder / "interactions.csv"),
                     items_path=str(folder / "items.csv"),
                     features={"text": {"path": str(folder / "text_feat.npy"), "kind": "text"}},
                     split={"method": "random", "seed": 1})
    ds, _ = load_validated(cfg, quarantine_dir=tmp_path / "q")
    assert ds.n_interactions == N_GOOD + 2  # every good row, the repeated event included
    rows = {(int(ds.user_ids[u]), int(ds.item_ids[i]), int(r), int(t))
            for u, i, r, t in ds.interactions[["user", "item", "rating", "timestamp"]].itertuples(index=False)}
    assert rows == expected["good"] | {(10, 99999, 4, 881250949)}
    # duplicate item row dropped, the other 300 kept (cold ones too), then the item only the events name
    assert ds.n_items == N_ITEMS + 1 and int(ds.item_ids[-1]) == 99999
    paths = dict(zip(ds.items["item_id"], ds.items["image_path"]))
    for bad in (5, 6, 7, 8):
        assert pd.isna(paths[bad])
    assert paths[1] == "images/1.jpg"
    mask = ds.modalities["text"].mask
    assert not mask[ds.item_index(4)] and not mask[ds.item_index(11)] and mask.sum() == N_ITEMS - 2
    assert not mask[ds.item_index(99999)]  # no feature row for an item the table lacks
    assert np.isfinite(ds.modalities["text"].features).all()
    assert ds.has_split and (tmp_path / "q" / "quarantine.csv").is_file()


def test_fatal_problems_exit_nonzero_with_one_message(broken, tmp_path, capsys) -> None:
    folder, _ = broken
    # 1) no user column
    bad = tmp_path / "nouser"
    bad.mkdir()
    text = (folder / "interactions.csv").read_text().replace("user_id,", "customer,", 1)
    (bad / "interactions.csv").write_text(text)
    rc = main(["data", "validate", str(bad / "interactions.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "no user column" in err and "interactions.csv line 1" in err and "fix:" in err
    assert "Traceback" not in err
    # ... which the column mapping fixes
    assert main(["data", "validate", str(bad / "interactions.csv"), "--columns", "user=customer"]) == 0
    capsys.readouterr()
    # 2) missing file
    rc = main(["data", "validate", str(tmp_path / "nope.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "not found" in err and "nope.csv" in err
    # 3) feature rows do not match the items
    np.save(tmp_path / "short.npy", np.zeros((10, 4), dtype=np.float32))
    rc = main(["data", "validate", str(folder), "--features", f"t={tmp_path / 'short.npy'}:text"])
    err = capsys.readouterr().err
    assert rc == 2 and "10 rows" in err and f"{N_ITEMS + 1} items" in err and "short.npy" in err
    # 4) zero good rows
    (tmp_path / "allbad.csv").write_text("user_id,item_id,rating\n1,2,x\n3,4\n")
    rc = main(["data", "validate", str(tmp_path / "allbad.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "no usable interaction rows" in err
    # 5) not a Parquet file
    (tmp_path / "fake.parquet").write_text("user_id,item_id\n1,2\n")
    rc = main(["data", "validate", str(tmp_path / "fake.parquet")])
    err = capsys.readouterr().err
    assert rc == 2 and "Parquet" in err and "Traceback" not in err


def test_subprocess_validate(broken, tmp_path) -> None:
    folder, expected = broken
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run(
        [sys.executable, "-m", "fusionrec.cli", "data", "validate", str(folder), "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert report["stats"]["rows_good"] == N_GOOD + 2  # the repeated event and the unknown item's are kept
    codes = {i["code"] for i in report["issues"]}
    assert set(expected["interactions"]) <= codes


def test_validate_path_report_api(broken) -> None:
    folder, expected = broken
    ds, report = validate_path(folder)
    assert ds is not None and not report.fatal and not report.ok
    assert report.counts["malformed_line"] == 2
    issue = report.by_code("bad_rating")[0]
    line = expected["interactions"]["bad_rating"][0]
    assert issue.column == "rating" and issue.line == line and f"interactions.csv line {line}" in issue.where
