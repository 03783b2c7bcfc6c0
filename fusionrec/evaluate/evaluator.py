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
    Deliberate differences, all invisible on MMRec-format data: MMRec writes
    ``-1e10`` where we write ``-inf`` and would count such a masked item if it
    reached a top-K list (only possible when fewer than K items are unmasked; we
    leave the slot empty); MMRec counts a repeated (user, item) row of the split
    twice in ``len(pos)`` where we count distinct items; MMRec rounds to 4 decimals.

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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from fusionrec.data.dataset import Dataset, FeatureModality, positive_rows
from fusionrec.errors import UserError
from fusionrec.evaluate import ranking
from fusionrec.evaluate.beyond import beyond_accuracy_metrics
from fusionrec.evaluate.evaluator_options import (
    CANDIDATES,
    PROTOCOLS,
    check_evaluator_arguments,
)
from fusionrec.evaluate.metric_keys import (
    model_metric_keys,
    validation_metric_keys,
    values_keys,
)
from fusionrec.evaluate.metrics import (
    RANKING_METRICS,
    canonical_metrics,
    check_ks,
    normalise_features,
    ranking_metrics_per_user,
    self_information,
)
from fusionrec.evaluate.pointwise import (
    PointwiseRows,
    evaluate_pairs,
    pointwise_rows,
    supports_pointwise,
)
from fusionrec.evaluate.rating import (
    RatingRows,
    evaluate_ratings,
    rating_rows,
    supports_ratings,
)
from fusionrec.evaluate.split_truth import (
    EVAL_SAMPLE_SEED,
    EVAL_SPLITS,
    SplitTruth,
    build_split_truth,
    seen_mask,
)

