"""Scoring one batch of users and taking the top K after masking.

Shared by full-ranking evaluation and ``Evaluator.topk`` (serving a known user): a uniform
``users -> scores`` callable over a model or a plain score function, scores made safe to
mask in place, masking with ``-inf``, and a NaN-checked ``torch.topk``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

Scorer = Callable[[torch.Tensor], torch.Tensor]


def batch_scorer(model_or_fn: Any) -> tuple[Scorer, Callable[[], None], set[int]]:
    """Uniform ``LongTensor users -> float scores`` callable, a cleanup hook, and the
    storage pointers of the model's parameters/buffers (scores sharing them are copied).

    A model is switched to eval mode (no dropout) for the pass and put back in its
    previous mode by the hook, since the trainer validates mid-training.
    """
    if hasattr(model_or_fn, "full_sort_predict"):
        model = model_or_fn
        was_training = bool(getattr(model, "training", False))
        if hasattr(model, "eval"):
            model.eval()

        def restore() -> None:
            if was_training and hasattr(model, "train"):
                model.train(True)

        owned: set[int] = set()
        if isinstance(model, torch.nn.Module):
            for t in (*model.parameters(), *model.buffers()):
                owned.add(t.untyped_storage().data_ptr())
        from fusionrec.train.device import compute_on, model_device

        dev = model_device(model)   # the users go where the model is (train.device); scores come back

        def score(users: torch.Tensor) -> torch.Tensor:
            with compute_on(dev):
                return model.full_sort_predict(users.to(dev))

        return score, restore, owned
    if callable(model_or_fn):
        fn = model_or_fn

        def from_numpy(users: torch.Tensor) -> torch.Tensor:
            out = fn(users.cpu().numpy())
            # a numpy result may be the caller's own array: always work on a copy
            return torch.tensor(out) if isinstance(out, np.ndarray) else torch.as_tensor(out).clone()

        return from_numpy, (lambda: None), set()
    raise TypeError(
        f"expected a RecModel or a score function users -> [B, n_items], got {type(model_or_fn).__name__}"
    )


def writable_scores(score: Scorer, users: np.ndarray, owned: set[int], n_items: int,
                    device: torch.device) -> torch.Tensor:
    """Scores of a batch as a float32 tensor on ``device`` that may be written in place."""
    users_t = torch.from_numpy(users).to(device)
    raw = torch.as_tensor(score(users_t))
    if raw.shape != (len(users), n_items):
        raise ValueError(
            f"scores for {len(users)} users have shape {tuple(raw.shape)}; expected "
            f"({len(users)}, {n_items}) = (users in the batch, items in the dataset)"
        )
    scores = raw.to(device=device, dtype=torch.float32)
    # Masking writes -inf in place. A fresh result (e.g. a matmul) is ours to modify;
    # a view (a broadcast popularity row, a slice of a cached score matrix) or storage
    # shared with a parameter/buffer is copied first so the model is never corrupted.
    if scores is raw and (raw._base is not None or raw.untyped_storage().data_ptr() in owned
                          or not raw.is_contiguous()):
        scores = raw.clone(memory_format=torch.contiguous_format)
    return scores


def apply_mask(scores: torch.Tensor, flat_keys: np.ndarray, flat_keys_t: torch.Tensor | None,
               non_candidates: torch.Tensor | None, numpy_mask: bool) -> None:
    """Set masked positions (flat indices into the contiguous batch) and non-candidates to -inf."""
    if numpy_mask and scores.device.type == "cpu":
        # numpy fancy assignment: single-threaded, so no thread-pool wake-up for a few
        # thousand writes (that overhead dominated on a busy 2-core machine)
        scores.numpy().reshape(-1)[flat_keys] = -np.inf
    else:
        keys = flat_keys_t if flat_keys_t is not None else torch.from_numpy(flat_keys).to(scores.device)
        scores.view(-1).index_fill_(0, keys, float("-inf"))
    if non_candidates is not None:
        scores.masked_fill_(non_candidates, float("-inf"))


def masked_topk(scores: torch.Tensor, k: int, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``torch.topk`` of masked scores as numpy ``(ids with -1 for empty slots, values)``, width ``k``."""
    kk = min(k, scores.shape[1])
    vals_t, idx_t = torch.topk(scores, kk, dim=1)
    vals, idx = vals_t.cpu().numpy(), idx_t.cpu().numpy()
    # topk ranks NaN above every number, so any NaN that survived masking shows up here;
    # checking the [B, k] result is far cheaper than scanning the [B, n_items] scores
    nan_rows = np.isnan(vals).any(axis=1)
    if nan_rows.any():
        bad = int(users[int(np.flatnonzero(nan_rows)[0])])
        raise ValueError(
            f"the model produced NaN scores (first for user {bad}); "
            "check for diverged training (lower the learning rate) or NaN features"
        )
    ids = np.full((len(users), k), -1, dtype=np.int64)
    values = np.full((len(users), k), -np.inf, dtype=np.float32)
    valid = vals > -np.inf   # fewer rankable items than K: empty slots
    ids[:, :kk] = np.where(valid, idx, -1)
    values[:, :kk] = np.where(valid, vals, -np.inf)
    return ids, values
