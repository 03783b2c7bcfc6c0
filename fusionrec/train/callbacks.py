"""Trainer callbacks: a small public interface, and TensorBoard / MLflow logging built on it.

A callback is any object with some of these methods (subclass :class:`Callback`, whose
defaults do nothing, and override what you need)::

    on_evaluation(trainer, epoch, metrics, improved)   # after each validation pass
    on_epoch_end(trainer, record)                      # after each epoch (record: epoch, loss, lr,
                                                       #   seconds, valid when evaluated)
    on_fit_end(trainer, result)                        # once, with the TrainResult (best weights restored)

:class:`~fusionrec.train.trainer.Trainer` calls them in that order; a closed-form model
(``pop``, ``itemknn``, ``ease``) has no epochs, so it gets ``on_evaluation`` (epoch 0) and
``on_fit_end`` only. Pass them as ``Trainer(..., callbacks=[...])``; ``fusionrec train``
builds them from ``train.tensorboard`` / ``train.mlflow`` (:func:`callbacks_for_run`).

Example -- stop-watch of the validation metric::

    class PrintBest(Callback):
        def on_evaluation(self, trainer, epoch, metrics, improved):
            if improved:
                print(epoch, metrics[trainer.cfg.valid_metric])
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.errors import UserError

if TYPE_CHECKING:  # the trainer imports this module
    from fusionrec.data.dataset import Dataset
    from fusionrec.train.trainer import Trainer, TrainResult

# the projector's sprite must stay under 8192 x 8192 pixels: 2000 tiles of 32 px is 1440 px wide
PROJECTOR_MAX_ITEMS = 2000
PROJECTOR_THUMB = 32


class Callback:
    """Base class of trainer callbacks; every hook is optional (the defaults do nothing)."""

    def on_evaluation(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float], improved: bool) -> None:
        """After a validation pass: ``metrics`` is the evaluator's dict, ``improved`` whether it is
        the best so far on ``train.valid_metric``."""

    def on_epoch_end(self, trainer: Trainer, record: Mapping[str, Any]) -> None:
        """After an epoch: ``record`` is its ``train_history.json`` entry (``epoch``, ``loss``,
        ``lr``, ``seconds`` and, on evaluated epochs, ``valid``)."""

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Once, after training; the model holds the chosen (valid-best) weights."""


class CallbackList(Callback):
    """Calls every callback of a list in order (what the trainer holds)."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_evaluation(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float], improved: bool) -> None:
        for cb in self.callbacks:
            if hasattr(cb, "on_evaluation"):
                cb.on_evaluation(trainer, epoch, metrics, improved)

    def on_epoch_end(self, trainer: Trainer, record: Mapping[str, Any]) -> None:
        for cb in self.callbacks:
            if hasattr(cb, "on_epoch_end"):
                cb.on_epoch_end(trainer, record)

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        for cb in self.callbacks:
            if hasattr(cb, "on_fit_end"):
                cb.on_fit_end(trainer, result)


def _scalar_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics worth a curve: finite numbers, without the evaluated-user count."""
    out = {}
    for key, value in metrics.items():
        if key in ("n_users", "n_users_total") or value is None:
            continue
        value = float(value)
        if np.isfinite(value):
            out[key] = value
    return out


