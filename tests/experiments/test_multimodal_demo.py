"""The demo's warm/cold table: rows built from the results.json blocks of each model."""
from __future__ import annotations

from fusionrec.experiments.multimodal_demo import (
    DEMO_TABLE_COLUMNS,
    cold_summary,
    demo_table,
)


def _results(warm: float, cold: float, std: float = 0.01) -> dict:
    test = {"recall@20": {"mean": 0.3, "std": std},
            "warm:recall@20": {"mean": warm, "std": std}, "cold:recall@20": {"mean": cold, "std": std},
            "warm:ndcg@20": {"mean": warm / 2, "std": std}, "cold:ndcg@20": {"mean": cold / 2, "std": std},
            "warm:n_users": {"mean": 1900.0, "std": 0.0}, "cold:n_users": {"mean": 570.0, "std": 0.0},
            "warm:n_items": {"mean": 880.0, "std": 0.0}, "cold:n_items": {"mean": 120.0, "std": 0.0}}
    return {"test": test, "timing": {"seconds_per_epoch": {"mean": 0.5, "std": 0.1}}}


def test_demo_table_puts_warm_and_cold_side_by_side() -> None:
    rows = demo_table({"lightgcn": _results(0.43, 0.0), "content_cf": _results(0.36, 0.26)})
    titles = [title for _, title in DEMO_TABLE_COLUMNS]
    assert list(rows["lightgcn"]) == [*titles, "s/epoch"]
    assert rows["content_cf"]["cold R@20"] == (0.26, 0.01)
    assert rows["lightgcn"]["warm N@20"] == (0.215, 0.01)
    assert rows["lightgcn"]["s/epoch"] == 0.5


def test_cold_summary_counts_are_plain_ints() -> None:
    counts = cold_summary({"pop": _results(0.2, 0.0)})
    assert counts == {"warm_n_users": 1900, "warm_n_items": 880, "cold_n_users": 570, "cold_n_items": 120}
    assert all(type(v) is int for v in counts.values())
    assert cold_summary({}) == {}


def test_demo_summary_files(tmp_path) -> None:
    from fusionrec.evaluate.report import read_json
    from fusionrec.experiments.multimodal_demo import write_demo_summary

    results = {"lightgcn": {**_results(0.43, 0.0), "seeds": [1, 2], "run_dir": "runs/x"}}
    path = write_demo_summary(results, tmp_path / "out")
    saved = read_json(path)
    assert saved["models"]["lightgcn"]["cold R@20"] == {"mean": 0.0, "std": 0.01}
    assert saved["models"]["lightgcn"]["s/epoch"] == 0.5
    assert saved["slices"]["cold_n_items"] == 120 and saved["seeds"] == {"lightgcn": [1, 2]}
    assert "cold R@20" in (tmp_path / "out" / "demo_results.md").read_text()
