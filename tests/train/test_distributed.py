"""DDP training (torchrun, gloo on CPU): 2 processes give the 1-process metrics; resume works under DDP."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fusionrec.train.distributed import DistContext, launch_command, strip_nproc

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")

COMMON = ["--dataset", "synthetic", "--set", "data.synthetic.n_items=800", "--model", "lightgcn",
          "--set", "train.eval_every=1", "--set", "train.batch_size=256", "-q"]


def _train(out: Path, nproc: int, epochs: int, *extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["train", *COMMON, "--set", f"train.epochs={epochs}", "--out", str(out), *extra]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    proc = subprocess.run([sys.executable, "-m", "fusionrec", *args], check=False, capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(out.glob("synthetic-800_lightgcn_*"), key=lambda p: p.stat().st_mtime)
    return json.loads((runs[-1] / "results.json").read_text())


def _test_metrics(results: dict) -> dict[str, float]:
    return results["per_seed"][0]["test"]


def test_two_processes_match_one_and_resume_under_ddp(tmp_path: Path) -> None:
    one = _train(tmp_path / "one", 1, 4)
    # 2 ranks, 2 epochs with checkpoints; then the same run resumed to 4 epochs, still 2 ranks
    _train(tmp_path / "two", 2, 2)
    two = _train(tmp_path / "two", 2, 4, "--set", "train.resume=true")
    assert two["per_seed"][0]["epochs_run"] == 4
    for key, value in _test_metrics(one).items():
        # the ranks average the gradients of equal halves of each batch: the same step up to float order
        assert abs(_test_metrics(two)[key] - value) < 0.01, (key, value, _test_metrics(two)[key])


def test_shard_splits_every_row_tensor_and_keeps_small_batches_whole() -> None:
    batch = {"user": torch.arange(10), "neg_item": torch.arange(20).view(10, 2), "scale": torch.tensor(3.0)}
    parts = [DistContext(r, 3, "gloo").shard(batch) for r in range(3)]
    assert torch.equal(torch.cat([p["user"] for p in parts]), batch["user"])
    assert torch.equal(torch.cat([p["neg_item"] for p in parts]), batch["neg_item"])
    assert all(p["scale"] is batch["scale"] for p in parts)
    tiny = {"user": torch.arange(2)}
    assert torch.equal(DistContext(2, 3, "gloo").shard(tiny)["user"], tiny["user"])


def test_nproc_relaunch_command_drops_its_own_flag() -> None:
    argv = ["-v", "train", "--nproc", "2", "--model", "bpr", "--nproc=3"]
    assert strip_nproc(argv) == ["-v", "train", "--model", "bpr"]
    cmd = launch_command(2, strip_nproc(argv))
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert cmd[-4:] == ["train", "--model", "bpr"][-4:] or cmd[-3:] == ["train", "--model", "bpr"]
