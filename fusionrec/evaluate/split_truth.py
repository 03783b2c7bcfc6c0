"""Ground truth and masks of one evaluation split, as CSR matrices computed once.

The *mask* holds the items hidden from a user's ranking (training positives; under the
``full`` protocol also the validation positives when the test split is scored). Under
``full`` a held-out positive that is also masked is dropped from the truth, since no
model could rank it. :class:`~fusionrec.evaluate.evaluator.Evaluator` caches one
:class:`SplitTruth` per split, which makes repeated validation during training cheap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

EVAL_SPLITS = ("valid", "test")
# seeds the user sample of eval.max_users (fixed: every run and model sees the same users)
EVAL_SAMPLE_SEED = 20240517


@dataclass
class SplitTruth:
    """Precomputed ground truth and mask of one split, rows aligned with ``users``."""

    users: np.ndarray             # [U] internal user ids evaluated, ascending
    truth: sp.csr_matrix          # [U, n_items] held-out positives
    mask: sp.csr_matrix           # [U, n_items] items to exclude from the ranking
    truth_keys: np.ndarray        # [nnz(truth)] sorted keys local_row * n_items + item
    mask_keys: np.ndarray         # [nnz(mask)] flat positions local_row * n_items + item
    mask_keys_t: torch.Tensor     # the same on ``device`` (for masking on an accelerator)
    n_pos: np.ndarray             # [U] int64
    candidates: np.ndarray | None     # [n_items] bool, None = all items
    non_candidates_t: torch.Tensor | None  # [n_items] bool on device: True = never ranked


def flat_keys(mat: sp.csr_matrix, n_items: int) -> np.ndarray:
    """``row * n_items + col`` of every stored entry, in CSR order (sorted when indices are)."""
    rows = np.repeat(np.arange(mat.shape[0], dtype=np.int64), np.diff(mat.indptr))
    return rows * n_items + mat.indices.astype(np.int64)


def seen_mask(positives: dict[str, sp.csr_matrix], split: str, protocol: str) -> sp.csr_matrix:
    """Items hidden from the ranking when scoring ``split`` (full user x item CSR of ones);
    ``split="all"`` hides every known positive, as serving does for a known user."""
    mask = positives["train"]
    if split == "test" and protocol == "full":
        mask = mask + positives["valid"]
    elif split == "all":
        mask = mask + positives["valid"] + positives["test"]
    mask = sp.csr_matrix(mask, copy=True)
    mask.data[:] = 1.0
    return mask


def build_split_truth(positives: dict[str, sp.csr_matrix], split: str, protocol: str, candidates: str,
                      max_users: int, device: torch.device) -> tuple[SplitTruth, int]:
    """The :class:`SplitTruth` of ``split`` and the number of users with a positive in it
    (before the seeded ``max_users`` sample)."""
    mask_full = seen_mask(positives, split, protocol)
    n_items = mask_full.shape[1]
    truth_full = positives[split]
    if protocol == "full":
        # a held-out positive that is also masked can never be ranked: drop it from the truth
        truth_full = sp.csr_matrix(truth_full - truth_full.multiply(mask_full))
        truth_full.eliminate_zeros()
    users = np.flatnonzero(np.diff(truth_full.indptr) > 0).astype(np.int64)
    n_users_total = len(users)
    if 0 < max_users < len(users):
        rng = np.random.default_rng([EVAL_SAMPLE_SEED, EVAL_SPLITS.index(split)])
        users = np.sort(rng.choice(users, size=max_users, replace=False))
    truth = truth_full[users]
    mask = mask_full[users]
    candidate_items = non_candidates_t = None
    if candidates == "test_items":
        candidate_items = np.zeros(n_items, dtype=bool)
        candidate_items[positives[split].indices] = True
        non_candidates_t = torch.from_numpy(~candidate_items).to(device)
    truth.sort_indices()
    mask_keys = flat_keys(mask, n_items)
    info = SplitTruth(
        users=users, truth=truth, mask=mask, truth_keys=flat_keys(truth, n_items),
        mask_keys=mask_keys, mask_keys_t=torch.from_numpy(mask_keys).to(device),
        n_pos=np.diff(truth.indptr).astype(np.int64),
        candidates=candidate_items, non_candidates_t=non_candidates_t,
    )
    return info, n_users_total
