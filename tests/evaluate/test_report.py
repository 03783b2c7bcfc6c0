"""Results tables and mean ± std over seeds, checked against hand-computed values."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fusionrec.evaluate.report import (
    aggregate_seeds,
    format_cell,
    format_table,
    read_json,
    results_markdown,
    seeds_note,
    write_json,
)


def test_aggregate_seeds_mean_and_sample_std() -> None:
    runs = [{"recall@20": 0.10, "ndcg@20": 0.05, "n_users": 3.0, "model": "bpr"},
            {"recall@20": 0.12, "ndcg@20": 0.07, "n_users": 3.0},
            {"recall@20": 0.14, "ndcg@20": float("nan"), "n_users": 3.0}]
    agg = aggregate_seeds(runs)
    # recall: mean 0.12; deviations -0.02, 0, 0.02 -> sample var = 0.0008 / 2 -> std 0.02
    assert agg["recall@20"] == pytest.approx((0.12, 0.02))
    # ndcg: NaN ignored -> values 0.05, 0.07: mean 0.06, std sqrt(0.0002 / 1) = 0.0141421
    assert agg["ndcg@20"] == pytest.approx((0.06, 0.0141421), abs=1e-6)
    assert agg["n_users"] == (3.0, 0.0)
    assert "model" not in agg                       # non-numeric keys are not aggregated
    assert aggregate_seeds([{"x": 0.5}]) == {"x": (0.5, 0.0)}
    with pytest.raises(ValueError):
        aggregate_seeds([])


def test_format_cell() -> None:
    assert format_cell(0.123456) == "0.1235"
    assert format_cell((0.1, 0.01234), precision=3) == "0.100 ± 0.012"
    assert format_cell(None) == "-" and format_cell(float("nan")) == "-"
    assert format_cell(12) == "12"


def test_markdown_table_marks_best_and_orders_columns() -> None:
    rows = {
        "bpr": {"recall@20": (0.11, 0.01), "ndcg@20": (0.05, 0.002), "recall@10": (0.07, 0.0), "n_users": 10.0},
        "pop": {"recall@20": 0.05, "ndcg@20": 0.07, "recall@10": 0.03},
    }
    md = format_table(rows, metrics=["recall", "ndcg@20"])
    lines = md.splitlines()
    assert lines[0] == "| model | recall@10 | recall@20 | ndcg@20 |"
    assert lines[1] == "|---|---:|---:|---:|"
    assert lines[2] == "| bpr | **0.0700 ± 0.0000** | **0.1100 ± 0.0100** | 0.0500 ± 0.0020 |"
    assert lines[3] == "| pop | 0.0300 | 0.0500 | **0.0700** |"
    assert "n_users" not in md


def test_text_table_is_aligned() -> None:
    rows = {"a-long-name": {"recall@20": 0.1}, "b": {"recall@20": (0.25, 0.05)}}
    lines = format_table(rows, fmt="text").splitlines()
    assert len({len(line) for line in lines}) == 1          # every line the same width
    assert lines[0].split() == ["model", "recall@20"]
    assert lines[3].split() == ["b", "0.2500", "±", "0.0500"]
    with pytest.raises(ValueError):
        format_table(rows, fmt="html")


def test_json_round_trip_handles_numpy_and_nan(tmp_path) -> None:
    res = {"bpr": {"per_seed": [{"recall@20": np.float32(0.25), "n": np.int64(3)}],
                   "mean_std": {"recall@20": (0.25, 0.0)}, "bad": math.nan, "arr": np.arange(3)}}
    path = write_json(res, tmp_path / "sub" / "results.json")
    back = read_json(path)
    assert back["bpr"]["per_seed"][0] == {"recall@20": 0.25, "n": 3}
    assert back["bpr"]["mean_std"]["recall@20"] == [0.25, 0.0]
    assert back["bpr"]["bad"] is None and back["bpr"]["arr"] == [0, 1, 2]
    json.loads(path.read_text())  # strict JSON: no NaN literal


def test_results_markdown() -> None:
    md = results_markdown({"bpr": [{"recall@20": 0.1}, {"recall@20": 0.2}]}, title="Baselines",
                          notes=["full ranking, protocol full"])
    assert md.startswith("# Baselines\n")
    # mean 0.15, sample std of (0.1, 0.2) = 0.0707107
    assert "| bpr | 0.1500 ± 0.0707 |" in md
    assert "over 2 seeds per row" in md and "full ranking, protocol full" in md
    # rows with different seed counts are listed; a single seed shows its value alone
    md = results_markdown({"bpr": [{"recall@20": 0.1}, {"recall@20": 0.2}], "pop": [{"recall@20": 0.05}]})
    assert "| pop | 0.0500 |" in md and "bpr: 2, pop: 1" in md and "± 0.0000" not in md


def test_single_seed_cells_show_the_value_alone() -> None:
    one = aggregate_seeds([{"recall@20": 0.25, "logloss": 0.4}])
    assert one["recall@20"] == (0.25, 0.0) and one["recall@20"].n == 1
    assert format_cell(one["recall@20"]) == "0.2500"
    three = aggregate_seeds([{"recall@20": v} for v in (0.1, 0.2, 0.3)])
    assert format_cell(three["recall@20"]) == "0.2000 ± 0.1000"
    assert format_cell((0.5, float("nan"))) == "0.5000" and format_cell((0.5, None)) == "0.5000"
    table = format_table({"dcn": one}, fmt="text")
    assert "±" not in table and "0.2500" in table and "0.4000" in table
    assert seeds_note(1) == "1 seed" and seeds_note(3) == "mean ± sample std over 3 seeds"
    # copies and pickles keep the seed count
    import copy
    import pickle
    assert copy.deepcopy(one)["recall@20"].n == 1 and pickle.loads(pickle.dumps(one))["recall@20"].n == 1


def test_lower_is_better_metrics_are_highlighted_by_their_minimum() -> None:
    rows = {"a": {"auc": 0.8, "logloss": 0.50}, "b": {"auc": 0.7, "logloss": 0.40}}
    line_a, line_b = format_table(rows, fmt="markdown").splitlines()[2:]
    assert line_a == "| a | **0.8000** | 0.5000 |"
    assert line_b == "| b | 0.7000 | **0.4000** |"
