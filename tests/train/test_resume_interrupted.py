"""train.resume after an interrupted or damaged checkpoint save (issue 12, item 12).

A kill while the first checkpoint is written leaves only ``checkpoint.tmp`` in the run
folder. ``train.resume`` used to stop there for good: it picked that folder and said
"no checkpoint", with a fix (train.checkpoint=true) that was already in effect.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from fusionrec import cli, output
from fusionrec.config import TrainConfig
from fusionrec.errors import UserError
from fusionrec.models.registry import build_model
from fusionrec.train import CHECKPOINT_NAME, Trainer
from tests.train.synthetic import clustered_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(**kw) -> TrainConfig:
    base = {"epochs": 3, "batch_size": 128, "lr": 0.01, "progress": False, "num_threads": 1, "checkpoint": True}
    base.update(kw)
    return TrainConfig(**base)


def _bpr():
    data = clustered_dataset(n_users=40, n_items=30, per_user=6, seed=2).train_data()
    torch.manual_seed(0)
    return build_model("bpr", data, {"embedding_size": 4}), data


def test_only_checkpoint_tmp_resumes_from_epoch_0(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.tmp").write_bytes(b"PK\x03\x04 half of a torch.save")  # killed mid-write
    model, data = _bpr()
    result = Trainer(model, data, _cfg(resume=True), None, out_dir=tmp_path, seed=1).fit()
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert (tmp_path / CHECKPOINT_NAME).is_file() and not (tmp_path / "checkpoint.tmp").exists()
    # and the checkpoint it wrote is resumable
    model, data = _bpr()
    again = Trainer(model, data, _cfg(resume=True, epochs=4), None, out_dir=tmp_path, seed=1).fit()
    assert [h["epoch"] for h in again.history] == [1, 2, 3, 4]


def test_damaged_checkpoint_is_a_user_error_whose_fix_works(tmp_path: Path) -> None:
    model, data = _bpr()
    Trainer(model, data, _cfg(epochs=1), None, out_dir=tmp_path, seed=1).fit()
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:100])
    model, data = _bpr()
    with pytest.raises(UserError, match="damaged") as info:
        Trainer(model, data, _cfg(resume=True), None, out_dir=tmp_path, seed=1).fit()
    assert str(path) in info.value.message and "without train.resume" in info.value.fix
    model, data = _bpr()  # the fix: train without resume; the new checkpoint replaces the damaged one
    Trainer(model, data, _cfg(epochs=1), None, out_dir=tmp_path, seed=1).fit()
    model, data = _bpr()
    result = Trainer(model, data, _cfg(resume=True, epochs=2), None, out_dir=tmp_path, seed=1).fit()
    assert [h["epoch"] for h in result.history] == [1, 2]


def test_resume_with_nothing_saved_names_a_fix_that_applies(tmp_path: Path) -> None:
    model, data = _bpr()
    with pytest.raises(UserError, match="no checkpoint") as info:
        Trainer(model, data, _cfg(resume=True), None, out_dir=tmp_path, seed=1).fit()
    # the old fix asked for train.checkpoint=true, which is the default and changed nothing
    assert "without train.resume" in info.value.fix and "train.checkpoint=true" not in info.value.fix


@pytest.fixture
def run_file(tmp_path: Path):
    output.configure()
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"name": "demo", "format": "demo", "demo": {"n_users": 40, "n_items": 30, "seed": 3,
                                                              "root": str(tmp_path / "demo_data")},
                 "split": {"method": "random", "seed": 1}},
        "train": {"epochs": 2, "num_threads": 1, "batch_size": 256, "seeds": [5]},
        "eval": {"ks": [10, 20], "beyond_accuracy": False},
        "output_dir": str(tmp_path / "runs"),
        "model": {"name": "bpr", "params": {"embedding_size": 4}},
    }))
    yield path
    output.configure()


def test_cli_resume_after_a_kill_during_the_first_save(run_file: Path, tmp_path: Path, capsys) -> None:
    base = ["train", "--config", str(run_file), "--model", "bpr", "-q"]
    # a run killed while writing its first checkpoint: the run folder holds only checkpoint.tmp
    seed_dir = tmp_path / "runs" / "demo_bpr_20260101-000000" / "checkpoints" / "seed5"
    seed_dir.mkdir(parents=True)
    (seed_dir / "checkpoint.tmp").write_bytes(b"\x80\x02 cut off")
    assert cli.main([*base, "--set", "train.resume=true"]) == 0, capsys.readouterr().err
    assert (seed_dir / CHECKPOINT_NAME).is_file()  # the interrupted run was continued, in its own folder
    assert "run directory: " + str(seed_dir.parents[1]) in capsys.readouterr().out


def test_cli_resume_without_any_run_names_a_fix_that_works(run_file: Path, capsys) -> None:
    base = ["train", "--config", str(run_file), "--model", "bpr", "-q"]
    assert cli.main([*base, "--set", "train.resume=true"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err
    # the fix says: train without train.resume (checkpoints are on by default), then resume continues it
    assert "without train.resume" in err or "drop train.resume" in err
    assert cli.main(base) == 0
    run_dir = re.search(r"run directory: (\S+)", capsys.readouterr().out).group(1)
    assert cli.main([*base, "--set", "train.resume=true", "--set", "train.epochs=3"]) == 0
    assert capsys.readouterr().out.strip().endswith(run_dir)
