"""The trainer's checkpoint file: written atomically after every epoch, read back by ``train.resume``.

A checkpoint holds plain tensors and numbers only (state dicts, optimizer state, the epoch, the best
weights, the history), so it loads with ``torch.load(weights_only=True)``, and with
``map_location="cpu"``: a run trained on a GPU resumes, or is read, on a machine without one.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from fusionrec import output
from fusionrec.errors import UserError

CHECKPOINT_NAME = "checkpoint.pt"
# the trainer's loop state a checkpoint carries besides the model, the optimizer and the averaged weights
STATE_KEYS = ("epoch", "best_epoch", "best_score", "bad_evals", "best_state", "best_valid", "history",
              "train_seconds", "eval_seconds", "n_evals")
_DAMAGED_FIX = "train again without train.resume (the run starts over from epoch 0), or restore the file from a backup"


def write_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Save ``payload`` at ``path``; a crash mid-write never leaves a corrupt checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def read_checkpoint(path: Path | None, model_name: str) -> dict[str, Any] | None:
    """The checkpoint a resumed ``model_name`` run continues from.

    None when the run was killed while its first checkpoint was written (the partial file is
    removed and training starts at epoch 0). A missing, damaged or foreign checkpoint is a
    :class:`UserError` that says how to go on.
    """
    partial = path.with_suffix(".tmp") if path is not None else None
    if path is not None and not path.is_file() and partial.is_file():
        partial.unlink()
        output.info(f"[{model_name}] {partial} was left by an interrupted save (no complete "
                    "checkpoint yet); removed it, training this seed from epoch 0")
        return None
    if path is None or not path.is_file():
        raise UserError(
            "train.resume is set but there is no checkpoint to resume from",
            str(path) if path is not None else "Trainer(out_dir=None)",
            "train once without train.resume (a checkpoint is written after every epoch while "
            "train.checkpoint is true, the default); train.resume then continues that run",
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise UserError(f"the checkpoint is damaged and cannot be resumed ({str(err)[:120]})", str(path),
                        _DAMAGED_FIX) from None
    if not isinstance(payload, dict) or not {"model", "optimizer", "epoch"} <= set(payload):
        raise UserError("the checkpoint is damaged and cannot be resumed (not a training checkpoint)",
                        str(path), _DAMAGED_FIX)
    if payload.get("model_name") != model_name:
        raise UserError(
            f"checkpoint is for model {payload.get('model_name')!r}, not {model_name!r}",
            str(path), "resume with the same model, or use a new output directory",
        )
    return payload


__all__ = ["CHECKPOINT_NAME", "STATE_KEYS", "read_checkpoint", "write_checkpoint"]
