"""Full-ranking evaluation: every user is ranked against the whole catalogue.

Protocols (``protocol=``):

``"full"`` (default)
    Training positives are masked (score ``-inf``) for every split. When the
    *test* split is scored, the user's *validation* positives are masked too:
    they are known interactions, not recommendations to find. Held-out
    positives that are masked (an item the user also has in train, or in valid
    when testing — possible with repeated interactions) are removed from the
    ground truth, since no model could rank them; users left with no positive
    are not evaluated.
``"mmrec"``
    Reproduces MMRec (``common/trainer.py`` + ``utils/dataloader.py``
    ``EvalDataLoader``): only training positives are masked, for valid and test
    alike, and the ground truth is every positive of the evaluated split.

In both protocols the users evaluated are the users with at least one
positive in the evaluated split; metrics are means over those users, with
MMRec's definitions (see :mod:`fusionrec.evaluate.metrics`). A *positive* is
an interaction whose ``label`` is not ``<= 0`` (implicit events have label 1;
a NaN label counts as an event).

Candidates (``candidates=``): ``"all"`` ranks the whole catalogue;
``"test_items"`` (the item cold-start protocol) ranks only the items that
occur in the evaluated split, every other item scoring ``-inf``.

Scoring is batched over users (``batch_users``), so memory is
``batch_users x n_items`` scores, never users x items. The ground truth and
masks of each split are CSR matrices computed once and cached, which makes
repeated validation during training cheap. Ties between equal scores are broken
by ``torch.topk`` (implementation-defined), as in MMRec.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from fusionrec.data.dataset import Dataset, FeatureModality
from fusionrec.errors import UserError
from fusionrec.evaluate.metrics import (
    RANKING_METRICS,
    canonical_metrics,
    check_ks,
    intra_list_diversity_per_user,
    normalise_features,
    novelty_per_user,
    ranking_metrics_per_user,
    self_information,
)

PROTOCOLS = ("full", "mmrec")
CANDIDATES = ("all", "test_items")
EVAL_SPLITS = ("valid", "test")

ScoreFn = Callable[[np.ndarray], Union[np.ndarray, torch.Tensor]]


@dataclass
class _SplitTruth:
    """Precomputed ground truth and mask of one split, rows aligned with ``users``."""

    users: np.ndarray             # [U] internal user ids evaluated, ascending
    truth: sp.csr_matrix          # [U, n_items] held-out positives
    mask: sp.csr_matrix           # [U, n_items] items to exclude from the ranking
    truth_keys: torch.Tensor      # [nnz(truth)] sorted keys local_row * n_items + item
    mask_rows: torch.Tensor
    mask_cols: torch.Tensor
    n_pos: torch.Tensor           # [U] float64
    candidates: torch.Tensor | None  # [n_items] bool, None = all items


class Evaluator:
    """Full-ranking top-K evaluation of a model (or any score function) on a split.

    Parameters
    ----------
    dataset:
        A :class:`~fusionrec.data.dataset.Dataset` with a train/valid/test split.
    ks:
        Cutoffs; every metric is reported at every K (``"recall@20"``).
    protocol:
        ``"full"`` (default) or ``"mmrec"``; see the module docstring.
    metrics:
        Any of ``recall, ndcg, precision, map, mrr, hit``.
    batch_users:
        Users scored at once; memory is about ``batch_users x n_items x 5`` bytes.
    candidates:
        ``"all"`` or ``"test_items"`` (rank only items present in the evaluated split).
    beyond_accuracy:
        Also report ``coverage@K`` (share of candidate items in any top-K list),
        ``novelty@K`` (mean ``-log2`` training-popularity share of recommended
        items) and, when item features are available, ``diversity@K`` (mean
        pairwise ``1 - cosine`` within a list).
    item_features:
        For diversity: an ``[n_items, d]`` array, a
        :class:`~fusionrec.data.dataset.FeatureModality`, or the name of one of
        the dataset's modalities.
    device:
        Where scores are masked and ranked (the model must live there too).
    """

    def __init__(
        self,
        dataset: Dataset,
        ks: Sequence[int] | int = (10, 20, 50),
        protocol: str = "full",
        metrics: Sequence[str] = RANKING_METRICS,
        batch_users: int = 1024,
        candidates: str = "all",
        beyond_accuracy: bool = False,
        item_features: np.ndarray | FeatureModality | str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
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
        self.dataset = dataset
        self.ks = check_ks(ks)
        self.kmax = max(self.ks)
        self.protocol = protocol
        self.metrics = canonical_metrics(metrics)
        self.batch_users = int(batch_users)
        self.candidates = candidates
        self.beyond_accuracy = bool(beyond_accuracy)
        self.device = torch.device(device)
        self.n_users = dataset.n_users
        self.n_items = dataset.n_items

        inter = dataset.interactions
        labels = inter["label"].to_numpy(np.float64)
        positive = ~(labels <= 0)  # NaN label = an event without a label, counted as positive
        split = inter["split"].to_numpy(object)
        users = inter["user"].to_numpy(np.int64)
        items = inter["item"].to_numpy(np.int64)
        self._positives: dict[str, sp.csr_matrix] = {}
        for name in ("train", "valid", "test"):
            sel = positive & (split == name)
            mat = sp.csr_matrix(
                (np.ones(int(sel.sum()), dtype=np.float32), (users[sel], items[sel])),
                shape=(self.n_users, self.n_items),
            )
            mat.sum_duplicates()
            mat.data[:] = 1.0
            self._positives[name] = mat
        self.item_popularity = np.asarray(self._positives["train"].sum(axis=0)).ravel().astype(np.float64)
        self._cache: dict[str, _SplitTruth] = {}
        self._serve_masks: dict[str, sp.csr_matrix] = {}
        self.last_seconds = 0.0  # wall time of the last evaluate() pass

        self._unit_features: torch.Tensor | None = None
        self._feature_present: torch.Tensor | None = None
        if item_features is not None:
            self._set_item_features(item_features)
        self._self_info: torch.Tensor | None = None
        if self.beyond_accuracy and self.item_popularity.sum() > 0:
            self._self_info = torch.from_numpy(self_information(self.item_popularity)).to(self.device)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_config(cls, dataset: Dataset, cfg: Any, **overrides: Any) -> "Evaluator":
        """Build from a :class:`fusionrec.config.EvalConfig` (``overrides`` win)."""
        kwargs = dict(
            ks=tuple(cfg.ks), protocol=cfg.protocol, metrics=tuple(cfg.metrics),
            batch_users=cfg.batch_users, candidates=cfg.candidates, beyond_accuracy=cfg.beyond_accuracy,
        )
        kwargs.update(overrides)
        return cls(dataset, **kwargs)

    def _set_item_features(self, item_features: np.ndarray | FeatureModality | str) -> None:
        mask = None
        if isinstance(item_features, str):
            if item_features not in self.dataset.modalities:
                raise UserError(
                    f"item_features names modality {item_features!r}, which the dataset does not have",
                    where="Evaluator(item_features=...)",
                    fix=f"use one of {list(self.dataset.modalities)} or pass an [n_items, d] array",
                )
            item_features = self.dataset.modalities[item_features]
        if isinstance(item_features, FeatureModality):
            mask = item_features.mask
            item_features = item_features.features
        feats = np.asarray(item_features)
        if feats.ndim != 2 or feats.shape[0] != self.n_items:
            raise UserError(
                f"item_features has shape {feats.shape} but the dataset has {self.n_items} items",
                where="Evaluator(item_features=...)", fix="pass one feature row per item, row j = item j",
            )
        unit, present = normalise_features(feats, mask)
        self._unit_features = torch.from_numpy(unit).to(self.device)
        self._feature_present = torch.from_numpy(present).to(self.device)

    # ------------------------------------------------------------------ split preparation
    def _check_split(self, split: str) -> None:
        if split not in EVAL_SPLITS:
            raise UserError(f"cannot evaluate on split {split!r}", where="evaluate(split=...)",
                            fix=f"use one of {list(EVAL_SPLITS)}")

    def _mask_matrix(self, split: str) -> sp.csr_matrix:
        """Items hidden from the ranking when scoring ``split`` (full user x item CSR)."""
        mask = self._positives["train"]
        if split == "test" and self.protocol == "full":
            mask = mask + self._positives["valid"]
        elif split == "all":
            mask = mask + self._positives["valid"] + self._positives["test"]
        mask = sp.csr_matrix(mask, copy=True)
        mask.data[:] = 1.0
        return mask

    def split_truth(self, split: str) -> _SplitTruth:
        """Ground truth and masks for ``split`` (computed once, then cached)."""
        self._check_split(split)
        if split in self._cache:
            return self._cache[split]
        mask_full = self._mask_matrix(split)
        truth_full = self._positives[split]
        if self.protocol == "full":
            # a held-out positive that is also masked can never be ranked: drop it from the truth
            truth_full = truth_full - truth_full.multiply(mask_full)
            truth_full = sp.csr_matrix(truth_full)
            truth_full.eliminate_zeros()
        n_pos_all = np.diff(truth_full.indptr)
        users = np.flatnonzero(n_pos_all > 0).astype(np.int64)
        truth = truth_full[users]
        mask = mask_full[users]
        candidates = None
        if self.candidates == "test_items":
            cand = np.zeros(self.n_items, dtype=bool)
            cand[self._positives[split].indices] = True
            candidates = torch.from_numpy(cand).to(self.device)

        def coo(mat: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
            rows = np.repeat(np.arange(mat.shape[0], dtype=np.int64), np.diff(mat.indptr))
            return (torch.from_numpy(rows).to(self.device),
                    torch.from_numpy(mat.indices.astype(np.int64)).to(self.device))

        truth.sort_indices()
        t_rows, t_cols = coo(truth)
        m_rows, m_cols = coo(mask)
        info = _SplitTruth(
            users=users, truth=truth, mask=mask, truth_keys=t_rows * self.n_items + t_cols,
            mask_rows=m_rows, mask_cols=m_cols,
            n_pos=torch.from_numpy(np.diff(truth.indptr).astype(np.float64)).to(self.device),
            candidates=candidates,
        )
        self._cache[split] = info
        return info

    def eval_users(self, split: str) -> np.ndarray:
        """Internal ids of the users evaluated on ``split``."""
        return self.split_truth(split).users.copy()

    # ------------------------------------------------------------------ scoring
    def _scorer(self, model_or_fn: Any) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[], None], set[int]]:
        """Uniform ``LongTensor users -> float scores`` callable, a cleanup hook, and the
        storage pointers of the model's parameters/buffers (scores sharing them are copied).

        A model is switched to eval mode (no dropout) for the pass and put back
        in its previous mode afterwards, since the trainer validates mid-training.
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
            return (lambda users: model.full_sort_predict(users)), restore, owned
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

    def _scores(self, score: Callable[[torch.Tensor], torch.Tensor], users: np.ndarray,
                owned: set[int]) -> torch.Tensor:
        """Scores of a batch as a float32 tensor on ``self.device`` that may be written in place."""
        users_t = torch.from_numpy(users).to(self.device)
        raw = torch.as_tensor(score(users_t))
        if raw.shape != (len(users), self.n_items):
            raise ValueError(
                f"scores for {len(users)} users have shape {tuple(raw.shape)}; expected "
                f"({len(users)}, {self.n_items}) = (users in the batch, items in the dataset)"
            )
        scores = raw.to(device=self.device, dtype=torch.float32)
        # Masking writes -inf in place. A fresh result (e.g. a matmul) is ours to modify;
        # a view (a broadcast popularity row, a slice of a cached score matrix) or storage
        # shared with a parameter/buffer is copied first so the model is never corrupted.
        if scores is raw and (raw._base is not None or raw.untyped_storage().data_ptr() in owned
                              or not raw.is_contiguous()):
            scores = raw.clone(memory_format=torch.contiguous_format)
        return scores

    def _batches(self, n: int) -> Iterator[tuple[int, int]]:
        for start in range(0, n, self.batch_users):
            yield start, min(start + self.batch_users, n)

    def _masked_topk(self, scores: torch.Tensor, k: int, users: np.ndarray
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """``torch.topk`` of already-masked scores; ``(values, ids)`` padded to ``k`` with -inf/0."""
        kk = min(k, self.n_items)
        vals, idx = torch.topk(scores, kk, dim=1)
        # topk ranks NaN above every number, so any NaN that survived masking shows up here;
        # checking the [B, k] result is far cheaper than scanning the [B, n_items] scores
        nan_rows = torch.isnan(vals).any(dim=1)
        if bool(nan_rows.any()):
            bad = int(users[int(nan_rows.nonzero()[0, 0])])
            raise ValueError(
                f"the model produced NaN scores (first for user {bad}); "
                "check for diverged training (lower the learning rate) or NaN features"
            )
        if kk < k:
            pad = k - kk
            vals = torch.cat([vals, vals.new_full((vals.shape[0], pad), float("-inf"))], dim=1)
            idx = torch.cat([idx, idx.new_zeros(idx.shape[0], pad)], dim=1)
        return vals, idx

    def _ranked_batches(self, model_or_fn: Any, split: str
                        ) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
        """Yield ``(start, end, topk item ids [B, kmax] with -1 for empty slots, hits [B, kmax])``."""
        info = self.split_truth(split)
        score, restore, owned = self._scorer(model_or_fn)
        n_users = len(info.users)
        t_ptr, m_ptr = info.truth.indptr, info.mask.indptr
        neg_inf = float("-inf")
        try:
            with torch.no_grad():
                for b0, b1 in self._batches(n_users):
                    scores = self._scores(score, info.users[b0:b1], owned)
                    m0, m1 = int(m_ptr[b0]), int(m_ptr[b1])
                    scores[info.mask_rows[m0:m1] - b0, info.mask_cols[m0:m1]] = neg_inf
                    if info.candidates is not None:
                        scores.masked_fill_(~info.candidates, neg_inf)
                    vals, idx = self._masked_topk(scores, self.kmax, info.users[b0:b1])
                    del scores
                    valid = vals > neg_inf   # fewer rankable items than K: empty slots
                    # hit test by binary search of (row, item) keys in the sorted truth keys:
                    # O(B * K * log nnz) instead of materialising a dense [B, n_items] truth
                    keys = info.truth_keys[int(t_ptr[b0]):int(t_ptr[b1])]
                    rows = torch.arange(b0, b1, device=self.device).unsqueeze(1)
                    query = rows * self.n_items + idx
                    pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
                    hits = (keys[pos] == query) & valid
                    lists = torch.where(valid, idx, torch.full_like(idx, -1))
                    yield b0, b1, lists, hits
        finally:
            restore()

    # ------------------------------------------------------------------ public API
    def evaluate(self, model: Any, split: str = "valid") -> dict[str, float]:
        """Metrics of ``model`` (a :class:`~fusionrec.models.base.RecModel`) on ``split``.

        Returns ``{"recall@20": ..., "ndcg@10": ..., "n_users": ...}`` (plus
        ``coverage@K``/``novelty@K``/``diversity@K`` with ``beyond_accuracy``).
        The wall time of the pass is kept in :attr:`last_seconds`.
        """
        return self._evaluate(model, split, per_user=False)[0]

    def evaluate_scores(self, score_fn: ScoreFn, split: str = "valid") -> dict[str, float]:
        """Like :meth:`evaluate` for any ``score_fn(users: np.ndarray) -> [B, n_items]`` scorer."""
        if not callable(score_fn):
            raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
        return self._evaluate(score_fn, split, per_user=False)[0]

    def evaluate_per_user(self, model_or_fn: Any, split: str = "test") -> pd.DataFrame:
        """One row per evaluated user (``user`` internal id, ``n_pos`` and every ranking
        metric), e.g. for paired significance tests between two models."""
        return self._evaluate(model_or_fn, split, per_user=True)[1]

    def _evaluate(self, model_or_fn: Any, split: str, per_user: bool
                  ) -> tuple[dict[str, float], pd.DataFrame | None]:
        start = time.perf_counter()
        info = self.split_truth(split)
        n = len(info.users)
        sums: dict[str, float] = {}
        rows: dict[str, list[np.ndarray]] = {}
        best_rank = torch.full((self.n_items,), self.kmax, dtype=torch.long, device=self.device)
        beyond = {f"{name}@{k}": [0.0, 0] for name in ("novelty", "diversity") for k in self.ks}
        for b0, b1, lists, hits in self._ranked_batches(model_or_fn, split):
            values = ranking_metrics_per_user(hits, info.n_pos[b0:b1], self.ks, self.metrics)
            for key, val in values.items():
                sums[key] = sums.get(key, 0.0) + float(val.sum())
                if per_user:
                    rows.setdefault(key, []).append(val.cpu().numpy())
            if self.beyond_accuracy:
                self._accumulate_beyond(lists, best_rank, beyond)
        result: dict[str, float] = {}
        for key in values_keys(self.metrics, self.ks):
            result[key] = sums.get(key, 0.0) / n if n else float("nan")
        if self.beyond_accuracy:
            n_cand = int(info.candidates.sum()) if info.candidates is not None else self.n_items
            for k in self.ks:
                result[f"coverage@{k}"] = float((best_rank < k).sum()) / n_cand if n_cand else float("nan")
                if self._self_info is not None:
                    total, count = beyond[f"novelty@{k}"]
                    result[f"novelty@{k}"] = total / count if count else float("nan")
                if self._unit_features is not None and k >= 2:  # a 1-item list has no pair
                    total, count = beyond[f"diversity@{k}"]
                    result[f"diversity@{k}"] = total / count if count else float("nan")
        result["n_users"] = float(n)
        self.last_seconds = time.perf_counter() - start
        frame = None
        if per_user:
            frame = pd.DataFrame({"user": info.users, "n_pos": info.n_pos.cpu().numpy().astype(np.int64)})
            for key in values_keys(self.metrics, self.ks):
                frame[key] = np.concatenate(rows[key]) if rows.get(key) else np.zeros(0)
        return result, frame

    def _accumulate_beyond(self, lists: torch.Tensor, best_rank: torch.Tensor,
                           beyond: dict[str, list]) -> None:
        valid = lists >= 0
        positions = torch.arange(self.kmax, device=self.device).expand_as(lists)
        # best (smallest) rank at which each item was recommended to anyone: coverage@K = #(rank < K)
        best_rank.scatter_reduce_(0, lists[valid], positions[valid], reduce="amin")
        if self._self_info is not None:
            for k, (val, defined) in novelty_per_user(lists, self._self_info, self.ks).items():
                beyond[f"novelty@{k}"][0] += float(val[defined].sum())
                beyond[f"novelty@{k}"][1] += int(defined.sum())
        if self._unit_features is not None:
            per = intra_list_diversity_per_user(lists, self._unit_features, self._feature_present, self.ks)
            for k, (val, defined) in per.items():
                beyond[f"diversity@{k}"][0] += float(val[defined].sum())
                beyond[f"diversity@{k}"][1] += int(defined.sum())

    def topk(self, model_or_fn: Any, users: Sequence[int] | np.ndarray, k: int, split: str = "test",
             return_scores: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item ids per user after this evaluator's masking, ``-1`` for empty slots.

        ``split`` chooses the mask as in evaluation (``"valid"``: train positives;
        ``"test"``: train, plus valid under protocol ``"full"``; with
        ``candidates="test_items"`` only that split's items are ranked), or
        ``"all"``: every known positive of any split is hidden and all items are
        candidates — what serving wants for a known user. ``users`` are internal ids.
        """
        if split not in (*EVAL_SPLITS, "all"):
            raise UserError(f"unknown split {split!r} for topk", where="topk(split=...)",
                            fix="use 'valid', 'test' or 'all'")
        k = check_ks(k)[0]
        users = np.asarray(users, dtype=np.int64).ravel()
        if users.size and (users.min() < 0 or users.max() >= self.n_users):
            bad = int(users[(users < 0) | (users >= self.n_users)][0])
            raise UserError(f"user index {bad} is out of range", where="topk(users=...)",
                            fix=f"pass internal user ids in 0..{self.n_users - 1}")
        if split not in self._serve_masks:
            self._serve_masks[split] = self._mask_matrix(split)
        mask_full = self._serve_masks[split]
        candidates = None
        if split != "all" and self.candidates == "test_items":
            candidates = self.split_truth(split).candidates
        score, restore, owned = self._scorer(model_or_fn)
        out_ids = np.full((len(users), k), -1, dtype=np.int64)
        out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
        try:
            with torch.no_grad():
                for b0, b1 in self._batches(len(users)):
                    scores = self._scores(score, users[b0:b1], owned)
                    sub = mask_full[users[b0:b1]]
                    rows = np.repeat(np.arange(b1 - b0), np.diff(sub.indptr))
                    scores[torch.from_numpy(rows).to(self.device),
                           torch.from_numpy(sub.indices.astype(np.int64)).to(self.device)] = float("-inf")
                    if candidates is not None:
                        scores.masked_fill_(~candidates, float("-inf"))
                    vals, idx = self._masked_topk(scores, k, users[b0:b1])
                    valid = (vals > float("-inf")).cpu().numpy()
                    out_ids[b0:b1] = np.where(valid, idx.cpu().numpy(), -1)
                    out_scores[b0:b1] = np.where(valid, vals.cpu().numpy(), -np.inf)
        finally:
            restore()
        return (out_ids, out_scores) if return_scores else out_ids

    def __repr__(self) -> str:
        return (f"Evaluator({self.dataset.name!r}, ks={list(self.ks)}, protocol={self.protocol!r}, "
                f"candidates={self.candidates!r}, metrics={list(self.metrics)}, "
                f"beyond_accuracy={self.beyond_accuracy})")


def values_keys(metrics: Sequence[str], ks: Sequence[int]) -> list[str]:
    """Result keys in a stable order: metric-major, K ascending (``recall@10, recall@20, ...``)."""
    return [f"{m}@{k}" for m in metrics for k in ks]
