"""Breakdowns and beyond-accuracy numbers of a run, recomputed from its saved models.

A run folder keeps the first seed's model (``model/``) and, for gradient models, every
seed's valid-best weights in ``checkpoints/seed<k>/checkpoint.pt``. Each available seed
model ranks the test split once with the run's own evaluator (same protocol, masks and
candidates as ``fusionrec train``); from those ranked lists come

* **warm vs cold items** -- Recall/NDCG@K counting only items with (warm) or without (cold)
  training interactions, as :mod:`fusionrec.evaluate.slices` defines them;
* **items by popularity bucket** -- the same per bucket of training popularity (cold, then
  the warm items cut in three equal-count groups: low, mid, high);
* **users by history length** -- per-user Recall/NDCG@K averaged per quartile of the users'
  number of training interactions;
* **beyond accuracy** -- coverage, novelty, intra-list diversity, the popularity lift of the
  recommendations (mean training popularity of recommended items / catalogue mean) and the
  share of recommendation slots per popularity bucket next to the catalogue's share.

Every number is a mean ± sample std over the seeds that have a model.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusionrec.evaluate.metrics import (
    catalogue_coverage,
    intra_list_diversity,
    novelty,
    ranking_metrics_per_user,
)
from fusionrec.report.runs import RunFolder

GROUP_METRICS = ("recall", "ndcg")


@dataclass
class SeedRanking:
    """One seed model's ranked test lists (rows aligned with ``users``)."""

    seed: int
    users: np.ndarray
    lists: np.ndarray
    hits: np.ndarray


@dataclass
class Breakdown:
    """Metric values per group: ``values[group][metric]`` is a list over seeds; ``sizes[group]``
    the number of users (or items) the group holds."""

    title: str
    groups: list[str] = field(default_factory=list)
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def add(self, group: str, metric: str, value: float) -> None:
        if group not in self.values:
            self.groups.append(group)
            self.values[group] = {}
        self.values[group].setdefault(metric, []).append(float(value))


@dataclass
class RunAnalysis:
    """Everything the model-based sections of a report show for one run."""

    run: RunFolder
    k: int
    seeds: list[int]
    loaded: Any = None                      # fusionrec.models.io.LoadedModel of the first seed
    evaluator: Any = None
    breakdowns: list[Breakdown] = field(default_factory=list)
    beyond: dict[str, list[float]] = field(default_factory=dict)
    shares: dict[str, dict[str, float]] = field(default_factory=dict)   # bucket -> source -> share
    notes: list[str] = field(default_factory=list)
    missing: str = ""                        # why the model-based sections are empty

    @property
    def dataset(self):
        return self.loaded.dataset if self.loaded is not None else None


def analyse(run: RunFolder, k: int | None = None) -> RunAnalysis:
    """Load the run's models and compute its breakdowns and beyond-accuracy numbers."""
    from fusionrec.models.io import load_model
    from fusionrec.pipeline import make_evaluator

    if run.model_dir is None:
        return RunAnalysis(run, k or 20, [], missing=f"{run.path}/model is missing (the run did not finish, or "
                                                    "its model folder was removed): re-run fusionrec train")
    loaded = load_model(run.model_dir)
    cfg = loaded.config
    evaluator = make_evaluator(loaded.dataset, cfg)
    ks = list(evaluator.ks)
    k = k if k is not None and k in ks else (20 if 20 in ks else max(ks))
    out = RunAnalysis(run, k, [], loaded=loaded, evaluator=evaluator)
    rankings = list(_seed_rankings(run, loaded, evaluator))
    out.seeds = [r.seed for r in rankings]
    missing = [s for s in run.seeds if s not in out.seeds]
    if missing:
        out.notes.append(f"seeds {missing} have no saved model (closed-form model, or train.checkpoint=false): "
                         f"breakdowns over seed(s) {out.seeds} only")
    pop = evaluator.item_popularity
    buckets = popularity_buckets(pop)
    out.breakdowns = [
        item_group_breakdown("warm vs cold items", rankings, evaluator, _warm_cold(pop), k),
        item_group_breakdown("items by training popularity", rankings, evaluator, buckets, k),
        history_breakdown(rankings, evaluator, k),
    ]
    out.beyond = beyond_accuracy(rankings, evaluator, loaded, k)
    out.shares = recommendation_shares(rankings, pop, buckets, k)
    return out