ScoreFn = Callable[[np.ndarray], np.ndarray | torch.Tensor]


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
    beyond_accuracy_splits:
        The splits on which beyond-accuracy metrics are computed (default both);
        :meth:`from_config` limits them to ``("test",)`` as ``EvalConfig`` documents,
        so per-epoch validation during training does not pay for them.
    item_features:
        For diversity: an ``[n_items, d]`` array, a
        :class:`~fusionrec.data.dataset.FeatureModality`, or the name of one of
        the dataset's modalities.
    device:
        Where scores are masked and ranked (the model must live there too).
    pointwise_negatives:
        For models that predict pair probabilities (``predict_pairs``, e.g. ``dcn``),
        :meth:`evaluate` also reports ``auc`` and ``logloss`` over the split's labelled
        rows; on a split without explicit negatives this many negatives per positive are
        sampled (see :mod:`fusionrec.evaluate.pointwise`).
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
        beyond_accuracy_splits: Sequence[str] = EVAL_SPLITS,
        pointwise_negatives: int = 1,
        max_users: int = 0,
    ) -> None:
        check_evaluator_arguments(dataset, protocol, candidates, batch_users, max_users, beyond_accuracy_splits)
        self.dataset = dataset
        self.ks = check_ks(ks)
        self.kmax = max(self.ks)
        self.protocol = protocol
        self.metrics = canonical_metrics(metrics)
        self.batch_users = int(batch_users)
        # a seeded sample of users per split (0 = all): the same users at every validation
        self.max_users = int(max_users)
        self.candidates = candidates
        self.beyond_accuracy = bool(beyond_accuracy)
        self.beyond_accuracy_splits = tuple(beyond_accuracy_splits)
        self.device = torch.device(device)
        # CPU: write masks through numpy (see _apply_mask); elsewhere torch index_fill_
        self._numpy_mask = self.device.type == "cpu"
        self.n_users = dataset.n_users
        self.n_items = dataset.n_items

        # the positive rule of training (Dataset.train_data): label <= 0 is negative feedback,
        # never masked as seen nor part of the truth; NaN (an unlabelled event) is positive
        self._positives: dict[str, sp.csr_matrix] = {
            name: dataset.interaction_matrix(name, positives_only=True) for name in ("train", "valid", "test")
        }
        self.item_popularity = np.asarray(self._positives["train"].sum(axis=0)).ravel().astype(np.float64)
        self._cache: dict[str, SplitTruth] = {}
        self._n_users_total: dict[str, int] = {}
        self.pointwise_negatives = int(pointwise_negatives)
        self._pointwise: dict[str, PointwiseRows] = {}
        self._ratings: dict[str, RatingRows] = {}
        self._serve_masks: dict[str, sp.csr_matrix] = {}
        self.last_seconds = 0.0  # wall time of the last evaluate() pass

        self._unit_features: np.ndarray | None = None
        self._feature_present: np.ndarray | None = None
        if item_features is not None:
            self._set_item_features(item_features)
        self._self_info: np.ndarray | None = None
        if self.beyond_accuracy and self.item_popularity.sum() > 0:
            self._self_info = self_information(self.item_popularity)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_config(cls, dataset: Dataset, cfg: Any, **overrides: Any) -> Evaluator:
        """Build from a :class:`fusionrec.config.EvalConfig` (``overrides`` win).

        ``cfg.beyond_accuracy`` means "on the test split" (see ``EvalConfig``), so
        validation during training stays as cheap as plain ranking metrics.
        """
        kwargs = {
            "ks": tuple(cfg.ks), "protocol": cfg.protocol, "metrics": tuple(cfg.metrics),
            "batch_users": cfg.batch_users, "candidates": cfg.candidates, "beyond_accuracy": cfg.beyond_accuracy,
            "beyond_accuracy_splits": ("test",), "max_users": getattr(cfg, "max_users", 0),
        }
        kwargs.update(overrides)
        evaluator = cls(dataset, **kwargs)
        # user cold start: the test users' metrics after their first N events (evaluate.user_cold)
        evaluator.new_user_events = tuple(getattr(cfg, "new_user_events", None) or ())
        return evaluator

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
        self._unit_features, self._feature_present = normalise_features(feats, mask)

    # ------------------------------------------------------------------ split preparation
    def _check_split(self, split: str) -> None:
        if split not in EVAL_SPLITS:
            raise UserError(f"cannot evaluate on split {split!r}", where="evaluate(split=...)",
                            fix=f"use one of {list(EVAL_SPLITS)}")

    def split_truth(self, split: str) -> SplitTruth:
        """Ground truth and masks for ``split`` (computed once, then cached)."""
        self._check_split(split)
        if split not in self._cache:
            self._cache[split], self._n_users_total[split] = build_split_truth(
                self._positives, split, self.protocol, self.candidates, self.max_users, self.device)
        return self._cache[split]

    def eval_users(self, split: str) -> np.ndarray:
        """Internal ids of the users evaluated on ``split``."""
        return self.split_truth(split).users.copy()

    # ------------------------------------------------------------------ scoring
    def _scores(self, score: Callable[[torch.Tensor], torch.Tensor], users: np.ndarray,
                owned: set[int]) -> torch.Tensor:
        return ranking.writable_scores(score, users, owned, self.n_items, self.device)

    def _batches(self, n: int) -> Iterator[tuple[int, int]]:
        for start in range(0, n, self.batch_users):
            yield start, min(start + self.batch_users, n)

    def _ranked_batches(self, model_or_fn: Any, split: str) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """Yield ``(start, end, top-kmax item ids [B, kmax] with -1 for empty slots, hits [B, kmax])``."""
        info = self.split_truth(split)
        self.share_context(model_or_fn, split)
        score, restore, owned = ranking.batch_scorer(model_or_fn)
        n_users = len(info.users)
        t_ptr, m_ptr = info.truth.indptr, info.mask.indptr
        try:
            with torch.no_grad():
                for b0, b1 in self._batches(n_users):
                    scores = self._scores(score, info.users[b0:b1], owned)
                    m0, m1 = int(m_ptr[b0]), int(m_ptr[b1])
                    offset = b0 * self.n_items
                    ranking.apply_mask(scores, info.mask_keys[m0:m1] - offset,
                               None if self._numpy_mask else info.mask_keys_t[m0:m1] - offset,
                               info.non_candidates_t, self._numpy_mask)
                    lists, _ = ranking.masked_topk(scores, self.kmax, info.users[b0:b1])
                    del scores
                    # hit test by binary search of (row, item) keys in the sorted truth keys:
                    # O(B * K * log nnz) instead of materialising a dense [B, n_items] truth
                    keys = info.truth_keys[int(t_ptr[b0]):int(t_ptr[b1])]
                    query = np.arange(b0, b1, dtype=np.int64)[:, None] * self.n_items + lists
                    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
                    hits = (keys[pos] == query) & (lists >= 0)
                    yield b0, b1, lists, hits
        finally:
            restore()

    def context_events(self, split: str) -> pd.DataFrame:
        """Positive events known when ``split`` is scored, beyond training (the rows it masks
        as seen): validation events for ``test`` under the full protocol, valid and test for
        ``all``, none otherwise."""
        known = {"test": ("valid",) if self.protocol == "full" else (), "all": ("valid", "test")}.get(split, ())
        frames = [f[positive_rows(f)] for f in (self.dataset.split_frame(s) for s in known)]
        return pd.concat(frames) if frames else self.dataset.split_frame("train").iloc[:0]

    def share_context(self, model_or_fn: Any, split: str) -> None:
        """Tell a model that reads histories (``set_context_events``, the sequential models)
        which events are known when ``split`` is scored, so leave-one-out tests predict the
        last event from the history that ends just before it."""
        hook = getattr(model_or_fn, "set_context_events", None)
        if callable(hook):
            hook(self.context_events(split))

    # ------------------------------------------------------------------ public API
    def evaluate(self, model: Any, split: str = "valid") -> dict[str, float]:
        """Metrics of ``model`` (a :class:`~fusionrec.models.base.RecModel`) on ``split``.

        Returns ``{"recall@20": ..., "ndcg@10": ..., "n_users": ...}`` (plus
        ``coverage@K``/``novelty@K``/``diversity@K`` with ``beyond_accuracy``).
        The wall time of the pass is kept in :attr:`last_seconds`. With ``new_user_events``
        (``eval.new_user_events``) the test split also reports ``new_users@N/<metric>``: the
        new-user protocol of :mod:`fusionrec.evaluate.user_cold` after each user's first N events.
        """
        out = self._evaluate(model, split, per_user=False)[0]
        if split == "test" and getattr(self, "new_user_events", ()):
            from fusionrec.evaluate.user_cold import new_user_metrics

            out.update(new_user_metrics(self.dataset, model, self.new_user_events, self.ks))
        return out

    def evaluate_scores(self, score_fn: ScoreFn, split: str = "valid") -> dict[str, float]:
        """Like :meth:`evaluate` for any ``score_fn(users: np.ndarray) -> [B, n_items]`` scorer."""
        if not callable(score_fn):
            raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
        return self._evaluate(score_fn, split, per_user=False)[0]

    def evaluate_per_user(self, model_or_fn: Any, split: str = "test") -> pd.DataFrame:
        """One row per evaluated user (``user`` internal id, ``n_pos`` and every ranking
        metric), e.g. for paired significance tests between two models."""
        return self._evaluate(model_or_fn, split, per_user=True)[1]

    def ranked_lists(self, model_or_fn: Any, split: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(users [U], top-kmax item ids [U, kmax] with -1 for empty slots, hits [U, kmax])``
        for every user evaluated on ``split`` (e.g. to save recommendations or inspect errors)."""
        lists, hits = self._rank_all(model_or_fn, split)
        return self.split_truth(split).users.copy(), lists, hits

    def _rank_all(self, model_or_fn: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
        # The [U, kmax] results are small (40k users x 50 = 2 M entries), so they are kept
        # and the metrics computed once at the end rather than per batch.
        n = len(self.split_truth(split).users)
        all_lists = np.empty((n, self.kmax), dtype=np.int64)
        all_hits = np.empty((n, self.kmax), dtype=bool)
        for b0, b1, lists, hits in self._ranked_batches(model_or_fn, split):
            all_lists[b0:b1] = lists
            all_hits[b0:b1] = hits
        return all_lists, all_hits

    def _evaluate(self, model_or_fn: Any, split: str, per_user: bool
                  ) -> tuple[dict[str, float], pd.DataFrame | None]:
        start = time.perf_counter()
        info = self.split_truth(split)
        n = len(info.users)
        lists, hits = self._rank_all(model_or_fn, split)
        values = ranking_metrics_per_user(hits, info.n_pos, self.ks, self.metrics)
        result: dict[str, float] = {
            key: float(values[key].mean()) if n else float("nan") for key in values_keys(self.metrics, self.ks)
        }
        if self.beyond_accuracy and split in self.beyond_accuracy_splits:
            result.update(self._beyond(lists, info))
        if supports_pointwise(model_or_fn):
            result.update(self.evaluate_pointwise(model_or_fn, split))
        if supports_ratings(model_or_fn):
            result.update(evaluate_ratings(model_or_fn, self.rating_rows(split)))
        result["n_users"] = float(n)
        if self.max_users:
            result["n_users_total"] = float(self._n_users_total[split])
        self.last_seconds = time.perf_counter() - start
        frame = None
        if per_user:
            frame = pd.DataFrame({"user": info.users, "n_pos": info.n_pos})
            for key in values_keys(self.metrics, self.ks):
                frame[key] = values[key]
        return result, frame

    # ------------------------------------------------------------------ pointwise (AUC / log loss)
    def pointwise_rows(self, split: str) -> PointwiseRows:
        """The labelled rows AUC / log loss use on ``split`` (cached; ``.describe()`` says which)."""
        self._check_split(split)
        if split not in self._pointwise:
            self._pointwise[split] = pointwise_rows(self.dataset, split, self.pointwise_negatives)
        return self._pointwise[split]

    def rating_rows(self, split: str) -> RatingRows:
        """The rated rows MAE / RMSE use on ``split`` (cached)."""
        self._check_split(split)
        if split not in self._ratings:
            self._ratings[split] = rating_rows(self.dataset, split)
        return self._ratings[split]

    def evaluate_pointwise(self, model: Any, split: str = "valid") -> dict[str, float]:
        """``{"auc", "logloss"}`` of a model with ``predict_pairs`` on ``split``'s labelled rows."""
        if not supports_pointwise(model):
            raise UserError(
                f"model {getattr(model, 'name', type(model).__name__)!r} does not predict pair probabilities, "
                "so it has no AUC / log loss", where="Evaluator.evaluate_pointwise",
                fix="use a pointwise model such as dcn, or the ranking metrics (recall@K, ndcg@K)",
            )
        return evaluate_pairs(model, self.pointwise_rows(split))

    def metric_keys(self, model: Any = None, split: str = "valid") -> list[str]:
        """The keys :meth:`evaluate` returns for ``model`` (an instance or class) on ``split``,
        without scoring anything: what ``train.valid_metric`` may name."""
        keys = validation_metric_keys(self.ks, self.metrics, model_metric_keys(model))
        if self.beyond_accuracy and split in self.beyond_accuracy_splits:
            keys += [f"{m}@{k}" for m in ("coverage", "novelty", "diversity") for k in self.ks]
        return keys

    def _beyond(self, lists: np.ndarray, info: SplitTruth) -> dict[str, float]:
        """Coverage, novelty and diversity of the recommended lists at every K."""
        n_cand = int(info.candidates.sum()) if info.candidates is not None else self.n_items
        return beyond_accuracy_metrics(lists, self.n_items, n_cand, self.ks, self._self_info,
                                       self._unit_features, self._feature_present)

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
            self._serve_masks[split] = seen_mask(self._positives, split, self.protocol)
        mask_full = self._serve_masks[split]
        non_candidates = None
        if split != "all" and self.candidates == "test_items":
            non_candidates = self.split_truth(split).non_candidates_t
        self.share_context(model_or_fn, split)
        score, restore, owned = ranking.batch_scorer(model_or_fn)
        out_ids = np.full((len(users), k), -1, dtype=np.int64)
        out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
        try:
            with torch.no_grad():
                for b0, b1 in self._batches(len(users)):
                    scores = self._scores(score, users[b0:b1], owned)
                    sub = mask_full[users[b0:b1]]
                    flat = np.repeat(np.arange(b1 - b0, dtype=np.int64), np.diff(sub.indptr)) * self.n_items
                    flat += sub.indices
                    ranking.apply_mask(scores, flat, None, non_candidates, self._numpy_mask)
                    out_ids[b0:b1], out_scores[b0:b1] = ranking.masked_topk(scores, k, users[b0:b1])
        finally:
            restore()
        return (out_ids, out_scores) if return_scores else out_ids

    def __repr__(self) -> str:
        return (f"Evaluator({self.dataset.name!r}, ks={list(self.ks)}, protocol={self.protocol!r}, "
                f"candidates={self.candidates!r}, metrics={list(self.metrics)}, "
                f"beyond_accuracy={self.beyond_accuracy})")


__all__ = ["CANDIDATES", "EVAL_SAMPLE_SEED", "EVAL_SPLITS", "PROTOCOLS", "Evaluator", "ScoreFn",
           "model_metric_keys", "validation_metric_keys", "values_keys"]
