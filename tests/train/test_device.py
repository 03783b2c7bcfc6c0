"""train.device: resolving auto / cpu / cuda, the errors without a GPU, a CPU run, a GPU checkpoint on a CPU.

The machine running the tests has no GPU; what a GPU run needs from the code is checked without one:
the resolver's answers with CUDA faked present, tensors made inside a model's loss landing on the
device the trainer computes on (the ``meta`` device stands in), and a checkpoint whose tensors are
recorded as CUDA ones loading on the CPU. ``bench/gpu_check.py`` runs the real thing on a GPU.
"""
from __future__ import annotations

import pytest
import torch

from fusionrec.cli import main
from fusionrec.config import TrainConfig, resolve_config
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.models.registry import build_model
from fusionrec.train import CHECKPOINT_NAME, Trainer
from fusionrec.train.device import compute_on, model_device, resolve_device, to_device
from tests.train.synthetic import clustered_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


# ---------------------------------------------------------------------- resolver
def test_auto_is_the_cpu_without_a_gpu(monkeypatch):
    _fake_gpus(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


def test_auto_and_cuda_take_a_gpu_when_there_is_one(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("auto") == torch.device("cuda:0")
    assert resolve_device("cuda") == torch.device("cuda:0")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("cpu") == torch.device("cpu")   # cpu stays cpu on a GPU machine
    monkeypatch.setenv("LOCAL_RANK", "1")   # torchrun: one GPU per rank
    assert resolve_device("auto") == torch.device("cuda:1")


def test_cuda_without_a_gpu_says_so_and_how_to_fix_it(monkeypatch):
    _fake_gpus(monkeypatch, 0)
    with pytest.raises(UserError) as err:
        resolve_device("cuda")
    text = str(err.value)
    assert "no CUDA device is visible" in text and "train.device" in text
    assert "--set train.device=cpu" in text and "auto" in text


def test_a_gpu_number_beyond_the_visible_ones_names_the_choices(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    with pytest.raises(UserError, match=r"(?s)cuda:3 but only 2 CUDA device\(s\).*cuda:0 \.\. cuda:1"):
        resolve_device("cuda:3")


def test_a_bad_device_name_fails_in_the_config_naming_it():
    with pytest.raises(UserError, match="'gpu' is not one of auto, cpu, cuda, cuda:N, mps"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="'tpu' is not one of"):
        resolve_config(model="bpr", overrides=["train.device=tpu"])
    assert resolve_config(model="bpr", overrides=["train.device=CUDA:0"]).train.device == "cuda:0"
    assert resolve_config(model="bpr").train.device == "auto"


def test_train_device_flag_fails_before_loading_data_without_a_gpu(monkeypatch, capsys):
    _fake_gpus(monkeypatch, 0)
    assert main(["train", "--dataset", "demo", "--model", "bpr", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "train.device is cuda but no CUDA device is visible" in err


@pytest.mark.parametrize("argv", [["train", "--dataset", "demo", "--model", "bpr", "--device", "gpu"],
                                  ["encode", "--dataset", "demo", "--device", "gpu"]])
def test_a_bad_device_flag_is_blamed_on_the_flag(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--device 'gpu' is not a device name" in err and "where: --device gpu" in err
    assert "--device cpu" in err   # the fix names a flag value that works


# ---------------------------------------------------------------------- what the trainer relies on
def test_tensors_made_in_a_loss_land_on_the_compute_device():
    with compute_on(torch.device("meta")):
        made = [torch.zeros(3), torch.arange(4), torch.rand(2), torch.tensor([1, 2])]
    assert {t.device.type for t in made} == {"meta"}
    with compute_on(torch.device("cpu")):   # on the CPU nothing changes
        assert torch.zeros(1).device.type == "cpu"
    batch = {"user": torch.arange(3), "n": 5}
    moved = to_device(batch, torch.device("meta"))
    assert moved["user"].device.type == "meta" and moved["n"] == 5 and batch["user"].device.type == "cpu"


@pytest.fixture(scope="module")
def dataset():
    return clustered_dataset(n_users=60, n_items=40, per_user=8, seed=3)


def test_an_explicit_cpu_run_trains_and_validates_on_the_cpu(dataset):
    data = dataset.train_data()
    model = build_model("bpr", data, {"embedding_size": 8})
    cfg = TrainConfig(epochs=2, batch_size=128, lr=0.01, checkpoint=False, progress=False, device="cpu",
                      valid_metric="recall@10")
    trainer = Trainer(model, data, cfg, Evaluator(dataset, ks=(10,), device="cpu"), seed=0)
    result = trainer.fit()
    assert trainer.device == torch.device("cpu") and model_device(model) == torch.device("cpu")
    assert result.device == "cpu"
    assert result.best_epoch >= 1 and result.best_valid["recall@10"] > 0


def _save_as_if_on_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save records every tensor's location; make it write ``cuda:0``, as a GPU run's checkpoint has."""
    import torch.serialization as ser

    monkeypatch.setattr(ser, "location_tag", lambda storage: "cuda:0")


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(dataset, tmp_path, monkeypatch):
    data = dataset.train_data()
    cfg = TrainConfig(epochs=1, batch_size=128, lr=0.01, progress=False, device="cpu")
    with monkeypatch.context() as patch:
        _save_as_if_on_gpu(patch)
        Trainer(build_model("bpr", data, {"embedding_size": 8}), data, cfg, out_dir=tmp_path, seed=0).fit()
    path = tmp_path / CHECKPOINT_NAME
    _fake_gpus(monkeypatch, 0)
    with pytest.raises(RuntimeError, match="CUDA"):   # the file really holds CUDA tensors
        torch.load(path, weights_only=True)
    resumed = Trainer(build_model("bpr", data, {"embedding_size": 8}), data,
                      cfg.model_copy(update={"epochs": 2, "resume": True}), out_dir=tmp_path, seed=0)
    result = resumed.fit()
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert model_device(resumed.model) == torch.device("cpu")


def test_a_saved_run_that_trained_on_a_gpu_is_scored_on_a_cpu_machine(dataset, monkeypatch):
    """``fusionrec evaluate`` / ``report`` / ``Recommender.load`` read the run's config, which may say cuda."""
    from fusionrec.pipeline import make_evaluator

    _fake_gpus(monkeypatch, 0)
    cfg = resolve_config(model="bpr", overrides=["train.device=cuda", "eval.beyond_accuracy=false"])
    assert make_evaluator(dataset, cfg).device == torch.device("cpu")
    assert resolve_device("cuda", strict=False) == torch.device("cpu")
    with pytest.raises(UserError, match="not one of"):   # a name that is no device stays an error
        resolve_device("gpu", strict=False)