# ---------------------------------------------------------------------- TensorBoard
class TensorBoardCallback(Callback):
    """Write TensorBoard event files under ``log_dir``.

    Scalars per epoch: ``train/loss``, ``train/lr``, ``time/seconds_per_epoch`` and
    ``valid/<metric>`` (``valid/recall@20``...); at the end the item vectors of the chosen model
    (``model.item_embeddings()``) go to the embedding projector, labelled with ``item_labels``
    (column name -> one text per item: title, category) and with thumbnails of ``image_paths``
    (one path or None per item) as the sprite. Needs the ``tensorboard`` package
    (``pip install 'fusionrec[track]'``).
    """

    def __init__(self, log_dir: str | Path, item_labels: Mapping[str, list[str]] | None = None,
                 image_paths: list[Path | None] | None = None, max_items: int = PROJECTOR_MAX_ITEMS) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # torch's writer needs the tensorboard package
            raise UserError("TensorBoard logging needs the tensorboard package", "train.tensorboard",
                            "pip install 'fusionrec[track]' (or pip install tensorboard), or drop "
                            "train.tensorboard / --tensorboard") from err
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.item_labels = dict(item_labels or {})
        self.image_paths = image_paths
        self.max_items = int(max_items)

    def on_evaluation(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float], improved: bool) -> None:
        for key, value in _scalar_metrics(metrics).items():
            self.writer.add_scalar(f"valid/{key}", value, epoch)

    def on_epoch_end(self, trainer: Trainer, record: Mapping[str, Any]) -> None:
        epoch = int(record["epoch"])
        loss = record.get("loss")
        if loss is not None and np.isfinite(loss):
            self.writer.add_scalar("train/loss", float(loss), epoch)
        if record.get("lr") is not None:
            self.writer.add_scalar("train/lr", float(record["lr"]), epoch)
        self.writer.add_scalar("time/seconds_per_epoch", float(record.get("seconds", 0.0)), epoch)
        self.writer.flush()  # a curve TensorBoard can show while training runs

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        if result.best_valid:
            for key, value in _scalar_metrics(result.best_valid).items():
                self.writer.add_scalar(f"best/{key}", value, int(result.best_epoch))
        self._add_projector(trainer, int(result.best_epoch))
        self.writer.close()

    def _add_projector(self, trainer: Trainer, step: int) -> None:
        import torch

        from fusionrec.train.device import compute_on

        with torch.no_grad(), compute_on(getattr(trainer, "device", torch.device("cpu"))):
            vectors = trainer.model.item_embeddings()
        if vectors is None:
            return  # pop, itemknn, ease: no item vectors to project
        mat = vectors.detach().float().cpu().numpy()
        # a sample spread over the catalogue when it is larger than the sprite allows
        rows = np.arange(len(mat))
        if len(rows) > self.max_items:
            rows = np.sort(np.random.default_rng(0).choice(len(mat), self.max_items, replace=False))
        header = list(self.item_labels)
        metadata = None
        if header:
            metadata = [[_tsv_cell(self.item_labels[h][r]) for h in header] for r in rows]
            if len(header) == 1:
                metadata = [m[0] for m in metadata]
        label_img = None
        if self.image_paths and len(self.image_paths) == len(mat):
            import torch

            from fusionrec.report.items import thumbnail_tensor

            # thumbnails of the projected items only: a large catalogue is sampled above
            label_img = torch.from_numpy(thumbnail_tensor([self.image_paths[r] for r in rows], PROJECTOR_THUMB))
        self.writer.add_embedding(mat[rows], metadata=metadata, label_img=label_img, global_step=step,
                                  tag="items", metadata_header=header if len(header) > 1 else None)


def _tsv_cell(value: Any) -> str:
    # the projector's metadata is a TSV file: tabs and newlines would shift its columns
    return re.sub(r"[\t\r\n]+", " ", str(value)) or "?"


