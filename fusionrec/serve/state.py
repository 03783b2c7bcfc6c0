"""What the service answers from: one immutable-by-reference snapshot of a trained model.

:class:`ServiceState` bundles the model, its id maps, user/item vectors, the
faiss index, the content map and the catalogue. A retrain builds a whole new
state off to the side and the service swaps one reference; a request reads
``service.state`` once and uses that object to the end, so in-flight requests
finish on the old model.

Posted items (``POST /items``) are the one mutation of a live state: they go
into the :class:`Catalogue` and the index copy-on-write (new arrays are built,
then assigned), so a concurrent reader sees either the old or the new table,
never a half-written one.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import RecModel
from fusionrec.serve.config import ServeConfig
from fusionrec.serve.content import ContentMap
from fusionrec.serve.index import ItemIndex
from fusionrec.serve.limits import AttributeTypeError, conform_attributes
from fusionrec.serve.placement import ContentPlacer, content_placer
from fusionrec.serve.store import StoredItem

log = logging.getLogger("fusionrec.serve")

# columns never used as filterable/profile attributes: ids, free text, media paths
_TEXT_LIKE = re.compile(r"(^|_)(id|iid|title|name|overview|plot|text|description|path|url|tags)$", re.IGNORECASE)


def _as_key(value: Any) -> str:
    """Ids are strings in the API; numpy ints and floats that are whole print without noise."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Catalogue:
    """Item ids, attribute table and content features; grows copy-on-write when items are posted."""

    item_ids: list[str]
    index_of: dict[str, int]
    frame: pd.DataFrame                       # one row per item (attributes, text, image_path)
    features: dict[str, np.ndarray]           # modality -> [n_items, dim]
    masks: dict[str, np.ndarray]              # modality -> [n_items] bool
    cold: np.ndarray                          # True: embedding comes from the content map, not training
    popularity: np.ndarray                    # training interactions per item
    version: int = 0

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def titles(self) -> list[str | None]:
        """Display title per item, computed once per catalogue version (a pandas lookup per
        returned item was a third of a recommendation's CPU time)."""
        out: list[str | None] = [None] * self.n_items
        # later columns win: title is preferred; retail exports name products prod_name / product_name
        for col in ("tmdb_title", "prod_name", "product_name", "name", "title"):
            if col in self.frame.columns:
                for j, v in enumerate(self.frame[col].tolist()):
                    if isinstance(v, str) and v:
                        out[j] = v
        return out

    def title(self, row: int) -> str | None:
        return self.titles[row]

    def attributes(self, row: int) -> dict[str, Any]:
        rec = self.frame.iloc[row].to_dict()
        out = {}
        for k, v in rec.items():
            if v is None or (isinstance(v, float) and np.isnan(v)) or k == "item_id":  # item_id is the key
                continue
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, str) and len(v) > 500:
                v = v[:500] + "..."
            out[str(k)] = v
        return out

    def attribute_columns(self) -> list[str]:
        """Columns that describe items categorically (genres, year, brand), for profiles and filters."""
        cols = []
        for col in self.frame.columns:
            if _TEXT_LIKE.search(str(col)) or col == "image_path" or col == "audio_path":
                continue
            cols.append(str(col))
        return cols


