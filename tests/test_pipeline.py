"""Pipeline: seeds, valid-only selection, the test split scored exactly once per seed, run files, CLI."""
from __future__ import annotations

import json

import pytest
import yaml

import fusionrec.pipeline as pipeline
from fusionrec import cli
from fusionrec.config import RunConfig
from fusionrec.evaluate import Evaluator
from fusionrec.models.io import load_model
from tests.train.synthetic import clustered_dataset


class SpyEvaluator(Evaluator):
    """The real evaluator, recording every split it is asked to score."""

    log: list[str] = []

    def evaluate(self, model, split="valid"):
        SpyEvaluator.log.append(split)
        return super().evaluate(model, split)


@pytest.fixture()
def spy(monkeypatch):
    SpyEvaluator.log = []
    monkeypatch.setattr(pipeline, "Evaluator", SpyEvaluator)
    return SpyEvaluator


def _cfg(tmp_path, model="bpr", seeds=(1, 2), **train):
    t = {"epochs": 8, "patience": 3, "lr": 0.01, "batch_size": 256, "progress": False, "num_threads": 1,
         "seeds": list(seeds)}
    t.update(train)
    return RunConfig.model_validate({
        "model": {"name": model, "params": {"embedding_size": 16} if model in ("bpr", "lightgcn") else {}},
        "train": t, "eval": {"ks": [10, 20], "beyond_accuracy": False}, "output_dir": str(tmp_path / "runs"),
    })


def test_run_experiment_scores_test_once_per_seed_and_writes_run_dir(tmp_path, spy):
    ds = clustered_dataset(n_users=120, n_items=80, per_user=12, seed=5)
    res = pipeline.run_experiment(_cfg(tmp_path), ds)
    assert spy.log.count("test") == 2, spy.log
    # each seed: validation only during training, then exactly one test pass
    first_test = spy.log.index("test")
    assert set(spy.log[:first_test]) == {"valid"}
    assert spy.log[first_test + 1:].count("test") == 1 and spy.log[-1] == "test"

    run = tmp_path / "runs" / res["run_dir"].split("/")[-1]
    for name in ("config.yaml", "results.json", "results.md", "train_history.json", "model/model.yaml",
                 "model/weights.safetensors"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "results.json").read_text())
    assert saved["seeds"] == [1, 2] and len(saved["per_seed"]) == 2
    r20 = [s["test"]["recall@20"] for s in saved["per_seed"]]
    assert saved["test"]["recall@20"]["mean"] == pytest.approx(sum(r20) / 2)
    assert saved["test"]["recall@20"]["std"] >= 0
    for s in saved["per_seed"]:
        assert 1 <= s["best_epoch"] <= 8
        assert s["valid"]["recall@20"] > 0
    assert RunConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text())).model.name == "bpr"
    assert "recall@20" in (run / "results.md").read_text()
    history = json.loads((run / "train_history.json").read_text())
    assert set(history) == {"1", "2"} and all(h["loss"] is not None for h in history["1"])
    # the saved artifact is the first seed's chosen model
    loaded = load_model(run / "model")
    metrics = Evaluator(loaded.dataset, ks=(10, 20), protocol="full").evaluate(loaded.model, "test")
    assert metrics["recall@20"] == pytest.approx(saved["per_seed"][0]["test"]["recall@20"], abs=1e-6)


def test_closed_form_model_runs_through_pipeline(tmp_path, spy):
    ds = clustered_dataset(n_users=60, n_items=40, per_user=8, seed=1)
    res = pipeline.run_experiment(_cfg(tmp_path, model="itemknn", seeds=(3,)), ds)
    assert spy.log == ["valid", "test"]
    assert res["per_seed"][0]["best_epoch"] == 0


def test_cli_train_evaluate_and_quick_demo(tmp_path, monkeypatch, capsys):
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump({
        "data": {"name": "demo", "format": "demo", "demo": {"n_users": 120, "n_items": 60, "seed": 3,
                                                              "root": str(tmp_path / "demo_data")},
                 "split": {"method": "random", "seed": 1}},
        "train": {"epochs": 3, "progress": False, "num_threads": 1, "batch_size": 256},
        "eval": {"ks": [10, 20], "beyond_accuracy": False},
    }))
    code = cli.main(["train", "--config", str(run_file), "--model", "bpr", "--set", "train.lr=0.01",
                     "--out", str(tmp_path / "runs")])
    assert code == 0
    out = capsys.readouterr().out
    assert "recall@20" in out and "run directory" in out
    run_dir = out.strip().splitlines()[-1].split("run directory: ")[1]
    cfg = yaml.safe_load(open(f"{run_dir}/config.yaml"))
    assert cfg["train"]["lr"] == 0.01 and cfg["model"]["params"]["embedding_size"] == 64

    assert cli.main(["evaluate", "--model-dir", f"{run_dir}/model", "--split", "valid"]) == 0
    assert "recall@20" in capsys.readouterr().out

    # the demo with its settings shrunk to a few seconds
    settings = pipeline.demo_settings()
    settings["quick"] = {"data": {"n_users": 100, "n_items": 50}, "run": {"train": {"epochs": 2, "progress": False}}}
    monkeypatch.setattr(pipeline, "demo_settings", lambda: settings)
    code = cli.main(["demo", "--quick", "--out", str(tmp_path / "demo_runs"), "--data-root", str(tmp_path / "dd")])
    assert code == 0
    table = capsys.readouterr().out
    for entry in settings["models"]:
        assert entry["name"] in table


def test_cli_train_user_errors(tmp_path, capsys):
    assert cli.main(["train", "--model", "bpr"]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model-dir", str(tmp_path)]) == 2
    assert "model.yaml" in capsys.readouterr().err
