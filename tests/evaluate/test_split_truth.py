"""Ground truth and masks of a split, built directly (the Evaluator caches these)."""
import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.evaluate.beyond import beyond_accuracy_metrics
from fusionrec.evaluate.split_truth import build_split_truth, seen_mask


def _csr(rows: list[tuple[int, int]], shape: tuple[int, int] = (3, 5)) -> sp.csr_matrix:
    r, c = zip(*rows) if rows else ((), ())
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=shape)


POSITIVES = {
    "train": _csr([(0, 0), (1, 1), (2, 2)]),
    "valid": _csr([(0, 1), (1, 2)]),
    "test": _csr([(0, 1), (0, 3), (2, 4)]),   # user 0's item 1 is also a valid positive
}


def test_full_protocol_masks_valid_when_testing_and_drops_unrankable_truth() -> None:
    info, total = build_split_truth(POSITIVES, "test", "full", "all", 0, torch.device("cpu"))
    assert total == 2 and info.users.tolist() == [0, 2]
    assert info.truth.toarray()[0].tolist() == [0, 0, 0, 1, 0]   # item 1 was seen in valid
    assert info.mask.toarray()[0].tolist() == [1, 1, 0, 0, 0]
    assert info.n_pos.tolist() == [1, 1] and info.candidates is None


def test_mmrec_protocol_masks_train_only_and_keeps_all_truth() -> None:
    info, _ = build_split_truth(POSITIVES, "test", "mmrec", "test_items", 0, torch.device("cpu"))
    assert info.truth.toarray()[0].tolist() == [0, 1, 0, 1, 0]
    assert info.mask.toarray()[0].tolist() == [1, 0, 0, 0, 0]
    assert info.candidates.tolist() == [False, True, False, True, True]
    assert info.non_candidates_t.tolist() == [True, False, True, False, False]


def test_user_sample_is_seeded_and_counts_every_user() -> None:
    a, total = build_split_truth(POSITIVES, "test", "mmrec", "all", 1, torch.device("cpu"))
    b, _ = build_split_truth(POSITIVES, "test", "mmrec", "all", 1, torch.device("cpu"))
    assert total == 2 and len(a.users) == 1 and a.users.tolist() == b.users.tolist()


def test_seen_mask_for_serving_hides_every_split() -> None:
    assert seen_mask(POSITIVES, "all", "full").toarray()[0].tolist() == [1, 1, 0, 1, 0]


def test_beyond_accuracy_counts_coverage_over_candidates() -> None:
    lists = np.array([[0, 1], [0, -1]])
    out = beyond_accuracy_metrics(lists, n_items=5, n_candidates=4, ks=(1, 2), self_info=None,
                                  unit_features=None, feature_present=None)
    assert out == {"coverage@1": 0.25, "coverage@2": 0.5}