def _seed_rankings(run: RunFolder, loaded: Any, evaluator: Any) -> Iterator[SeedRanking]:
    """The first seed's saved model, then every other seed's valid-best checkpoint weights."""
    import torch

    seeds = run.seeds or [0]
    model = loaded.model
    for i, seed in enumerate(seeds):
        if i > 0:
            path = run.checkpoint(seed)
            if path is None:
                continue
            state = torch.load(path, map_location="cpu", weights_only=True).get("best_state")
            if state is None:
                continue
            model = copy.deepcopy(loaded.model)
            model.load_state_dict(state)
            model.eval()
        users, lists, hits = evaluator.ranked_lists(model, "test")
        yield SeedRanking(int(seed), users, lists, hits)


# ---------------------------------------------------------------------- item groups
def _warm_cold(pop: np.ndarray) -> dict[str, np.ndarray]:
    return {"warm": pop > 0, "cold": pop == 0}


def popularity_buckets(pop: np.ndarray) -> dict[str, np.ndarray]:
    """Item masks: ``cold`` (no training interaction) and the warm items in three equal-count
    groups by training popularity, each label naming its range of interaction counts."""
    out: dict[str, np.ndarray] = {}
    cold = pop == 0
    if cold.any():
        out["cold (0)"] = cold
    warm = np.flatnonzero(~cold)
    order = warm[np.argsort(pop[warm], kind="stable")]
    for name, part in zip(("low", "mid", "high"), np.array_split(order, 3)):
        if len(part) == 0:
            continue
        mask = np.zeros(len(pop), dtype=bool)
        mask[part] = True
        out[f"{name} ({int(pop[part].min())}–{int(pop[part].max())})"] = mask
    return out


def item_group_breakdown(title: str, rankings: Sequence[SeedRanking], evaluator: Any,
                         groups: dict[str, np.ndarray], k: int) -> Breakdown:
    """Recall/NDCG@k counting only the held-out items of each group (a user without any held-out
    item of a group is left out of that group's mean)."""
    # the rule of fusionrec.evaluate.slices.slice_metrics, applied to lists ranked once per seed
    # (slice_metrics re-ranks on every call; here five groups share one ranking)
    out = Breakdown(title)
    truth = evaluator.split_truth("test").truth
    row_of = np.repeat(np.arange(truth.shape[0]), np.diff(truth.indptr))
    for name, members in groups.items():
        n_pos = np.bincount(row_of, weights=members[truth.indices], minlength=truth.shape[0]).astype(np.int64)
        keep = n_pos > 0
        out.sizes[name] = f"{int(members.sum())} items, {int(keep.sum())} users"
        if not keep.any():  # shown as an empty group: nobody held out one of its items
            out.groups.append(name)
            out.values[name] = {}
            continue
        for r in rankings:
            in_list = r.lists >= 0
            hits = r.hits & in_list & members[np.where(in_list, r.lists, 0)]
            values = ranking_metrics_per_user(hits[keep], n_pos[keep], [k], GROUP_METRICS)
            for m in GROUP_METRICS:
                out.add(name, f"{m}@{k}", float(values[f"{m}@{k}"].mean()))
    if "cold" in groups and not groups["cold"].any():
        out.note = "no cold items in this data: every item has training interactions"
    return out


