"""``fusionrec.Recommender``: build, fit, query, save and load a model from Python.

One object wraps what ``fusionrec train`` does for one seed (typed model
parameters, features from the feature store, the Trainer with early stopping on
the validation split) and what serving answers (top-k lists, similar items,
scores), speaking the dataset's *original* ids throughout::

    rec = fusionrec.Recommender("mmgraph", embedding_size=32).fit(data, epochs=20)
    rec.recommend("user00042", k=10)          # DataFrame: user, rank, item, score
    rec.save("runs/my-model")                 # fusionrec serve --model runs/my-model
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from fusionrec.allocator import keep_freed_memory
from fusionrec.api.ids import IdIndex, as_id_list
from fusionrec.api.setup import (
    build_run_config,
    check_auto,
    check_model,
    check_params,
    uses_content,
)
from fusionrec.config import RunConfig
from fusionrec.data.dataset import SPLITS, Dataset
from fusionrec.errors import UserError
from fusionrec.models.base import RecModel
from fusionrec.models.registry import default_params

# users scored per full_sort_predict call: at most 1024, and at most ~64M scores (256 MB of float32)
# at once, so a large catalogue lowers the batch instead of exhausting memory
SCORE_BATCH = 1024
SCORE_CELLS = 1 << 26
_UNSET = object()


class Recommender:
    """A recommendation model with a scikit-learn-like life cycle: construct, ``fit``, query.

    ``model`` is a registered model name (``fusionrec models`` lists them: ``mmgraph``,
    ``two_tower``, ``bpr``, ``lightgcn``, ...); ``params`` are its hyper-parameters
    (``fusionrec models show NAME`` lists them with defaults and meanings). An unknown
    parameter is a :class:`~fusionrec.errors.UserError` naming the closest valid one.
    """

    def __init__(self, model: str = "mmgraph", **params: Any) -> None:
        # "auto": a portfolio trained within `budget` seconds, chosen on valid (fusionrec/train/auto.py)
        self.auto = check_auto(params) if model == "auto" else None
        if self.auto is None:
            check_model(model)
            check_params(model, params)
        self.model_name = model
        self.params: dict[str, Any] = dict(params) if self.auto is None else {}
        self.auto_result: Any = None  # AutoResult of the last fit with model="auto": every candidate, the winner
        self._model: RecModel | None = None
        self._dataset: Dataset | None = None
        self._config: RunConfig | None = None
        self._features: dict[str, dict[str, Any]] = {}
        self.train_result: Any = None  # fusionrec.train.trainer.TrainResult of the last fit

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Dataset, *, epochs: int | None = None, seed: int = 2024,
            valid_metric: str | None = None, **train: Any) -> Recommender:
        """Train on ``dataset``'s train split, stopping early on its valid split; returns ``self``.

        ``epochs``/``valid_metric`` default to the run defaults (``train.epochs``,
        ``train.valid_metric``: recall@20); any other :class:`fusionrec.config.TrainConfig`
        field can be given by name (``lr=0.005``, ``patience=5``, ``progress=False``).
        Models that read item content get their modalities first: cached vectors from the
        feature store are reused, missing ones are encoded with the encoders the dataset's
        description names (``fusionrec.encoders.ensure``). The valid-best weights are kept.
        """
        from fusionrec.encoders.ensure import features_for_run, run_features
        from fusionrec.models.registry import build_model
        from fusionrec.pipeline import ensure_split, make_evaluator
        from fusionrec.train.trainer import Trainer, seed_everything

        if not isinstance(dataset, Dataset):
            raise UserError(f"fit needs a fusionrec Dataset, got {type(dataset).__name__}",
                            "Recommender.fit(dataset=...)", "load one with fusionrec.load_data(...)")
        overrides: dict[str, Any] = {"seeds": [seed], **train}
        if epochs is not None:
            overrides["epochs"] = epochs
        if valid_metric is not None:
            overrides["valid_metric"] = valid_metric
        keep_freed_memory()  # as the command line does: fusionrec/allocator.py
        if self.auto is not None:
            return self._fit_auto(dataset, overrides)
        cfg = build_run_config(self.model_name, self.params, dataset, overrides)
        # as `fusionrec train` does: content models get their modalities (store first), ID models nothing
        dataset = features_for_run(ensure_split(dataset, cfg), cfg)
        features = run_features(dataset, cfg)
        seed_everything(seed)
        data = dataset.train_data(cfg.data.modalities)
        model = build_model(self.model_name, data, cfg.model.params)
        self.train_result = Trainer(model, data, cfg.train, make_evaluator(dataset, cfg), seed=seed).fit()
        self._attach(model, dataset, cfg, features)
        return self

    def _fit_auto(self, dataset: Dataset, overrides: dict[str, Any]) -> Recommender:
        """``Recommender("auto")``: every candidate trained on the train split within the budget, the best
        on valid kept (``auto_result.table()`` lists them); the test split is not read."""
        from fusionrec.encoders.ensure import run_features
        from fusionrec.train.auto import select_model

        def make_cfg(model: str) -> RunConfig:
            return build_run_config(model, {}, dataset, overrides)

        chosen = select_model(dataset, make_cfg, **self.auto)
        self.auto_result, self.train_result = chosen, chosen.train_result
        self.model_name = chosen.cfg.model.name   # what is fitted now; a new fit() chooses again
        self._attach(chosen.model, chosen.dataset, chosen.cfg, run_features(chosen.dataset, chosen.cfg))
        return self

    def _attach(self, model: RecModel, dataset: Dataset, cfg: RunConfig,
                features: dict[str, dict[str, Any]]) -> None:
        model.eval()
        self._model, self._dataset, self._config, self._features = model, dataset, cfg, features
        self._users = IdIndex(dataset.user_ids, "user", "Recommender.user_ids")
        self._items = IdIndex(dataset.item_ids, "item", "Recommender.item_ids")
        self._seen: sp.csr_matrix | None = None
        self._unit_items: tuple[np.ndarray, np.ndarray] | None = None
        self._evaluator: Any = None

    # ------------------------------------------------------------------ state
    @property
    def is_fitted(self) -> bool:
        """True after :meth:`fit` or :meth:`load`."""
        return self._model is not None

    @property
    def model(self) -> RecModel:
        """The trained :class:`~fusionrec.models.base.RecModel` (eval mode)."""
        return self._fitted("model")[0]

    @property
    def dataset(self) -> Dataset:
        """The dataset the model was fitted on (with the modalities it was given)."""
        return self._fitted("dataset")[1]

    @property
    def config(self) -> RunConfig:
        """The resolved run configuration (data, model params, train, eval), as a saved model records it."""
        self._fitted("config")
        assert self._config is not None
        return self._config

    @property
    def user_ids(self) -> np.ndarray:
        """Original user ids, as given in the data (strings, leading zeros kept)."""
        return self._fitted("user_ids")[1].user_ids

    @property
    def item_ids(self) -> np.ndarray:
        """Original item ids, as given in the data (strings, leading zeros kept)."""
        return self._fitted("item_ids")[1].item_ids

    def _fitted(self, what: str) -> tuple[RecModel, Dataset]:
        if self._model is None or self._dataset is None:
            raise UserError(f"Recommender({self.model_name!r}) is not fitted yet", f"Recommender.{what}",
                            "call .fit(dataset) first, or load a saved model with Recommender.load(path)")
        return self._model, self._dataset

    def __repr__(self) -> str:
        params = "".join(f", {k}={v!r}" for k, v in sorted(self.params.items()))
        state = f" fitted on {self._dataset.name!r}" if self._dataset is not None else " not fitted"
        return f"Recommender({self.model_name!r}{params}){state}"

    # ------------------------------------------------------------------ queries
    def recommend(self, user_ids: Hashable | Iterable[Hashable], k: int = 10,
                  exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items for each user: a DataFrame with columns ``user, rank, item, score``.

        ``user_ids`` is one id or a list, matched as the original ids (strings).
        ``exclude_seen`` leaves out every item the user has an interaction with in the
        dataset (any split, any label). Rank 1 is the best; a user gets fewer than ``k``
        rows only when fewer items are left.
        """
        model, dataset = self._fitted("recommend")
        rows = self._users.rows(user_ids, "Recommender.recommend(user_ids=...)")
        k = _check_k(k, "Recommender.recommend(k=...)")
        seen = self._seen_matrix() if exclude_seen else None
        frames = []
        step = max(1, min(SCORE_BATCH, SCORE_CELLS // max(dataset.n_items, 1)))
        for b0 in range(0, len(rows), step):
            batch = rows[b0:b0 + step]
            block = self._score_rows(model, batch)
            if seen is not None:
                sub = seen[batch]
                block[np.repeat(np.arange(len(batch)), np.diff(sub.indptr)), sub.indices] = -np.inf
            top_scores, top_items = torch.topk(torch.from_numpy(block), min(k, block.shape[1]), dim=1)
            frames.append(_ranked_frame(("user", "item"), dataset.user_ids, batch, dataset.item_ids,
                                        top_items, top_scores))
        return pd.concat(frames, ignore_index=True)

    def score(self, user_id: Hashable, item_ids: Hashable | Iterable[Hashable]) -> pd.DataFrame:
        """The model's scores of ``item_ids`` for one user: columns ``user, item, score`` in the order given.

        Seen items are scored too (nothing is masked); higher is better, and scores compare
        only within one model.
        """
        model, dataset = self._fitted("score")
        if len(as_id_list(user_id)) != 1:
            raise UserError("score takes one user id", "Recommender.score(user_id=...)",
                            "call score once per user, or use recommend(user_ids, k) for several users")
        row = self._users.rows(user_id, "Recommender.score(user_id=...)")
        items = self._items.rows(item_ids, "Recommender.score(item_ids=...)")
        values = self._score_rows(model, row)[0, items]
        return pd.DataFrame({"user": np.repeat(dataset.user_ids[row], len(items)),
                             "item": dataset.item_ids[items], "score": values.astype(np.float64)})

    def similar_items(self, item_ids: Hashable | Iterable[Hashable], k: int = 10) -> pd.DataFrame:
        """The ``k`` items closest to each given item: columns ``item, rank, similar_item, score``.

        Similarity is the cosine of the model's item vectors, the space ``fusionrec serve``
        answers ``/similar`` from. Content models place items without any training
        interaction by their content, so those work too; an ID-only model has no trained
        vector for them and says so.
        """
        _, dataset = self._fitted("similar_items")
        rows = self._items.rows(item_ids, "Recommender.similar_items(item_ids=...)")
        k = _check_k(k, "Recommender.similar_items(k=...)")
        unit, usable = self._item_space()
        for row in rows:
            if not usable[row]:
                raise self._no_vector(dataset.item_ids[row])
        sims = unit[rows] @ unit.T
        sims[:, ~usable] = -np.inf
        sims[np.arange(len(rows)), rows] = -np.inf  # an item is not similar to itself
        top_scores, top_items = torch.topk(torch.from_numpy(sims), min(k, sims.shape[1]), dim=1)
        return _ranked_frame(("item", "similar_item"), dataset.item_ids, rows, dataset.item_ids,
                             top_items, top_scores)

    def _no_vector(self, item: Any) -> UserError:
        where = "Recommender.similar_items(item_ids=...)"
        if uses_content(self.model_name):
            return UserError(f"item {item!r} has no training interactions and none of the content "
                             f"{self.model_name!r} reads (its text/image is missing or unreadable)", where,
                             "give the item a text or an image in the item table and fit again, or ask for "
                             "items that have interactions or content")
        return UserError(f"item {item!r} has no training interactions and model {self.model_name!r} reads "
                         "no item content, so it has no trained vector", where,
                         "fit a content model, e.g. fusionrec.Recommender('mmgraph'), to compare such items by content")

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Full-ranking metrics on ``split`` (``"valid"`` or ``"test"``) with the run's eval settings.

        The same protocol as ``fusionrec train``/``evaluate``: training positives are masked
        (and valid positives when scoring test under the default ``full`` protocol).
        """
        from fusionrec.pipeline import make_evaluator

        model, dataset = self._fitted("evaluate")
        if split not in ("valid", "test"):
            raise UserError(f"cannot evaluate on split {split!r}", "Recommender.evaluate(split=...)",
                            "use 'valid' or 'test'")
        if self._evaluator is None:
            self._evaluator = make_evaluator(dataset, self.config)
        return {name: float(value) for name, value in self._evaluator.evaluate(model, split=split).items()}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the model folder (weights, params, run config, dataset, features.json); returns it.

        The folder is what ``fusionrec train`` writes as ``runs/<run>/model``, so
        ``fusionrec serve --model PATH`` and ``fusionrec evaluate --model-dir PATH`` read it.
        """
        from fusionrec.models.io import save_model

        model, dataset = self._fitted("save")
        directory = save_model(model, self.config, dataset, path)
        if self._features:
            from fusionrec.encoders.ensure import write_features_json

            write_features_json(self._features, directory)
        return directory

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """A fitted Recommender from a model folder (``save`` or ``fusionrec train`` wrote it)."""
        from fusionrec.models.io import load_model

        loaded = load_model(path)
        name = loaded.config.model.name
        # the saved params are the complete set; keep what differs from the defaults, as the caller wrote it
        defaults = default_params(name)
        rec = cls(name, **{k: v for k, v in loaded.model.params.items() if defaults.get(k, _UNSET) != v})
        from fusionrec.encoders.ensure import read_features_json

        rec._attach(loaded.model, loaded.dataset, loaded.config, read_features_json(path))
        return rec

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _score_rows(model: RecModel, rows: np.ndarray) -> np.ndarray:
        from fusionrec.train.device import compute_on, model_device

        dev = model_device(model)   # a model fitted on a GPU (train.device) scores there
        with torch.no_grad(), compute_on(dev):
            scores = model.full_sort_predict(torch.as_tensor(rows, dtype=torch.long).to(dev))
        return np.array(scores.detach().cpu().numpy(), dtype=np.float32)  # a copy: callers mask in place

    def _seen_matrix(self) -> sp.csr_matrix:
        """User x item: every interaction of the dataset, any split and label (cached)."""
        if self._seen is None:
            dataset = self.dataset
            self._seen = dataset.interaction_matrix(list(SPLITS)) if dataset.has_split \
                else dataset.interaction_matrix()
        return self._seen

    def _item_space(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit-length item vectors and which rows are usable (trained or placed by content)."""
        if self._unit_items is None:
            model, dataset = self._fitted("similar_items")
            from fusionrec.train.device import compute_on, model_device

            with torch.no_grad(), compute_on(model_device(model)):
                emb = model.item_embeddings()
            if emb is None:
                raise UserError(
                    f"model {self.model_name!r} does not score by item vectors, so it has no item similarity",
                    "Recommender.similar_items", "fit an embedding model, e.g. fusionrec.Recommender('bpr') "
                    "or fusionrec.Recommender('mmgraph')",
                )
            vecs = np.asarray(emb.detach().cpu().numpy(), dtype=np.float32)
            norms = np.linalg.norm(vecs, axis=1)
            usable = norms > 0
            if not uses_content(self.model_name):
                # an ID-only model never moved the vectors of items without training rows
                train = dataset.interaction_matrix("train") if dataset.has_split else dataset.interaction_matrix()
                usable &= np.asarray(train.sum(axis=0)).ravel() > 0
            self._unit_items = (vecs / np.where(usable, norms, 1.0)[:, None], usable)
        return self._unit_items


def _check_k(k: Any, where: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise UserError(f"k must be a positive integer, got {k!r}", where, "pass e.g. k=10")
    return int(k)


def _ranked_frame(names: tuple[str, str], key_ids: np.ndarray, key_rows: np.ndarray, value_ids: np.ndarray,
                  top_rows: torch.Tensor, top_scores: torch.Tensor) -> pd.DataFrame:
    """``key, rank, value, score`` rows from sorted top-k blocks (one block row per key row).

    Slots left at -inf (fewer than k items to rank) are dropped; ranks start at 1 per key.
    """
    width = top_rows.shape[1]
    scores = top_scores.numpy().ravel()
    keep = np.isfinite(scores)
    keys = np.repeat(key_rows, width)[keep]
    rank = np.tile(np.arange(1, width + 1, dtype=np.int64), len(key_rows))[keep]
    return pd.DataFrame({names[0]: key_ids[keys], "rank": rank,
                         names[1]: value_ids[top_rows.numpy().ravel()[keep]], "score": scores[keep].astype(np.float64)})
