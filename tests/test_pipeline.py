"""Pipeline: seeds, valid-only selection, the test split scored exactly once per seed, run files, CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import yaml

from fusionrec import cli, output, pipeline
from fusionrec.config import RunConfig
from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.evaluate.run_report import run_summary_text
from fusionrec.experiments import multimodal_demo
from fusionrec.models.io import load_model
from tests.train.shown import shown_world
from tests.train.synthetic import clustered_dataset


class SpyEvaluator(Evaluator):
    """The real evaluator, recording every split it is asked to score."""

    log: ClassVar[list[str]] = []

    def evaluate(self, model, split="valid"):
        SpyEvaluator.log.append(split)
        return super().evaluate(model, split)


@pytest.fixture()
def spy(monkeypatch):
    SpyEvaluator.log = []
    monkeypatch.setattr(pipeline, "Evaluator", SpyEvaluator)
    return SpyEvaluator


def _cfg(tmp_path, model="bpr", seeds=(1, 2), params=None, data=None, **train):
    t = {"epochs": 8, "patience": 3, "lr": 0.01, "batch_size": 256, "progress": False, "num_threads": 1,
         "seeds": list(seeds)}
    t.update(train)
    if params is None:
        params = {"embedding_size": 16} if model in ("bpr", "lightgcn") else {}
    return RunConfig.model_validate({
        "data": data or {},
        "model": {"name": model, "params": params},
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
    cfg = yaml.safe_load(Path(run_dir, "config.yaml").read_text())
    assert cfg["train"]["lr"] == 0.01 and cfg["model"]["params"]["embedding_size"] == 64

    assert cli.main(["evaluate", "--model-dir", f"{run_dir}/model", "--split", "valid"]) == 0
    assert "recall@20" in capsys.readouterr().out

    # the demo with its settings shrunk to a few seconds
    settings = multimodal_demo.demo_settings()
    settings["quick"] = {"data": {"n_users": 100, "n_items": 50}, "run": {"train": {"epochs": 2, "progress": False}}}
    monkeypatch.setattr(multimodal_demo, "demo_settings", lambda: settings)
    code = cli.main(["demo", "--quick", "--out", str(tmp_path / "demo_runs"), "--data-root", str(tmp_path / "dd")])
    assert code == 0
    table = capsys.readouterr().out
    for entry in settings["models"]:
        assert entry["name"] in table
    # demo.yaml runs one seed: the table shows values alone, and nothing prints a numpy repr
    assert settings["run"]["train"]["seeds"] == [2024]
    assert "±" not in table and "np." not in table


def test_quick_demo_bounds_rows_that_set_their_own_epochs():
    # demo.yaml's mmgraph-adaptive row trains 90 epochs with one validation at the end
    row = {"train": {"epochs": 90, "eval_every": 90, "lr": 0.001}, "model": {"name": "mmgraph"}}
    bounded = multimodal_demo._quick_bound(row, {"epochs": 25, "patience": 5})
    assert bounded["train"] == {"epochs": 25, "eval_every": 25, "lr": 0.001}
    assert row["train"]["epochs"] == 90  # the settings themselves are not changed
    assert multimodal_demo._quick_bound({"train": {"epochs": 10}}, {"epochs": 25})["train"]["epochs"] == 10
    assert multimodal_demo._quick_bound({"train": {}}, {"epochs": 25})["train"]["epochs"] == 25


def test_cli_train_user_errors(tmp_path, capsys):
    assert cli.main(["train", "--model", "bpr"]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model-dir", str(tmp_path)]) == 2
    assert "model.yaml" in capsys.readouterr().err


DCN = {"embedding_size": 8, "cross_layers": 1, "mlp_layers": [16], "num_negatives": 1}
# the results.json keys benchmark scripts read: new fields may be added, none renamed
RESULT_KEYS = {"dataset", "model", "params", "protocol", "valid_metric", "seeds", "valid", "test", "timing",
               "per_seed"}


@pytest.fixture()
def verbose_output():
    output.configure(verbose=1)
    yield
    output.configure()


def test_dcn_run_reports_auc_on_explicit_negatives_and_one_seed_plainly(tmp_path, capsys, verbose_output):
    res = pipeline.run_experiment(_cfg(tmp_path, model="dcn", seeds=(4,), params=DCN, valid_metric="auc",
                                       epochs=10, lr=0.02, progress=True, patience=5), shown_world(), verbose=True)
    err = capsys.readouterr().err
    # -v says what the labels became: 6 clicks and 4 skips per user in train
    assert "train: 480 positive rows, 320 negative feedback rows" in err
    assert "[dcn] each epoch: 480 positives, 320 explicit negatives, 1 sampled negatives per positive" in err
    assert re.search(r"^\[dcn\] epoch 1/10  loss \d\.\d{4}  valid auc \d\.\d{4}", err, re.MULTILINE), err
    assert re.search(r"^\[dcn\] seed 4: best epoch \d+, valid auc \d\.\d{4}, test recall@20 \d\.\d{4}", err,
                     re.MULTILINE), err
    saved = json.loads((tmp_path / "runs" / res["run_dir"].split("/")[-1] / "results.json").read_text())
    assert RESULT_KEYS <= set(saved)
    assert set(saved["test"]["auc"]) == {"mean", "std"} and saved["test"]["auc"]["mean"] > 0.8
    assert saved["test"]["logloss"]["mean"] < 0.69
    assert saved["pointwise"]["test"] == {"negatives": "explicit", "n_positive": 80, "n_negative": 80}
    summary = run_summary_text(res)
    assert "auc" in summary and "logloss" in summary and "±" not in summary
    assert "1 seed" in summary and "80 positives vs 80 explicit negatives" in summary
    md = (tmp_path / "runs" / res["run_dir"].split("/")[-1] / "results.md").read_text()
    assert "±" not in md and "1 seed" in md and "explicit negatives" in md
    assert re.search(r"^\| \d\.\d{2} \| \d\.\d{2} \| \d+\.\d{2} \| \d+ \| \d+ \|$", md, re.MULTILINE), md
    # fusionrec evaluate reports the same AUC for the saved model, and says which rows it used
    assert cli.main(["evaluate", "--model-dir", f"{res['run_dir']}/model", "-q"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\bauc\b.*\blogloss\b", out) and "AUC / log loss on test: 80 positives vs 80 explicit" in out
    auc = float(out.splitlines()[2].split()[-2])
    assert auc == pytest.approx(saved["test"]["auc"]["mean"], abs=1e-4)


def test_two_seeds_show_mean_and_std(tmp_path):
    ds = clustered_dataset(n_users=60, n_items=40, per_user=8, seed=1)
    res = pipeline.run_experiment(_cfg(tmp_path, model="itemknn", seeds=(1, 2)), ds)
    assert "mean ± sample std over 2 seeds" in run_summary_text(res)
    assert re.search(r"\d\.\d{4} ± \d\.\d{4}", run_summary_text(res))


def test_positive_rating_makes_low_ratings_negatives_for_the_whole_run(tmp_path):
    rng = np.random.default_rng(0)
    base = clustered_dataset(n_users=60, n_items=40, per_user=10, seed=3)
    inter = base.interactions.assign(rating=rng.integers(1, 6, len(base.interactions)).astype(np.float32))
    ds = Dataset("rated", base.user_ids, base.item_ids, inter)
    res = pipeline.run_experiment(_cfg(tmp_path, seeds=(1,), data={"positive_rating": 4}), ds)
    loaded = load_model(f"{res['run_dir']}/model")
    saved = loaded.dataset.interactions
    assert (saved.loc[saved["rating"] < 4, "label"] == 0).all() and (saved.loc[saved["rating"] >= 4, "label"] == 1).all()
    train = loaded.dataset.train_data().train.toarray() > 0
    low = saved[(saved["split"] == "train") & (saved["rating"] < 4)]
    high = saved[(saved["split"] == "train") & (saved["rating"] >= 4)]
    assert not train[low["user"], low["item"]].any() and train[high["user"], high["item"]].all()
    # the test truth holds only the high ratings
    assert res["test"]["n_users"]["mean"] == pd.Series(
        saved.loc[(saved["split"] == "test") & (saved["rating"] >= 4), "user"]).nunique()


@pytest.mark.parametrize("metric,fix", [("recall@30", "eval.ks=[10, 20, 30]"), ("auc", "dcn")])
def test_wrong_valid_metric_fails_before_loading_anything(tmp_path, monkeypatch, metric, fix):
    def no_loading(cfg):
        raise AssertionError("the dataset was loaded before the valid_metric check")

    monkeypatch.setattr(pipeline, "load_data", no_loading)
    with pytest.raises(UserError) as err:
        pipeline.run_experiment(_cfg(tmp_path, valid_metric=metric))
    assert err.value.where == "train.valid_metric" and fix in err.value.fix
    assert not (tmp_path / "runs").exists()


def test_dataset_summary_has_no_numpy_reprs():
    # the demo prints "demo data: <repr>"; numpy scalars used to show as np.int64(...)
    ds = clustered_dataset(n_users=20, n_items=30, per_user=5, seed=0)
    text = repr(ds)
    assert "np." not in text and "split={'train': 60, 'valid': 20, 'test': 20}" in text
