"""`fusionrec encode` end to end on a small CSV dataset (tiny local text model)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from fusionrec.cli import main


@pytest.fixture
def csv_dataset(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": ["a", "b", "b", "c", "d"]}).to_csv(
        folder / "interactions.csv", index=False)
    pd.DataFrame({"item_id": ["a", "b", "c", "d"], "title": ["red lamp", "blue mug", "wood chair", ""],
                  "description": ["soft", "hard", "the desk", ""]}).to_csv(folder / "items.csv", index=False)
    cfg = {"data": {"name": "shop", "format": "csv", "path": str(folder / "interactions.csv"),
                    "items_path": str(folder / "items.csv"), "columns": {"user": "user_id", "item": "item_id"},
                    "item_columns": {"item": "item_id"}}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_encode_twice_then_everything_is_cached(tmp_path, csv_dataset, tiny_text_model, capsys):
    args = ["encode", "--config", str(csv_dataset), "--modalities", "text", "--encoder", "text=sentence-transformer",
            "--param", f"text.model_path={tiny_text_model}", "--param", "text.template={title}. {description}",
            "--cache", str(tmp_path / "cache"), "--batch-size", "2", "--no-progress"]
    assert main([*args, "--report", str(tmp_path / "r1.json"), "--issues", str(tmp_path / "i1.csv")]) == 0
    first = json.loads((tmp_path / "r1.json").read_text())["modalities"]["text"]
    assert (first["n_items"], first["n_present"], first["n_encoded"], first["n_cached"]) == (4, 3, 3, 0)
    issues = pd.read_csv(tmp_path / "i1.csv")
    assert issues["item_id"].tolist() == ["d"] and issues["reason"].str.startswith("empty text").all()
    assert main([*args, "--report", str(tmp_path / "r2.json")]) == 0
    second = json.loads((tmp_path / "r2.json").read_text())["modalities"]["text"]
    assert (second["n_encoded"], second["n_cached"]) == (0, 3)
    out = capsys.readouterr().out
    assert "1 item(s) without text: empty text" in out


def test_user_mistakes_exit_2_with_a_message(csv_dataset, capsys):
    assert main(["encode", "--config", str(csv_dataset), "--encoder", "text=nope", "--no-progress"]) == 2
    assert "unknown encoder 'nope'" in capsys.readouterr().err
    assert main(["encode", "--config", str(csv_dataset), "--modalities", "text", "--param", "image.crop=3"]) == 2
    assert "not being encoded" in capsys.readouterr().err
    assert main(["encode", "--modalities", "text"]) == 2
    assert "no dataset given" in capsys.readouterr().err
    assert main(["encode", "--dataset", "ml1mm", "--modalities", "text"]) == 2
    assert "unknown dataset preset 'ml1mm'" in capsys.readouterr().err
