"""Ids stay the text they were given; timestamps parse in every common form."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.validate import validate_path
from fusionrec.data.validation.values import cast_ids, ids_are_ints, to_seconds


def test_leading_zero_ids_survive_the_item_join_and_the_int_check(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text(
        "t_dat,customer_id,article_id,price\n"
        "2018-09-20,00000dbacae5abe5,0108775015,0.05\n"
        "2018-09-21,000058a12d5b43e6,0108775044,0.03\n"
        "2018-09-21,000058a12d5b43e6,0110065001,0.03\n")
    (tmp_path / "articles.csv").write_text(
        "article_id,prod_name\n0108775015,Strap top\n0108775044,Strap top (1)\n0110065001,OP T-shirt\n"
        "0111565001,Tights\n")
    ds, report = validate_path(tmp_path / "transactions.csv")
    assert not report.fatal, report.to_text()
    assert list(ds.item_ids) == ["0108775015", "0108775044", "0110065001", "0111565001"]
    assert list(ds.user_ids) == ["00000dbacae5abe5", "000058a12d5b43e6"]
    assert ds.items["text"].tolist() == ["Strap top", "Strap top (1)", "OP T-shirt", "Tights"]
    assert ds.interactions["timestamp"].iloc[0] == pytest.approx(1537401600.0)  # 2018-09-20 UTC
    assert report.stats["rows_good"] == 3


def test_int_cast_only_when_it_round_trips() -> None:
    assert ids_are_ints(np.array(["1", "22", "-3"], dtype=object))
    assert not ids_are_ints(np.array(["1", "007"], dtype=object))  # leading zero: stays text
    assert not ids_are_ints(np.array(["1", "+2"], dtype=object))
    assert cast_ids(np.array(["007", "8"], dtype=object), as_int=False).tolist() == ["007", "8"]
    assert cast_ids(np.array(["7", "8"], dtype=object), as_int=True).tolist() == [7, 8]


def test_parquet_int_ids_above_2_53_keep_every_digit(tmp_path: Path) -> None:
    big = 2**53 + 1
    pd.DataFrame({"user_id": [big, big + 2], "item_id": [1, 2]}).to_parquet(tmp_path / "interactions.parquet")
    ds, report = validate_path(tmp_path / "interactions.parquet")
    assert not report.fatal and sorted(int(u) for u in ds.user_ids) == [big, big + 2]


@pytest.mark.parametrize(("values", "expected"), [
    (["1537401600", "1537488000"], [1537401600.0, 1537488000.0]),                       # unix seconds
    (["1537401600000", "1537488000000"], [1537401600.0, 1537488000.0]),                 # unix ms
    (["2018-09-20", "2018-09-21"], [1537401600.0, 1537488000.0]),                       # YYYY-MM-DD
    (["2018-09-20T02:00:00+02:00", "2018-09-21T00:00:00Z"], [1537401600.0, 1537488000.0]),  # ISO with zone
    (["2018-09-20 00:00:00", "20 Sep 2018"], [1537401600.0, 1537401600.0]),             # common forms
])
def test_timestamp_forms(values: list[str], expected: list[float]) -> None:
    secs, bad = to_seconds(pd.Series(values, dtype=object))
    assert not bad.any()
    assert secs.tolist() == pytest.approx(expected)


def test_unparseable_timestamp_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("user_id,item_id,date\n1,1,2024-01-02\n1,2,soon\n2,1,2024-01-04T10:00:00\n")
    ds, report = validate_path(tmp_path / "e.csv")
    issue = report.by_code("bad_timestamp")[0]
    assert issue.line == 3 and "'soon'" in issue.examples[0]
    assert ds.n_interactions == 2 and ds.interactions["timestamp"].notna().all()


@pytest.mark.parametrize(("values", "expected_days"), [
    # European day-first dates keep their order whatever the day: 01.03 is March 1st, not January 3rd
    (["01.03.2025", "15.03.2025", "02.04.2025 10:30"], ["2025-03-01", "2025-03-15", "2025-04-02"]),
    # a day above 12 in first place decides day-first for the whole column, slashes too
    (["13/04/2025", "01/02/2025"], ["2025-04-13", "2025-02-01"]),
    # a second field above 12 decides month-first
    (["04/13/2025", "01/02/2025"], ["2025-04-13", "2025-01-02"]),
    # ISO dates in the same column are never read day-first
    (["01.03.2025", "2025-03-02"], ["2025-03-01", "2025-03-02"]),
])
def test_year_last_dates_take_the_columns_day_month_order(values: list[str], expected_days: list[str]) -> None:
    secs, bad = to_seconds(pd.Series(values))
    assert not bad.any()
    got = pd.to_datetime(secs, unit="s", utc=True).strftime("%Y-%m-%d").tolist()
    assert got == expected_days


def test_init_and_validation_order_day_first_events(tmp_path: Path) -> None:
    from fusionrec.data.sniff import column_stats

    stats = column_stats("Bestelldatum", pd.Series(["01.03.2025", "15.03.2025"]))
    assert stats.date_share == 1.0
    path = tmp_path / "log.csv"
    pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"],
                  "timestamp": ["15.03.2025", "01.04.2025"]}).to_csv(path, index=False)
    dataset, _ = validate_path(path)
    ts = dataset.interactions.sort_values("item")["timestamp"].to_numpy()
    assert ts[0] < ts[1]  # March 15th before April 1st (month-first would put January 4th first)