def history_breakdown(rankings: Sequence[SeedRanking], evaluator: Any, k: int, n_groups: int = 4) -> Breakdown:
    """Per-user Recall/NDCG@k averaged per quantile group of the users' training history length."""
    out = Breakdown("users by history length (training interactions)")
    info = evaluator.split_truth("test")
    train = evaluator.dataset.interaction_matrix("train", positives_only=True)
    length = np.diff(train.indptr)[info.users]
    if len(length) == 0:
        out.note = "no user is evaluated on the test split"
        return out
    edges = np.unique(np.quantile(length, np.linspace(0, 1, n_groups + 1)).round().astype(int))
    bins = np.clip(np.searchsorted(edges, length, side="right") - 1, 0, max(len(edges) - 2, 0))
    for r in rankings:
        values = ranking_metrics_per_user(r.hits, info.n_pos, [k], GROUP_METRICS)
        for b in range(max(len(edges) - 1, 1)):
            sel = bins == b
            if not sel.any():
                continue
            lo = int(length[sel].min())
            hi = int(length[sel].max())
            name = f"{lo}–{hi}" if hi > lo else str(lo)
            out.sizes[name] = f"{int(sel.sum())} users"
            for m in GROUP_METRICS:
                out.add(name, f"{m}@{k}", float(values[f"{m}@{k}"][sel].mean()))
    return out


# ---------------------------------------------------------------------- beyond accuracy
def beyond_accuracy(rankings: Sequence[SeedRanking], evaluator: Any, loaded: Any, k: int) -> dict[str, list[float]]:
    """Coverage, novelty, diversity and popularity lift @k per seed."""
    pop = evaluator.item_popularity
    features, mask = _diversity_space(loaded)
    out: dict[str, list[float]] = {}
    for r in rankings:
        lists = r.lists[:, :k]
        out.setdefault(f"coverage@{k}", []).append(catalogue_coverage(lists, evaluator.n_items, k))
        if pop.sum() > 0:
            out.setdefault(f"novelty@{k}", []).append(novelty(lists, pop, k))
            shown = lists[lists >= 0]
            if len(shown):
                out.setdefault(f"popularity lift@{k}", []).append(float(pop[shown].mean() / pop.mean()))
        if features is not None and k >= 2:
            out.setdefault(f"diversity@{k}", []).append(intra_list_diversity(lists, features, k, mask))
    return out


def _diversity_space(loaded: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The item vectors diversity is measured in: the first content modality (as ``fusionrec
    train`` does), else the model's own item vectors, else none."""
    dataset = loaded.dataset
    names = loaded.config.data.modalities if loaded.config.data.modalities is not None else list(dataset.modalities)
    names = [n for n in names if n in dataset.modalities]
    if names:
        mod = dataset.modalities[names[0]]
        return mod.features, mod.mask
    vectors = loaded.model.item_embeddings()
    if vectors is None:
        return None, None
    return vectors.detach().float().cpu().numpy(), None


def recommendation_shares(rankings: Sequence[SeedRanking], pop: np.ndarray, buckets: dict[str, np.ndarray],
                          k: int) -> dict[str, dict[str, float]]:
    """Per popularity bucket: its share of the catalogue, of training interactions and of the
    top-k recommendation slots (mean over seeds): where a popularity bias shows."""
    total_pop = pop.sum() or 1.0
    out: dict[str, dict[str, float]] = {}
    for name, members in buckets.items():
        rec = []
        for r in rankings:
            shown = r.lists[:, :k]
            shown = shown[shown >= 0]
            rec.append(float(members[shown].mean()) if len(shown) else float("nan"))
        out[name] = {"catalogue items": float(members.mean()),
                     "training interactions": float(pop[members].sum() / total_pop),
                     "recommendations": float(np.nanmean(rec)) if rec else float("nan")}
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value) of finite values; NaN mean when none is finite."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(arr) == 0:
        return float("nan"), 0.0
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


__all__ = [
    "Breakdown",
    "RunAnalysis",
    "SeedRanking",
    "analyse",
    "beyond_accuracy",
    "history_breakdown",
    "item_group_breakdown",
    "mean_std",
    "popularity_buckets",
    "recommendation_shares",
]
