"""data.unknown_items: ids missing from a partial item table are kept (default) or set aside."""
from __future__ import annotations

import pandas as pd

from fusionrec.config import DataConfig
from fusionrec.data.loading import load_dataset_with_report


def _folder(tmp_path):
    pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3"],
                  "item_id": ["007", "008", "007", "009", "008"]}).to_csv(tmp_path / "interactions.csv", index=False)
    # the item table describes only one of the three logged items
    pd.DataFrame({"item_id": ["007"], "title": ["a red dress"]}).to_csv(tmp_path / "items.csv", index=False)
    return tmp_path


def _load(tmp_path, **extra):
    cfg = DataConfig(name="shop", format="csv", path="interactions.csv", root=str(tmp_path),
                     items_path="items.csv", item_columns={"item": "item_id", "text": "title"},
                     split={"method": "random", "ratios": [0.6, 0.2, 0.2]}, **extra)
    return load_dataset_with_report(cfg)


def test_keep_is_the_default_and_reported_by_item(tmp_path):
    dataset, report = _load(_folder(tmp_path))
    assert sorted(map(str, dataset.item_ids)) == ["007", "008", "009"]
    assert len(dataset.interactions) == 5
    warning = report.by_code("unknown_item")
    assert warning and warning[0].severity == "warning"
    assert "unknown_items: quarantine" in (warning[0].fix or "")


def test_quarantine_sets_the_rows_aside(tmp_path):
    dataset, report = _load(_folder(tmp_path), unknown_items="quarantine")
    assert list(map(str, dataset.item_ids)) == ["007"]
    assert len(dataset.interactions) == 2
    assert report.by_code("unknown_item")[0].severity == "error"
