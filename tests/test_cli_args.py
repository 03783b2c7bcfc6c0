"""--data / --dataset / --config / --set: one data description for every command."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fusionrec.cli import build_parser, main
from fusionrec.cli_args import (
    add_data_arguments,
    load_description,
    run_config_from_args,
)
from fusionrec.data.loading import load_dataset
from fusionrec.errors import UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    return parser


def _args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(list(argv))


def shop(root: Path, name: str = "interactions.csv") -> Path:
    """A small folder: interactions (user_id, item_id, timestamp) and items with a title."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pairs = sorted({(f"u{u}", f"i{int(rng.integers(15)):02d}") for u in range(20) for _ in range(8)})
    frame = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    frame["timestamp"] = 1_600_000_000 + np.arange(len(frame))
    frame.to_csv(root / name, index=False)
    pd.DataFrame({"item_id": [f"i{i:02d}" for i in range(15)],
                  "title": [f"a long title for item {i}" for i in range(15)]}).to_csv(root / "items.csv", index=False)
    return root


def test_data_dir_reads_its_description(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    root = shop(tmp_path / "my_shop")
    assert main(["data", "init", str(root)]) == 0
    capsys.readouterr()
    # an edit in the YAML is what the commands use, and relative paths resolve against its folder
    text = (root / "fusionrec.yaml").read_text().replace("method: temporal", "method: random")
    (root / "fusionrec.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)  # not the dataset folder
    cfg = run_config_from_args(_args("--data", "my_shop", "--set", "train.lr=0.01"), model="bpr")
    assert cfg.data.root == str(root.resolve()) and cfg.data.path == "interactions.csv"
    assert cfg.data.split.method == "random" and cfg.train.lr == 0.01 and cfg.model.name == "bpr"
    assert cfg.data.columns["user"] == "user_id"
    by_file = run_config_from_args(_args("--data", "my_shop/fusionrec.yaml"), model="bpr")
    assert by_file.data == cfg.data
    dataset = load_dataset(cfg.data)
    assert len(dataset.user_ids) == 20


def test_folder_without_description_is_inspected_with_a_note(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    root = shop(tmp_path / "raw", name="ratings.csv")
    cfg = run_config_from_args(_args("--data", str(root)), model="pop")
    err = capsys.readouterr().err
    assert "has no fusionrec.yaml" in err and "fusionrec data init" in err
    assert cfg.data.path == "ratings.csv" and cfg.data.items_path == "items.csv"
    assert not (root / "fusionrec.yaml").exists()  # nothing written behind the user's back


def test_folder_that_cannot_be_read_unaided_names_data_init(tmp_path: Path) -> None:
    root = tmp_path / "odd"
    root.mkdir()
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(root / "log.csv", index=False)
    with pytest.raises(UserError) as info:
        run_config_from_args(_args("--data", str(root)))
    assert "user id" in info.value.what and f"fusionrec data init {root}" in info.value.fix


def test_dataset_and_set_path_with_a_folder_work_like_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = shop(tmp_path / "shop")
    assert main(["data", "init", str(root)]) == 0
    capsys.readouterr()
    expected = run_config_from_args(_args("--data", str(root)), model="pop").data
    assert run_config_from_args(_args("--dataset", str(root)), model="pop").data == expected
    assert run_config_from_args(_args("--set", f"data.path={root}"), model="pop").data == expected
    # encode's own parser: `fusionrec encode --set data.path=mydir` no longer says "no dataset given"
    encode_args = build_parser(["encode"]).parse_args(["encode", "--set", f"data.path={root}"])
    assert run_config_from_args(encode_args).data == expected


def test_set_data_path_to_a_file_detects_the_format(tmp_path: Path) -> None:
    root = shop(tmp_path / "shop")
    cfg = run_config_from_args(_args("--set", f"data.path={root / 'interactions.csv'}"), model="pop")
    assert cfg.data.format == "auto" and cfg.data.name == "interactions"
    assert len(load_dataset(cfg.data).interactions) > 0


def test_a_folder_named_like_a_preset_is_not_the_preset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = shop(tmp_path / "ml1m")
    assert main(["data", "init", str(root)]) == 0
    capsys.readouterr()
    cfg = run_config_from_args(_args("--data", str(root)), model="pop")
    assert cfg.data.name == "ml1m" and cfg.data.path == "interactions.csv"
    assert cfg.eval.candidates == "all"  # the ml1m preset's cold-start protocol was not pulled in


def test_mistakes_say_what_where_and_how_to_fix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(UserError) as info:
        run_config_from_args(_args())
    assert info.value.what == "no dataset given" and "--data DIR" in info.value.fix
    with pytest.raises(UserError) as info:
        run_config_from_args(_args("--data", str(tmp_path / "nowhere")))
    assert "no such folder" in info.value.what and "fusionrec data init" in info.value.fix
    with pytest.raises(UserError) as info:
        run_config_from_args(_args("--dataset", "not-a-preset"))
    assert "unknown dataset preset" in info.value.what and "--data DIR" in info.value.fix
    with pytest.raises(UserError) as info:
        run_config_from_args(_args("--dataset", "ml100k", "--set", "data.nmae=x"))
    assert info.value.what == "unknown setting 'data.nmae'" and info.value.where == "--set data.nmae=x"
    assert "did you mean 'name'?" in info.value.fix
    root = shop(tmp_path / "shop")
    with pytest.raises(UserError) as info:
        run_config_from_args(_args("--data", str(root), "--dataset", "ml100k"))
    assert "both --data and --dataset" in info.value.what
    with pytest.raises(UserError) as info:
        run_config_from_args(_args("--data", str(root / "interactions.csv")))
    assert f"--data {root}" in info.value.fix


def test_broken_description_points_at_the_line(tmp_path: Path) -> None:
    root = shop(tmp_path / "shop")
    (root / "fusionrec.yaml").write_text("name: shop\nformat: csv\ncolumns: {user: user_id\npath: x\n")
    with pytest.raises(UserError) as info:
        load_description(root)
    assert "not valid YAML" in info.value.what and re.search(r"fusionrec.yaml line \d", info.value.where)
    assert "--force" in info.value.fix
    (root / "fusionrec.yaml").write_text(yaml.safe_dump({"name": "shop", "format": "csv", "path": "x.csv",
                                                        "item_colums": {}}))
    with pytest.raises(UserError) as info:
        load_description(root)
    assert "data.item_colums" in info.value.what and "did you mean 'item_columns'?" in info.value.fix
    # a `data:` wrapper (a run file's section) is accepted as well
    (root / "fusionrec.yaml").write_text(yaml.safe_dump({"data": {"name": "shop", "format": "csv",
                                                                 "path": "interactions.csv"}}))
    assert load_description(root).path == "interactions.csv"


def test_train_evaluate_and_validate_take_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = shop(tmp_path / "shop")
    assert main(["data", "init", str(root)]) == 0
    assert main(["data", "validate", "--data", str(root)]) == 0
    assert main(["train", "--data", str(root), "--model", "pop", "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    model_dir = Path(re.search(r"run directory: (\S+)", out).group(1)) / "model"
    # a new user in the folder: the saved model cannot score them, so they are left out with a note
    with open(root / "interactions.csv", "a") as fh:
        fh.write("stranger,i01,1700000000\n")
    assert main(["evaluate", "--model-dir", str(model_dir), "--data", str(root)]) == 0
    captured = capsys.readouterr()
    assert "pop (test)" in captured.out and "1 interaction(s)" in captured.err


@pytest.mark.parametrize("argv", [
    ["train", "--model", "pop"], ["evaluate", "--model-dir", "m"], ["encode"], ["ablate"],
    ["serve", "--model", "m"], ["data", "validate"],
])
def test_every_command_takes_data(argv: list[str], tmp_path: Path) -> None:
    args = build_parser(argv).parse_args([*argv, "--data", str(tmp_path)])
    assert args.data == str(tmp_path)
