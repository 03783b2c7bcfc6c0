"""Repeated interactions are behaviour: kept, reported as information, never quarantined."""
from __future__ import annotations

from pathlib import Path

from fusionrec.data.validate import validate_path

LOG = ("customer_id,article_id,t_dat,price\n"
       "c1,a1,2018-09-20,0.05\n"
       "c1,a1,2018-09-20,0.05\n"      # byte-identical: the same purchase twice the same day
       "c1,a1,2018-09-25,0.05\n"      # bought again later
       "c2,a1,2018-09-20,0.05\n"
       "c2,a2,2018-09-21,0.03\n")


def test_repeats_are_kept_and_counted_as_info(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text(LOG)
    ds, report = validate_path(tmp_path / "transactions.csv")
    assert ds.n_interactions == 5 and report.ok and len(report.quarantine) == 0
    assert not report.by_code("duplicate_row")
    info = report.by_code("repeated_interaction")[0]
    assert info.severity == "info" and info.count == 2 and info.line == 3
    assert "1 pair(s), 1 user(s), 1 item(s)" in info.message
    # models that take a binary matrix see each pair once
    train = ds.train_data().train
    assert train.nnz == 3 and train.data.max() == 1.0


def test_duplicates_mode_flags_only_byte_identical_rows_as_a_warning(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text(LOG)
    ds, report = validate_path(tmp_path / "transactions.csv", repeats="duplicates")
    assert ds.n_interactions == 5 and len(report.quarantine) == 0  # still kept
    dup = report.by_code("duplicate_row")[0]
    assert dup.severity == "warning" and dup.count == 1 and dup.line == 3
    assert report.by_code("repeated_interaction")[0].count == 2


def test_repeats_setting_reaches_the_source_from_the_data_config(tmp_path: Path) -> None:
    from fusionrec.config import DataConfig
    from fusionrec.data.loading import source_from_config

    (tmp_path / "transactions.csv").write_text(LOG)
    cfg = DataConfig(name="shop", format="csv", path=str(tmp_path / "transactions.csv"), repeats="duplicates")
    assert source_from_config(cfg).repeats == "duplicates"
