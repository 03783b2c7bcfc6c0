"""Time-ordered user histories and the ``sequence`` batch kind for next-item models.

:func:`user_sequences` turns interaction rows into one time-ordered item list per
user (positives only; ties in time keep the rows' order, as
:func:`fusionrec.data.split.leave_last_out_split` does, so a history never ends on
an event the split put later). :class:`SequenceSampler` cuts them into training
windows for models whose ``batch_kind`` is ``"sequence"``
(:mod:`fusionrec.models.sequential`):

``{"user": [B], "input": [B, L], "target": [B, L], "negatives": [B, L, K] (optional)}``

Items are shifted by one (0 = padding) and windows are right-aligned (left padding),
so column ``L - 1`` always holds the latest event. ``target[b, t]`` is the item that
followed ``input[b, t]``, or 0 where no loss is taken. Every training transition of a
user is a target exactly once per epoch: a user with more than ``max_len``
transitions gets several windows whose target spans do not overlap, and each window's
input still holds the ``max_len`` items before its last target, so every target sees
as much context as the model allows. The cut points move by a random offset every
epoch (drawn from the trainer's ``(seed, epoch)`` stream), so over epochs each target
is seen with different context lengths. This trains on all positions of a sequence at
once, as the SASRec paper does, instead of one target per prefix (RecBole's data
augmentation), which is why an epoch is much cheaper for the same transitions.

``train.batch_size`` counts target positions, as it counts interactions for the
pairwise kind: a batch holds ``ceil(batch_size / max_len)`` windows.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from fusionrec.data.dataset import TrainData, positive_rows
from fusionrec.errors import UserError
from fusionrec.train.sampling import Sampler


def user_sequences(frame: pd.DataFrame, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr [n_users + 1], items)``: each user's positive items ordered by time.

    ``items[indptr[u]:indptr[u + 1]]`` is user ``u``'s history, oldest first. Rows
    without a timestamp count as the oldest; ties keep the frame's row order.
    """
    if len(frame) == 0:
        return np.zeros(n_users + 1, np.int64), np.empty(0, np.int64)
    rows = frame[positive_rows(frame)] if "label" in frame.columns else frame
    users = rows["user"].to_numpy(np.int64)
    items = rows["item"].to_numpy(np.int64)
    if "timestamp" in rows.columns:
        ts = rows["timestamp"].to_numpy(np.float64)
        ts = np.where(np.isnan(ts), -np.inf, ts)
    else:
        ts = np.zeros(len(rows))
    order = np.lexsort((np.arange(len(rows)), ts, users))  # user, then time, then row order
    counts = np.bincount(users, minlength=n_users)
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int64)
    return indptr, items[order]


def pad_left(sequences: list[np.ndarray], length: int) -> np.ndarray:
    """``[len(sequences), length]`` of item indices + 1, the latest ``length`` items right-aligned, 0 = pad."""
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq, dtype=np.int64)[-length:]
        if len(tail):
            out[row, length - len(tail):] = tail + 1
    return out


class SequenceSampler(Sampler):
    """Training windows over each user's time-ordered history (see the module docstring)."""

    kind = "sequence"

    def __init__(self, data: TrainData, batch_size: int, num_negatives: int = 0, max_len: int = 50) -> None:
        super().__init__(data, batch_size)
        if max_len < 1:
            raise UserError(f"max_len must be at least 1, got {max_len}", "model.params.max_len",
                            "use the history length the model should read, e.g. 50")
        if num_negatives < 0:
            raise UserError(f"num_negatives must be >= 0, got {num_negatives}", "model.params.num_negatives",
                            "use 0 for the full softmax or e.g. 100 sampled negatives")
        self.max_len = int(max_len)
        self.num_negatives = int(num_negatives)
        self.indptr, self.items = user_sequences(data.train_frame, data.n_users)
        lengths = np.diff(self.indptr)
        self.users = np.flatnonzero(lengths >= 2)
        if self.users.size == 0:
            raise UserError("no user has two training events, so there is no next item to learn",
                            "sequence sampler", "sequential models need histories: use a split that keeps "
                                                "several events per user in train (leave_last_out)")
        self.windows_per_batch = max(1, int(np.ceil(self.batch_size / self.max_len)))

    def n_rows(self) -> int:
        transitions = np.diff(self.indptr)[self.users] - 1
        return int(np.ceil(transitions / self.max_len).sum())

    def __len__(self) -> int:
        return int(np.ceil(self.n_rows() / self.windows_per_batch))

    def _windows(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every window of this epoch: user, input and target rows."""
        L = self.max_len
        users, inputs, targets = [], [], []
        offsets = rng.integers(0, L, size=len(self.users))
        for u, off in zip(self.users.tolist(), offsets.tolist()):
            seq = self.items[self.indptr[u]:self.indptr[u + 1]]
            n = len(seq)
            # target positions 1..n-1; window ends (exclusive) at n, then every L before a random cut
            ends = [n] + list(range(n - int(off) if off else n - L, 1, -L))
            for k, end in enumerate(ends):
                start = max(1, ends[k + 1]) if k + 1 < len(ends) else 1
                if start >= end:
                    continue
                # input = the L items before each target of the window, right-aligned at the last target
                inp = seq[max(0, end - 1 - L):end - 1]
                tgt = np.zeros(L, np.int64)
                span = end - start
                tgt[L - span:] = seq[start:end] + 1
                row = np.zeros(L, np.int64)
                row[L - len(inp):] = inp + 1
                users.append(u)
                inputs.append(row)
                targets.append(tgt)
        return np.asarray(users, np.int64), np.stack(inputs), np.stack(targets)

    def epoch(self, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        users, inputs, targets = self._windows(rng)
        order = rng.permutation(len(users))
        columns = {"user": users[order], "input": inputs[order], "target": targets[order]}
        if self.num_negatives:
            # uniform over items seen in training (shifted by one like the targets); a draw equal to
            # the target is masked by the model's loss
            shape = (len(users), self.max_len, self.num_negatives)
            columns["negatives"] = self.pool[rng.integers(0, len(self.pool), size=shape)] + 1
        n = len(users)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in columns.items()}
        step = self.windows_per_batch
        for start in range(0, n, step):
            yield {k: t[start:start + step] for k, t in tensors.items()}


__all__ = ["SequenceSampler", "pad_left", "user_sequences"]
