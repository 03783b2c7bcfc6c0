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