@dataclass
class ServiceState:
    """A loaded model plus everything derived from it for serving (see module docstring)."""

    version: int
    model: RecModel
    dataset: Dataset
    config: Any
    user_ids: list[str]
    user_index: dict[str, int]
    user_vectors: np.ndarray | None     # [n_users, d] when the model scores by inner product
    index: ItemIndex | None             # inner product (recommendations)
    sim_index: ItemIndex | None         # cosine (similar items)
    seen: sp.csr_matrix                 # training positives, user x (base) item
    content_map: ContentMap | None
    catalogue: Catalogue
    trained_upto_seq: int = 0
    model_dir: str | None = None
    placer: ContentPlacer | None = None  # the model's own content path (None: ridge map only)
    version_name: str = "base"           # 'base' (--model) or the retrained version (v2, v3, ...)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _filter_cache: dict = field(default_factory=dict)

    @property
    def inner_product(self) -> bool:
        return self.index is not None

    @property
    def item_vectors(self) -> np.ndarray | None:
        return None if self.index is None else self.index.vectors

    @property
    def placement(self) -> str | None:
        """How items without interactions get a vector: the model's content path, the ridge map, or not at all."""
        if self.placer is not None:
            return "model content path"
        return "ridge map" if self.content_map is not None else None

    @property
    def placement_modalities(self) -> list[str]:
        if self.placer is not None:
            return list(dict.fromkeys([*self.placer.modalities, *getattr(self.placer, "graph", {})]))
        return list(self.content_map.modalities) if self.content_map is not None else []

    def can_place(self, vectors: dict[str, np.ndarray]) -> bool:
        """True when an item with these content vectors can be given an item vector."""
        if self.placer is not None:
            return self.placer.usable(vectors)
        return self.content_map is not None and self.content_map.usable(vectors)

    def place(self, vectors: dict[str, np.ndarray], row: int | None = None) -> np.ndarray:
        """Item-space vector from content: the model's own content path when it has one, else the ridge map.

        ``row``: the item's row when the model's training catalogue holds it.
        """
        if self.placer is not None:
            return self.placer.place(vectors, row if row is not None and row < self.dataset.n_items else None)
        if self.content_map is None:
            raise ValueError("the model has no content path and no content map")
        return self.content_map.embed(vectors)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, model: RecModel, dataset: Dataset, config: Any, cfg: ServeConfig,
              stored_items: list[StoredItem] | None = None, trained_upto_seq: int = 0,
              version: int = 1, model_dir: str | None = None) -> ServiceState:
        model.eval()
        user_ids = [_as_key(u) for u in dataset.user_ids]
        item_ids = [_as_key(i) for i in dataset.item_ids]
        with torch.no_grad():
            u = model.user_embeddings()
            v = model.item_embeddings()
        user_vectors = item_vectors = None
        if u is not None and v is not None:
            user_vectors = np.ascontiguousarray(u.detach().cpu().numpy(), dtype=np.float32)
            item_vectors = np.ascontiguousarray(v.detach().cpu().numpy(), dtype=np.float32)
            if item_vectors.shape[0] != len(item_ids) or user_vectors.shape[0] != len(user_ids):
                raise ValueError(
                    f"model has {user_vectors.shape[0]} users x {item_vectors.shape[0]} items but the dataset "
                    f"has {len(user_ids)} x {len(item_ids)}; the model directory is inconsistent"
                )
        seen = dataset.interaction_matrix("train") if dataset.has_split else dataset.interaction_matrix()
        popularity = np.asarray(seen.sum(axis=0)).ravel()
        frame = dataset.items.copy()
        features = {n: m.features for n, m in dataset.modalities.items()}
        masks = {n: m.mask for n, m in dataset.modalities.items()}
        warm = popularity > 0
        content_map = None
        if item_vectors is not None and features:
            content_map = ContentMap.fit({n: (features[n], masks[n]) for n in features}, item_vectors, warm,
                                         alpha=cfg.ridge_alpha)
        placer = content_placer(model, dataset) if item_vectors is not None else None
        # a model with a content path already gave its cold items their content vectors; an ID-only
        # model left them at their random initial embedding, and the ridge map is the better guess
        cold = ~warm
        if placer is None and content_map is not None and cold.any():
            for row in np.flatnonzero(cold):
                vecs = {n: features[n][row] for n in features if masks[n][row]}
                if content_map.usable(vecs):
                    item_vectors[row] = content_map.embed(vecs)
        catalogue = Catalogue(item_ids, {i: j for j, i in enumerate(item_ids)}, frame, features, masks,
                              cold.copy(), popularity.astype(np.float64))
        index = sim_index = None
        if item_vectors is not None:
            index = ItemIndex(item_vectors, cfg.index)
            sim_index = ItemIndex(_normalise(item_vectors), cfg.index)
        state = cls(version, model, dataset, config, user_ids, {u: i for i, u in enumerate(user_ids)},
                    user_vectors, index, sim_index, seen.tocsr(), content_map, catalogue,
                    trained_upto_seq, model_dir, placer)
        for item in stored_items or []:
            try:
                state.upsert_item(item)
            except (TypeError, ValueError) as err:
                # one stored item must not stop a start or a retrain: serve without it, say which
                log.warning("stored item %r is left out: %s", item.item_id, err)
        return state

    # ------------------------------------------------------------------ items
    def upsert_item(self, item: StoredItem) -> tuple[int, bool]:
        """Add or update one item; returns ``(row, created)``. Cold items get a content-mapped vector."""
        with self.lock:
            cat = self.catalogue
            row = cat.index_of.get(item.item_id)
            created = row is None
            n = cat.n_items
            if created:
                row = n
            features = dict(cat.features)
            masks = dict(cat.masks)
            for name in set(features) | set(item.features):
                if name not in features:
                    continue  # a modality the model never saw cannot be used
                f, m = features[name], masks[name]
                if created:
                    f = np.vstack([f, np.zeros((1, f.shape[1]), np.float32)])
                    m = np.append(m, False)
                else:
                    f, m = f.copy(), m.copy()
                vec = item.features.get(name)
                if vec is not None and vec.shape[0] == f.shape[1]:
                    f[row], m[row] = vec, True
                features[name], masks[name] = f, m
            attrs = _typed_or_dropped(cat.frame, item)
            if item.text is not None:
                attrs.setdefault("text", item.text)
            frame = cat.frame
            if created:
                new = pd.DataFrame([attrs])
                frame = pd.concat([frame, new], ignore_index=True) if len(frame.columns) else new
            else:
                frame = frame.copy()
                for k, v in attrs.items():
                    if k not in frame.columns:
                        frame[k] = None
                    try:
                        frame.at[row, k] = v
                    except (TypeError, ValueError):
                        # e.g. None into an integer column: widen the column rather than fail
                        frame[k] = frame[k].astype(object)
                        frame.at[row, k] = v
            cold = np.append(cat.cold, True) if created else cat.cold
            popularity = np.append(cat.popularity, 0.0) if created else cat.popularity
            if self.index is not None and cold[row]:
                vecs = {n: features[n][row] for n in features if masks[n][row]}
                if not self.can_place(vecs):
                    raise ValueError(f"no content the model can place (needs one of {self.placement_modalities})")
                vec = self.place(vecs, row)
                self.index.upsert(np.array([row]), vec[None, :])
                self.sim_index.upsert(np.array([row]), _normalise(vec[None, :]))
            ids = cat.item_ids + [item.item_id] if created else cat.item_ids
            index_of = {**cat.index_of, item.item_id: row} if created else cat.index_of
            self.catalogue = Catalogue(ids, index_of, frame.reset_index(drop=True), features, masks, cold,
                                       popularity, cat.version + 1)
            self._filter_cache = {}
            return row, created

    # ------------------------------------------------------------------ filters
    def filter_mask(self, expr: str | None) -> np.ndarray | None:
        """Bool mask of items passing ``expr`` (``genres:Comedy;year>=1990``); None when no filter."""
        if not expr:
            return None
        cat = self.catalogue
        key = (expr, cat.version)
        cached = self._filter_cache.get(key)
        if cached is not None:
            return cached
        mask = parse_filters(expr, cat.frame)
        if len(self._filter_cache) > 256:
            self._filter_cache = {}
        self._filter_cache[key] = mask
        return mask


