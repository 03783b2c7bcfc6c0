"""The in-memory dataset every later stage reads from.

A :class:`Dataset` holds

* id maps: ``user_ids[i]`` / ``item_ids[j]`` are the *original* ids of internal
  user ``i`` / item ``j`` (internal ids are dense ``0..n-1``);
* ``interactions``: one row per event with columns ``user``, ``item`` (internal
  int ids), ``rating`` (float, NaN when the source has none), ``timestamp``
  (float seconds, NaN when unknown), ``label`` (float, 1.0 for implicit
  positives) and ``split`` (``"train"``/``"valid"``/``"test"`` or missing
  before a split is made);
* ``items``: item side data, one row per internal item in order (text fields,
  ``image_path``/``audio_path`` relative to ``root``, attribute columns);
* ``modalities``: precomputed feature matrices as :class:`FeatureModality`
  objects (row ``j`` is item ``j``; a boolean mask says which rows are real);
* ``users``: user attributes (the user table's declared ``attributes`` columns), one
  row per internal user in order, or None without a user table; a missing value is
  None/NaN and :meth:`Dataset.user_attribute_masks` says which cells are present.

Models never read files: they get a :class:`TrainData` view built from a
Dataset (see :meth:`Dataset.train_data`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec.data.modality import MODALITY_KINDS, FeatureModality

SPLITS = ("train", "valid", "test")
INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp", "label", "split")


@dataclass
class TrainData:
    """What a model is handed at construction: no files, no test labels.

    ``train`` is the binary user x item matrix of training positives;
    ``train_frame`` the training rows (user, item, rating, timestamp, label);
    ``modalities`` the item feature matrices; ``item_frame`` the item side table
    (attributes for rankers); ``n_users``/``n_items`` the full id spaces (cold
    items have all-zero columns in ``train``).
    """

    n_users: int
    n_items: int
    train: sp.csr_matrix
    train_frame: pd.DataFrame
    modalities: dict[str, FeatureModality] = field(default_factory=dict)
    item_frame: pd.DataFrame | None = None
    # user attributes, one row per internal user (None without a user table)
    user_frame: pd.DataFrame | None = None
    # the folder relative media paths of item_frame resolve against (image fine-tuning reads the files)
    root: Path | None = None

    @property
    def item_popularity(self) -> np.ndarray:
        return np.asarray(self.train.sum(axis=0)).ravel().astype(np.float64)

    @property
    def user_degree(self) -> np.ndarray:
        return np.asarray(self.train.sum(axis=1)).ravel().astype(np.float64)


class Dataset:
    """Interactions + item side data + id maps + splits for one recommendation problem."""

    def __init__(
        self,
        name: str,
        user_ids: Iterable,
        item_ids: Iterable,
        interactions: pd.DataFrame,
        items: pd.DataFrame | None = None,
        modalities: Mapping[str, FeatureModality] | None = None,
        root: str | Path | None = None,
        users: pd.DataFrame | None = None,
    ) -> None:
        self.name = name
        self.user_ids = np.asarray(list(user_ids), dtype=object)
        self.item_ids = np.asarray(list(item_ids), dtype=object)
        self.interactions = _normalise_interactions(interactions)
        if items is None:
            items = pd.DataFrame(index=pd.RangeIndex(len(self.item_ids)))
        if len(items) != len(self.item_ids):
            raise ValueError(
                f"dataset {name!r}: item table has {len(items)} rows but there are "
                f"{len(self.item_ids)} items; pass one row per item in id order"
            )
        self.items = items.reset_index(drop=True)
        self.root = Path(root) if root is not None else None
        if users is not None and len(users) != len(self.user_ids):
            raise ValueError(
                f"dataset {name!r}: user table has {len(users)} rows but there are "
                f"{len(self.user_ids)} users; pass one row per user in id order"
            )
        self.users = users.reset_index(drop=True) if users is not None else None
        self.modalities: dict[str, FeatureModality] = {}
        for m in (modalities or {}).values():
            self.add_modality(m)
        self._user_index: dict | None = None
        self._item_index: dict | None = None
        self._check_ranges()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(
        cls,
        name: str,
        interactions: pd.DataFrame,
        items: pd.DataFrame | None = None,
        *,
        user_col: str = "user_id",
        item_col: str = "item_id",
        rating_col: str | None = None,
        timestamp_col: str | None = None,
        split_col: str | None = None,
        label_col: str | None = None,
        item_key: str | None = None,
        root: str | Path | None = None,
        keep_items_without_interactions: bool = True,
    ) -> Dataset:
        """Build a dataset from a table of events in original ids (and an optional item table).

        Goes through the same builder as files (:mod:`fusionrec.data.validation`):
        the same id rules (ids kept as given; int64 only when every id is a
        canonical integer), the same timestamp parsing (unix s/ms or dates), the
        same items frame (a ``text`` column joined from the text columns, checked
        ``image_path`` under ``root``). Item ids come from the item table (when
        given and ``keep_items_without_interactions``) plus any item in the events.
        Rows that validation would set aside (a rating that is not a number...) and
        events naming an item absent from the item table raise: validate such data
        first (``fusionrec data validate``), which quarantines or reports them.
        """
        # imported here: the validation package builds Datasets, so it imports this module
        from fusionrec.data.validation import source_from_frames, validate_source
        from fusionrec.errors import UserError

        columns = {"user": user_col, "item": item_col}
        for role, col in (("rating", rating_col), ("timestamp", timestamp_col), ("split", split_col),
                          ("label", label_col)):
            if col:
                columns[role] = col
        item_key = item_key or item_col
        if items is not None and not keep_items_without_interactions and item_key in items.columns:
            items = items[items[item_key].isin(set(pd.unique(interactions[item_col])))]
        source = source_from_frames(name, interactions, items, columns, {"item": item_key}, root)
        dataset, report = validate_source(source)
        report.raise_if_fatal()
        # files keep events of items a partial item table lacks (with a warning); a frame built in
        # Python that names such an item is far more likely a mistake, so it stops here
        problems = [i for i in report.issues if i.severity == "error" or i.code in ("unknown_item", "unknown_user")]
        if problems:
            first = problems[0]
            raise UserError(
                f"validation found problems in {sum(i.count for i in problems)} row(s); first: "
                f"{first.code}: {first.message}", first.where or None,
                "fix the frames, or write them to files and run `fusionrec data validate` to quarantine the rows",
            )
        assert dataset is not None
        return dataset

    # ------------------------------------------------------------------ basic facts
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    @property
    def has_split(self) -> bool:
        return self.interactions["split"].notna().all() and len(self.interactions) > 0

    def __repr__(self) -> str:
        mods = ", ".join(f"{m.name}:{m.kind}[{m.dim}]" for m in self.modalities.values()) or "none"
        # plain ints: a numpy scalar would print as np.int64(...) inside the dict
        split = (
            {k: int(v) for k, v in self.interactions["split"].value_counts().reindex(SPLITS).fillna(0).items()}
            if self.has_split else "none"
        )
        return (
            f"Dataset({self.name!r}: {self.n_users} users, {self.n_items} items, "
            f"{self.n_interactions} interactions, split={split}, modalities={mods})"
        )

    def user_index(self, original_id) -> int:
        if self._user_index is None:
            self._user_index = {u: i for i, u in enumerate(self.user_ids)}
        return self._user_index[original_id]

    def item_index(self, original_id) -> int:
        if self._item_index is None:
            self._item_index = {it: j for j, it in enumerate(self.item_ids)}
        return self._item_index[original_id]

    # ------------------------------------------------------------------ splits
    def split_frame(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise ValueError(f"split {name!r} is not one of {SPLITS}")
        if not self.has_split:
            raise ValueError(
                f"dataset {self.name!r} has no split yet; make one with fusionrec.data.split "
                "(e.g. random_split, temporal_split, cold_start_split) or load a predefined split"
            )
        return self.interactions[self.interactions["split"] == name]

    def with_split(self, split: np.ndarray | pd.Series) -> Dataset:
        """A copy whose interactions carry the given split labels (aligned by row)."""
        split = np.asarray(split, dtype=object)
        if len(split) != len(self.interactions):
            raise ValueError(f"split has {len(split)} labels for {len(self.interactions)} interactions")
        bad = set(pd.unique(split)) - set(SPLITS)
        if bad:
            raise ValueError(f"unknown split labels {sorted(map(str, bad))}; use {SPLITS}")
        inter = self.interactions.copy()
        inter["split"] = split
        return self._replace(interactions=inter)

    def subset_interactions(self, keep: np.ndarray) -> Dataset:
        """A copy with only the interactions where ``keep`` is True (ids unchanged)."""
        return self._replace(interactions=self.interactions[np.asarray(keep, dtype=bool)].reset_index(drop=True))

    def compact(self) -> Dataset:
        """Drop users and items that no longer have any interaction and re-index densely."""
        users = np.sort(self.interactions["user"].unique())
        items = np.sort(self.interactions["item"].unique())
        u_map = np.full(self.n_users, -1, dtype=np.int64)
        u_map[users] = np.arange(len(users))
        i_map = np.full(self.n_items, -1, dtype=np.int64)
        i_map[items] = np.arange(len(items))
        inter = self.interactions.copy()
        inter["user"] = u_map[inter["user"].to_numpy()]
        inter["item"] = i_map[inter["item"].to_numpy()]
        mods = {k: m.subset(items) for k, m in self.modalities.items()}
        return Dataset(
            self.name, self.user_ids[users], self.item_ids[items], inter,
            self.items.iloc[items].reset_index(drop=True), mods, self.root,
            users=self.users.iloc[users].reset_index(drop=True) if self.users is not None else None,
        )

    def _replace(self, **kw) -> Dataset:
        args = {
            "name": self.name, "user_ids": self.user_ids, "item_ids": self.item_ids,
            "interactions": self.interactions, "items": self.items, "modalities": self.modalities, "root": self.root,
            "users": self.users,
        }
        args.update(kw)
        return Dataset(**args)

    # ------------------------------------------------------------------ matrices
    def interaction_matrix(self, splits: str | Iterable[str] = "train", binary: bool = True,
                           positives_only: bool = False) -> sp.csr_matrix:
        """User x item CSR matrix of the given split(s); duplicates collapse to 1 when binary.

        ``positives_only`` keeps only rows whose label is positive (see :func:`positive_rows`),
        which is what models train on and what evaluation masks as "seen".
        """
        if isinstance(splits, str):
            splits = [splits]
        splits = list(splits)
        frame = self.interactions
        if self.has_split:
            frame = frame[frame["split"].isin(splits)]
        elif splits != ["train"]:
            raise ValueError(f"dataset {self.name!r} has no split; cannot select {splits}")
        if positives_only:
            frame = frame[positive_rows(frame)]
        values = np.ones(len(frame), dtype=np.float32)
        mat = sp.csr_matrix(
            (values, (frame["user"].to_numpy(), frame["item"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )
        mat.sum_duplicates()
        if binary:
            mat.data[:] = 1.0
        return mat

    def with_positive_rating(self, threshold: float | None) -> Dataset:
        """A copy where every rating below ``threshold`` is negative feedback (label 0).

        Applied once, before training and evaluation, so the training positives, the
        items masked as seen and the evaluation truth all follow the same labels (and a
        saved model artifact carries them). ``None`` returns the dataset unchanged.
        """
        if threshold is None:
            return self
        inter = self.interactions.copy()
        below = (inter["rating"].to_numpy(np.float64) < float(threshold))  # NaN rating: not below
        inter.loc[below, "label"] = np.float32(0.0)
        return self._replace(interactions=inter)

    def train_data(self, modalities: Iterable[str] | None = None,
                   positive_rating: float | None = None) -> TrainData:
        """The view a model is built from: training rows only, plus item content.

        ``train`` holds the training *positives* only: rows with label 0 (shown, not
        clicked) and, with ``positive_rating``, ratings below it are negative feedback and
        never a positive. ``train_frame`` keeps every training row with its label (0 for
        negatives) so pointwise models can learn from the explicit negatives.
        """
        source = self.with_positive_rating(positive_rating)
        train = source.split_frame("train") if source.has_split else source.interactions
        names = list(self.modalities) if modalities is None else list(modalities)
        missing = [n for n in names if n not in self.modalities]
        if missing:
            raise KeyError(
                f"modalities {missing} not in dataset {self.name!r}; available: {list(self.modalities)}"
            )
        frame = train.reset_index(drop=True)
        # negatives (label <= 0) become exactly 0 and unlabelled events (NaN) 1, so a
        # pointwise model can read ``label > 0`` without knowing the source's conventions
        labels = frame["label"].to_numpy(np.float32)
        frame["label"] = np.where(positive_rows(frame), np.nan_to_num(labels, nan=1.0), 0.0).astype(np.float32)
        return TrainData(
            n_users=self.n_users,
            n_items=self.n_items,
            train=source.interaction_matrix("train", positives_only=True),
            train_frame=frame,
            modalities={n: self.modalities[n] for n in names},
            item_frame=self.items,
            user_frame=self.users,
            root=self.root,
        )

    def user_attribute_masks(self) -> dict[str, np.ndarray]:
        """Per user attribute column: [n_users] bool, True where the user has a value."""
        if self.users is None:
            return {}
        return {c: self.users[c].notna().to_numpy() & (self.users[c].astype(str).str.strip() != "").to_numpy()
                for c in self.users.columns if c != "user_id"}

    # ------------------------------------------------------------------ modalities
    def add_modality(self, modality: FeatureModality) -> None:
        if modality.n_items != self.n_items:
            raise ValueError(
                f"modality {modality.name!r} has {modality.n_items} rows but the dataset has "
                f"{self.n_items} items; row j must be item j"
            )
        self.modalities[modality.name] = modality

    def _check_ranges(self) -> None:
        inter = self.interactions
        if len(inter) == 0:
            return
        for col, n in (("user", self.n_users), ("item", self.n_items)):
            lo, hi = int(inter[col].min()), int(inter[col].max())
            if lo < 0 or hi >= n:
                raise ValueError(
                    f"dataset {self.name!r}: interaction {col} ids span [{lo}, {hi}] but there are "
                    f"{n} {col}s; internal ids must be 0..{n - 1}"
                )


def positive_rows(frame: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows of an interaction frame that are positive feedback.

    A row is positive unless its ``label`` is ``<= 0``; a NaN label is an event without
    a label and counts as positive (the evaluator uses the same rule).
    """
    labels = frame["label"].to_numpy(np.float64)
    return ~(labels <= 0)


def _normalise_interactions(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("user", "item") if c not in frame.columns]
    if missing:
        raise KeyError(f"interactions need internal id columns 'user' and 'item'; missing {missing}")
    out = pd.DataFrame(
        {
            "user": frame["user"].to_numpy(np.int64),
            "item": frame["item"].to_numpy(np.int64),
            "rating": frame["rating"].to_numpy(np.float32) if "rating" in frame else np.float32(np.nan),
            "timestamp": frame["timestamp"].to_numpy(np.float64) if "timestamp" in frame else np.nan,
            "label": frame["label"].to_numpy(np.float32) if "label" in frame else np.float32(1.0),
            "split": frame["split"].to_numpy(object) if "split" in frame else None,
        }
    )
    return out


__all__ = ["INTERACTION_COLUMNS", "MODALITY_KINDS", "SPLITS", "Dataset", "FeatureModality", "TrainData", "positive_rows"]