# ---------------------------------------------------------------------- MLflow
class MLflowCallback(Callback):
    """Track a run with MLflow (``pip install 'fusionrec[mlflow]'``): parameters once, then
    ``train_loss``, ``lr``, ``seconds_per_epoch`` and ``valid_<metric>`` per epoch, the chosen
    epoch's metrics as ``best_<metric>``. ``tracking_uri`` is a database (``sqlite:///mlflow.db``) or a
    server (MLflow 3 refuses a plain ``mlruns`` folder unless ``MLFLOW_ALLOW_FILE_STORE=true``)."""

    def __init__(self, tracking_uri: str, run_name: str, params: Mapping[str, Any] | None = None,
                 experiment: str = "fusionrec") -> None:
        try:
            import mlflow
        except ImportError as err:
            raise UserError("MLflow tracking needs the mlflow package", "train.mlflow",
                            "pip install 'fusionrec[mlflow]', or drop train.mlflow / --mlflow") from err
        self.mlflow = mlflow
        self.tracking_uri = str(tracking_uri)
        self.run_name = run_name
        self.params = dict(params or {})
        self.experiment = experiment
        self._run = None

    def _ensure_run(self) -> None:
        if self._run is not None:
            return
        self.mlflow.set_tracking_uri(self.tracking_uri)
        self.mlflow.set_experiment(self.experiment)
        self._run = self.mlflow.start_run(run_name=self.run_name)
        if self.params:
            self.mlflow.log_params({k: str(v)[:500] for k, v in self.params.items()})

    def on_evaluation(self, trainer: Trainer, epoch: int, metrics: Mapping[str, float], improved: bool) -> None:
        self._ensure_run()
        self.mlflow.log_metrics({f"valid_{mlflow_key(k)}": v for k, v in _scalar_metrics(metrics).items()},
                                step=epoch)

    def on_epoch_end(self, trainer: Trainer, record: Mapping[str, Any]) -> None:
        self._ensure_run()
        values = {"seconds_per_epoch": float(record.get("seconds", 0.0))}
        if record.get("loss") is not None and np.isfinite(record["loss"]):
            values["train_loss"] = float(record["loss"])
        if record.get("lr") is not None:
            values["lr"] = float(record["lr"])
        self.mlflow.log_metrics(values, step=int(record["epoch"]))

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        self._ensure_run()
        best = {f"best_{mlflow_key(k)}": v for k, v in _scalar_metrics(result.best_valid).items()}
        best["best_epoch"] = float(result.best_epoch)
        self.mlflow.log_metrics(best)
        self.mlflow.end_run()
        self._run = None


def mlflow_key(metric: str) -> str:
    """MLflow metric names allow letters, digits, ``_-./`` and spaces: ``recall@20`` -> ``recall_at_20``."""
    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", metric.replace("@", "_at_"))


# ---------------------------------------------------------------------- from a run config
def projector_labels(dataset: Dataset) -> tuple[dict[str, list[str]], list[Path | None] | None]:
    """Labels (title and, when the data has one, a category) and image paths of every item."""
    from fusionrec.report.items import (
        category_column,
        image_paths,
        item_categories,
        item_titles,
    )

    labels = {"title": item_titles(dataset.items, list(dataset.item_ids))}
    column = category_column(dataset.items)
    if column is not None:
        labels[column] = item_categories(dataset.items, column)
    paths = image_paths(dataset.items, dataset.root)
    return labels, (paths if any(p is not None for p in paths) else None)


def callbacks_for_run(cfg: Any, dataset: Dataset, run_dir: str | Path, seed: int) -> list[Callback]:
    """The callbacks ``train.tensorboard`` and ``train.mlflow`` of ``cfg`` (a RunConfig) ask for.

    TensorBoard logs go to ``<train.tensorboard>/<run folder name>/seed<seed>``, so several runs
    and seeds sit side by side in one ``tensorboard --logdir``.
    """
    callbacks: list[Callback] = []
    run_name = Path(run_dir).name
    tb_dir = getattr(cfg.train, "tensorboard", None)
    if tb_dir:
        t0 = time.perf_counter()
        labels, paths = projector_labels(dataset)
        callbacks.append(TensorBoardCallback(Path(tb_dir) / run_name / f"seed{seed}", labels, paths))
        from fusionrec import output

        output.detail(f"tensorboard: {Path(tb_dir) / run_name / f'seed{seed}'} "
                      f"(projector labels in {time.perf_counter() - t0:.1f}s)")
    uri = getattr(cfg.train, "mlflow", None)
    if uri:
        params = {"model": cfg.model.name, "dataset": cfg.data.name, "seed": seed, "lr": cfg.train.lr,
                  "batch_size": cfg.train.batch_size, "valid_metric": cfg.train.valid_metric,
                  **{f"model.{k}": v for k, v in cfg.model.params.items()}}
        callbacks.append(MLflowCallback(uri, f"{run_name}-seed{seed}", params))
    return callbacks


__all__ = [
    "Callback",
    "CallbackList",
    "MLflowCallback",
    "TensorBoardCallback",
    "callbacks_for_run",
    "mlflow_key",
    "projector_labels",
]