def _typed_or_dropped(frame: pd.DataFrame, item: StoredItem) -> dict[str, Any]:
    """The item's attributes typed like the catalogue's columns; a value that cannot be (a row stored
    before the service checked types) is dropped with a warning instead of breaking the table."""
    out = {}
    for key, value in item.attributes.items():
        try:
            out.update(conform_attributes(frame, {key: value}))
        except AttributeTypeError as err:
            log.warning("item %r: attribute %r left out: %s", item.item_id, key, err)
    return out


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


_CLAUSE = re.compile(r"^\s*([A-Za-z0-9_.\- ]+?)\s*(>=|<=|!=|==|=|>|<|:)\s*(.+?)\s*$")


class FilterError(ValueError):
    """A filter expression names an unknown column or cannot be parsed."""


def parse_filters(expr: str, frame: pd.DataFrame) -> np.ndarray:
    """Evaluate ``clause;clause`` (AND) on the item table.

    ``col:value`` -- the column equals ``value`` or, for multi-valued text such as
    ``Action|Comedy``, contains it as one of its ``|``/``,``-separated tokens;
    ``col=value``/``col!=value`` exact (in)equality; ``col>=2000`` etc. numeric
    comparisons. ``a|b`` as a value means either.
    """
    mask = np.ones(len(frame), dtype=bool)
    for clause in [c for c in expr.split(";") if c.strip()]:
        m = _CLAUSE.match(clause)
        if not m:
            raise FilterError(f"cannot parse filter clause {clause!r}; use e.g. genres:Comedy or year>=1990")
        col, op, raw = m.group(1).strip(), m.group(2), m.group(3)
        if col not in frame.columns:
            raise FilterError(f"unknown filter column {col!r}; filterable columns: {[str(c) for c in frame.columns]}")
        series = frame[col]
        if op in (">=", "<=", ">", "<"):
            try:
                value = float(raw)
            except ValueError as err:
                raise FilterError(f"filter {clause!r}: {raw!r} is not a number") from err
            num = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                hit = {">=": num >= value, "<=": num <= value, ">": num > value, "<": num < value}[op]
            mask &= np.nan_to_num(hit, nan=False).astype(bool)
            continue
        wanted = [v.strip().lower() for v in raw.split("|") if v.strip()]
        text = series.astype("string").str.lower().fillna("")
        text_np = text.to_numpy(dtype=object)
        if op == ":":
            tokens = [{t.strip() for t in re.split(r"[|,]", s)} for s in text_np]
            hit = np.array([bool(tok & set(wanted)) or s in wanted for tok, s in zip(tokens, text_np)], dtype=bool)
        else:
            # numbers compare as numbers so year=1995 matches 1995.0
            num = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            try:
                wanted_num = [float(w) for w in wanted]
                hit = np.isin(num, wanted_num)
            except ValueError:
                hit = np.isin(text_np, wanted)
            if op == "!=":
                hit = ~hit
        mask &= hit
    return mask
