"""The evaluator's protocols and candidate sets, and the check of its arguments (a bad one names its config key)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError
from fusionrec.evaluate.split_truth import EVAL_SPLITS

PROTOCOLS = ("full", "mmrec")
CANDIDATES = ("all", "test_items")


def check_evaluator_arguments(dataset: Dataset, protocol: str, candidates: str, batch_users: Any, max_users: Any,
                     beyond_accuracy_splits: Sequence[str]) -> None:
    """Reject a bad evaluator argument with a message naming the config key and a fix."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown evaluation protocol {protocol!r}", where="eval.protocol",
                        fix=f"use one of {list(PROTOCOLS)}")
    if candidates not in CANDIDATES:
        raise UserError(f"unknown candidate set {candidates!r}", where="eval.candidates",
                        fix=f"use one of {list(CANDIDATES)}")
    if isinstance(batch_users, bool) or not isinstance(batch_users, (int, np.integer)) or batch_users <= 0:
        raise UserError(f"batch_users={batch_users!r} is not a positive integer",
                        where="eval.batch_users", fix="use e.g. 1024 (lower it if memory is short)")
    if not dataset.has_split:
        raise UserError(
            f"dataset {dataset.name!r} has no train/valid/test split, so there is nothing to evaluate",
            where="data.split", fix="set data.split.method (random, temporal, leave_last_out, cold_start)",
        )
    if isinstance(max_users, bool) or not isinstance(max_users, (int, np.integer)) or max_users < 0:
        raise UserError(f"max_users={max_users!r} is not a non-negative integer", where="eval.max_users",
                        fix="use 0 (every user) or a sample size such as 100000")
    bad = [x for x in beyond_accuracy_splits if x not in EVAL_SPLITS]
    if bad:
        raise UserError(f"beyond_accuracy_splits has unknown split(s) {bad}",
                        where="Evaluator(beyond_accuracy_splits=...)", fix=f"use some of {list(EVAL_SPLITS)}")


__all__ = ["CANDIDATES", "PROTOCOLS", "check_evaluator_arguments"]
