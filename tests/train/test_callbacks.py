"""Trainer callbacks: the hook order, TensorBoard event files read back, MLflow when installed."""
from __future__ import annotations

import sys

import pytest
import yaml

from fusionrec import cli, output
from fusionrec.config import TrainConfig
from fusionrec.errors import UserError
from fusionrec.evaluate import Evaluator
from fusionrec.models.registry import build_model
from fusionrec.train.callbacks import Callback, TensorBoardCallback, mlflow_key
from fusionrec.train.trainer import Trainer
from tests.train.synthetic import clustered_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_evaluation(self, trainer, epoch, metrics, improved):
        self.calls.append(("evaluation", epoch, round(metrics["recall@20"], 6), improved))

    def on_epoch_end(self, trainer, record):
        self.calls.append(("epoch", record["epoch"], record["lr"]))

    def on_fit_end(self, trainer, result):
        self.calls.append(("fit_end", result.best_epoch))


def _fit(model_name: str, callbacks, epochs: int = 3):
    ds = clustered_dataset(n_users=80, n_items=50, per_user=10)
    data = ds.train_data()
    model = build_model(model_name, data, {"embedding_size": 8} if model_name == "bpr" else {})
    cfg = TrainConfig(epochs=epochs, batch_size=128, lr=0.01, checkpoint=False, progress=False)
    return Trainer(model, data, cfg, Evaluator(ds, ks=(10, 20)), callbacks=callbacks).fit()


def test_hooks_run_in_order_with_the_epoch_record():
    rec = Recorder()
    result = _fit("bpr", [rec])
    kinds = [c[0] for c in rec.calls]
    assert kinds == ["evaluation", "epoch"] * 3 + ["fit_end"]
    assert [c[1] for c in rec.calls if c[0] == "epoch"] == [1, 2, 3]
    assert all(c[2] == 0.01 for c in rec.calls if c[0] == "epoch")
    # the metrics handed over are the history's
    assert [c[2] for c in rec.calls if c[0] == "evaluation"] == [
        round(h["valid"]["recall@20"], 6) for h in result.history]
    assert rec.calls[-1] == ("fit_end", result.best_epoch)


def test_closed_form_model_gets_one_evaluation_and_fit_end():
    rec = Recorder()
    _fit("pop", [rec])
    assert [c[0] for c in rec.calls] == ["evaluation", "fit_end"] and rec.calls[0][1] == 0


def test_any_object_with_some_hooks_is_a_callback():
    class OnlyEnd:
        seen = None

        def on_fit_end(self, trainer, result):
            OnlyEnd.seen = result.best_epoch

    _fit("bpr", [OnlyEnd()], epochs=1)
    assert OnlyEnd.seen == 1


@pytest.fixture
def run_file(tmp_path):
    output.configure()
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"name": "demo", "format": "demo", "demo": {"n_users": 60, "n_items": 40, "seed": 3,
                                                              "root": str(tmp_path / "demo_data")},
                 "split": {"method": "random", "seed": 1}},
        "train": {"epochs": 3, "num_threads": 1, "batch_size": 256, "seeds": [5], "patience": 10},
        "eval": {"ks": [10, 20], "beyond_accuracy": False},
        "output_dir": str(tmp_path / "runs"),
    }))
    yield path
    output.configure()


def test_tensorboard_event_files_hold_loss_and_valid_metric_per_epoch(run_file, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = tmp_path / "tb"
    assert cli.main(["train", "--config", str(run_file), "--model", "bpr", "--tensorboard", str(tb)]) == 0
    out = capsys.readouterr().out
    assert f"tensorboard --logdir {tb}" in out and "report: fusionrec report " in out
    assert out.strip().splitlines()[-1].startswith("run directory: ")
    (seed_dir,) = list(tb.glob("*/seed5"))
    acc = EventAccumulator(str(seed_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "valid/recall@20", "train/lr", "time/seconds_per_epoch"} <= set(tags)
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3]
    assert [e.step for e in acc.Scalars("valid/recall@20")] == [1, 2, 3]
    losses = [e.value for e in acc.Scalars("train/loss")]
    assert all(v > 0 for v in losses)
    # the same numbers as train_history.json
    import json

    (run_dir,) = list((tmp_path / "runs").iterdir())
    history = json.loads((run_dir / "train_history.json").read_text())["5"]
    assert losses == pytest.approx([h["loss"] for h in history], rel=1e-5)
    valid = [e.value for e in acc.Scalars("valid/recall@20")]
    assert valid == pytest.approx([h["valid"]["recall@20"] for h in history], rel=1e-5)
    # embedding projector: item vectors with titles/categories and thumbnails
    config = (seed_dir / "projector_config.pbtxt").read_text()
    assert "metadata_path" in config and "sprite" in config
    (meta,) = list(seed_dir.glob("*/items/metadata.tsv"))
    header, *rows = meta.read_text().splitlines()
    assert header.split("\t")[0] == "title" and len(rows) == 40


def test_missing_tensorboard_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(UserError, match="tensorboard") as err:
        TensorBoardCallback(tmp_path)
    assert "fusionrec[track]" in err.value.message


def test_mlflow_names():
    assert mlflow_key("recall@20") == "recall_at_20"


def test_mlflow_tracking(tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'fusionrec[mlflow]')")
    from fusionrec.train.callbacks import MLflowCallback

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # MLflow 3 keeps its file store in maintenance mode
    cb = MLflowCallback(uri, "test-run", {"model": "bpr"})
    _fit("bpr", [cb])
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("fusionrec").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2, 3]
    assert len(client.get_metric_history(run.info.run_id, "valid_recall_at_20")) == 3
    assert run.data.params["model"] == "bpr"


def test_projector_samples_a_large_catalogue(tmp_path):
    import torch
    from PIL import Image

    class Model:
        def item_embeddings(self):
            return torch.randn(50, 4)

    class FakeTrainer:
        model = Model()

    Image.new("RGB", (40, 20), (200, 10, 10)).save(tmp_path / "a.png")
    paths = [tmp_path / "a.png" if i % 2 else None for i in range(50)]
    labels = {"title": [f"item {i}\twith a tab" for i in range(50)], "category": ["x", "y"] * 25}
    cb = TensorBoardCallback(tmp_path / "tb", labels, paths, max_items=10)
    cb._add_projector(FakeTrainer(), step=3)
    cb.writer.close()
    (meta,) = list((tmp_path / "tb").glob("*/items/metadata.tsv"))
    header, *rows = meta.read_text().splitlines()
    assert header == "title\tcategory" and len(rows) == 10
    assert all(len(r.split("\t")) == 2 for r in rows)  # the tab inside a title does not shift columns
    (sprite,) = list((tmp_path / "tb").glob("*/items/sprite.png"))
    assert Image.open(sprite).size == (4 * 32, 4 * 32)  # 10 thumbnails on a 4 x 4 grid of 32 px tiles
