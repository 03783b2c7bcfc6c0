"""Inputs the 20,000-case fuzz run found (FUSIONREC_FUZZ_EXAMPLES=20000): each a located message now."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fusionrec.data.checked_files import read_parquet
from fusionrec.data.validation.values import to_seconds
from fusionrec.errors import UserError


def test_a_date_before_1677_parses_instead_of_overflowing():
    # "170 014400" reads as a date in the year 170: representable in seconds, not in nanoseconds
    secs, bad = to_seconds(pd.Series(["1700000000", "170 014400", "2018-09-20"]))
    assert not bad.any()
    assert secs[0] == 1_700_000_000 and secs[1] < -5e10 and secs[2] == 1_537_401_600


def test_carriage_return_inside_the_header_is_a_located_error(tmp_path: Path):
    path = tmp_path / "events.tsv"
    path.write_bytes(b"\r\titem_id\trating\nu0\ti0\t1.0\n")
    proc = subprocess.run([sys.executable, "-m", "fusionrec", "data", "validate", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "header line cannot be parsed" in proc.stderr and "line 1" in proc.stderr


def test_parquet_with_damaged_pandas_metadata_is_a_user_error(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(pd.DataFrame({"title": ["a", "b"], "price": [1.0, 2.0]}))
    meta = json.loads(table.schema.metadata[b"pandas"])
    for col in meta["columns"]:
        col.pop("pandas_type")
    table = table.replace_schema_metadata({b"pandas": json.dumps(meta).encode()})
    pq.write_table(table, tmp_path / "items.parquet")
    with pytest.raises(UserError, match="not a readable Parquet file"):
        read_parquet(tmp_path / "items.parquet", "rewrite the file")


@pytest.mark.parametrize("upto", [2**70, -1, "12", True])
def test_serve_meta_with_an_impossible_sequence_number_is_a_user_error(tmp_path: Path, upto):
    from fusionrec.serve.loader import SERVE_META, read_serve_meta

    (tmp_path / SERVE_META).write_text(json.dumps({"trained_upto_seq": upto}))
    with pytest.raises(UserError, match="trained_upto_seq"):
        read_serve_meta(tmp_path)
    (tmp_path / SERVE_META).write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        read_serve_meta(tmp_path)


# ---------------------------------------------------------------- second 20,000-case run (random seed)
def _validate(folder: Path, fmt: str) -> tuple[int, str, str]:
    from tests.fuzz.common import assert_clean_exit, run_cli

    code, out, err = run_cli(["data", "validate", str(folder), "--format", fmt, "--json"])
    assert_clean_exit(code, err)
    return code, out, err


def test_a_modality_file_name_longer_than_the_file_system_allows_is_a_user_error(tmp_path: Path):
    from fusionrec.data.checked_files import inside

    with pytest.raises(UserError, match="longer than file systems allow"):
        inside(tmp_path, "x" * 3000 + ".features.npy", "modality 'text'", "save the model again")
    with pytest.raises(UserError, match="longer than file systems allow"):
        inside(tmp_path, "sub/" + "é" * 130 + ".npy", "modality 'text'", "save the model again")  # 260 bytes
    assert inside(tmp_path, "x" * 200 + ".npy", "m", "f") == tmp_path / ("x" * 200 + ".npy")


def test_parquet_timestamps_that_are_all_infinite_are_reported_not_written_into_arrow_memory(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 12
    table = pa.table({"user_id": [f"u{k % 3}" for k in range(n)], "item_id": [f"i{k % 5}" for k in range(n)],
                      "rating": [1.0] * n, "timestamp": [float("inf")] * n})
    pq.write_table(table, tmp_path / "interactions.parquet")
    _, out, _ = _validate(tmp_path, "parquet")
    assert "bad_timestamp" in out


def test_an_mmrec_id_beyond_int64_or_far_beyond_the_rows_is_a_bad_row(tmp_path: Path):
    import numpy as np

    lines = ["userID\titemID\trating\ttimestamp\tx_label"]
    lines += [f"{k % 4}\t{k % 6}\t1.0\t{1_700_000_000 + k}\t{[0, 0, 1, 2][k % 4]}" for k in range(24)]
    lines[1] = "9" * 400 + "\t0\t1.0\t1700000000\t0"      # not an int64 at all
    lines[2] = "100000000000000\t1\t1.0\t1700000001\t0"  # an int64, but np.arange(1e14) users would follow
    (tmp_path / "mm.inter").write_text("\n".join(lines) + "\n")
    np.save(tmp_path / "text_feat.npy", np.ones((6, 4), dtype=np.float32))
    _, out, _ = _validate(tmp_path, "mmrec")
    report = json.loads(out)
    assert report["stats"]["n_users"] == 4 and report["quarantined_per_reason"] == {"bad_id": 2}
    assert "bad_id" in out and "far beyond" in out


def test_canonical_ids_past_int64_stay_text_exactly_as_given(tmp_path: Path):
    from fusionrec.data.validation.values import ids_are_ints

    big = "123456789012345678901234"
    assert not ids_are_ints(pd.Series([big, "1"]).to_numpy(dtype=object))
    assert ids_are_ints(pd.Series(["9223372036854775807", "0"]).to_numpy(dtype=object))
    (tmp_path / "interactions.csv").write_text(f"user_id,item_id\n{big},1\n2,1\n2,3\n")
    _validate(tmp_path, "csv")


@pytest.mark.parametrize("root", ["\u0000", "/data/\ud800", "x" * 5000, 5, ""],
                         ids=["nul", "surrogate", "too-long", "number", "empty"])
def test_a_saved_dataset_root_the_os_cannot_take_is_a_user_error(tmp_path: Path, root):
    from fusionrec.models.io import _media_root

    meta_path = tmp_path / "dataset.json"
    with pytest.raises(UserError, match="'root' must be the path"):
        _media_root({"root": root}, meta_path)
    assert _media_root({"root": None}, meta_path) is None
    assert _media_root({"root": "/srv/shop"}, meta_path) == "/srv/shop"


def test_a_lone_surrogate_in_a_file_name_is_a_user_error(tmp_path: Path):
    from fusionrec.data.checked_files import inside

    with pytest.raises(UserError, match="not a file name this system can store"):
        inside(tmp_path, "text_\ud800.features.npy", "modality 'text'", "save the model again")
