"""Item attributes as one more modality: one-hot / multi-hot categories + standardised numbers.

* categorical columns (``brand``, ``rated``): one column per category seen at least
  ``min_count`` times in the catalogue (at most ``max_categories`` per column, most
  frequent first) plus an ``<other>`` column that catches rare categories and, later,
  categories never seen during :meth:`fit` (a new brand at serving time);
* multi-valued columns (``genres`` = ``"Action|Comedy"`` or a list): multi-hot over
  the same vocabulary rules;
* numeric columns (``price``, ``year``): ``(x - mean) / std`` over the catalogue, and
  a ``<missing>`` indicator column so an absent price is not read as an average one.

Without explicit columns, :meth:`fit` picks them: numeric columns (>= 90% parse as
numbers), multi-valued columns (a ``|`` or ``;`` in the values) and low-cardinality
string columns; id, path and free-text columns are skipped.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.data.roles import ROLE_ALIASES
from fusionrec.encoders.base import Encoder, ItemInput, content_hash, is_blank
from fusionrec.errors import UserError

OTHER = "<other>"
MISSING = "<missing>"
_SKIP_SUFFIXES = ("_id", "_path", "_url", "id")
# Free-text columns are the text modality's, not attributes: the role table's text names (genres, a
# short multi-valued list, stays an attribute candidate), plus credits lists that are too long to one-hot.
_TEXTY = {a.lower() for a in ROLE_ALIASES["text"]} - {"genres"} | {"writers", "actors"}


class AttributeEncoder(Encoder):
    """Categorical, multi-valued and numeric item columns -> one fixed-width vector."""

    name = "attributes"
    kind = "attribute"

    def __init__(
        self,
        categorical: Sequence[str] | None = None,
        multi_valued: dict[str, str] | Sequence[str] | None = None,
        numeric: Sequence[str] | None = None,
        min_count: int = 2,
        max_categories: int = 200,
        modality: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        super().__init__(modality)
        # the data description's attribute columns: typed by the same rules as the automatic
        # choice, but only these, and never skipped for looking like a text or id column
        self.columns = list(columns) if columns is not None else None
        self.categorical = list(categorical) if categorical is not None else None
        if multi_valued is not None and not isinstance(multi_valued, dict):
            multi_valued = {c: "|" for c in multi_valued}
        self.multi_valued = dict(multi_valued) if multi_valued is not None else None
        self.numeric = list(numeric) if numeric is not None else None
        self.min_count = int(min_count)
        self.max_categories = int(max_categories)
        self.vocab: dict[str, list[str]] = {}
        # values seen in the catalogue but too rare for a column of their own: they share <other>;
        # a value never seen at all carries no information and gets no column
        self.rare: dict[str, set[str]] = {}
        self.stats: dict[str, tuple[float, float]] = {}
        self._fitted = False

    # ------------------------------------------------------------------ fitting
    def fit(self, items: pd.DataFrame, root: Path | None = None) -> AttributeEncoder:
        """Choose columns (if not given) and learn vocabularies and numeric mean/std from the catalogue."""
        explicit = self.categorical is not None or self.multi_valued is not None or self.numeric is not None
        cat = list(self.categorical or [])
        multi = dict(self.multi_valued or {})
        num = list(self.numeric or [])
        if not explicit and self.columns is not None:
            cat, multi, num = _auto_columns(items, only=self.columns)
        elif not explicit:
            cat, multi, num = _auto_columns(items)
        missing = [c for c in [*cat, *multi, *num] if c not in items.columns]
        if missing:
            raise UserError(
                f"attribute columns {missing} are not in the item table",
                where=f"item columns: {list(items.columns)}",
                fix="name existing columns in categorical= / multi_valued= / numeric=",
            )
        if not (cat or multi or num):
            raise UserError(
                "no attribute columns found in the item table",
                where=f"item columns: {list(items.columns)}",
                fix="pass categorical=[...], multi_valued={col: '|'} or numeric=[...] explicitly",
            )
        self.categorical, self.multi_valued, self.numeric = cat, multi, num
        self.vocab, self.stats, self.rare = {}, {}, {}
        for col in cat:
            values = [str(v).strip() for v in items[col].tolist() if not is_blank(v)]
            self.vocab[col] = self._vocabulary(pd.Series(values, dtype=object))
            self.rare[col] = set(values) - set(self.vocab[col])
        for col, sep in multi.items():
            tokens = [t for v in items[col].tolist() for t in _split(v, sep)]
            self.vocab[col] = self._vocabulary(pd.Series(tokens, dtype=object))
            self.rare[col] = set(tokens) - set(self.vocab[col])
        for col in num:
            x = pd.to_numeric(items[col], errors="coerce").to_numpy(np.float64)
            x = x[np.isfinite(x)]
            mean = float(x.mean()) if x.size else 0.0
            std = float(x.std()) if x.size > 1 else 1.0
            self.stats[col] = (mean, std if std > 1e-12 else 1.0)
        self._fitted = True
        self._id = None  # the id covers the fitted vocabulary
        return self

    def _vocabulary(self, values: pd.Series) -> list[str]:
        counts = values.value_counts()
        counts = counts[counts >= self.min_count]
        # Sort by count, then name, so the column order is deterministic.
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        return [str(k) for k, _ in ordered[: self.max_categories]]

    def _require_fit(self) -> None:
        if not self._fitted:
            raise RuntimeError("AttributeEncoder.fit(items) must run before use")

    # ------------------------------------------------------------------ identity / shape
    def _id_parts(self) -> dict[str, Any]:
        self._require_fit()
        state = json.dumps(
            {"cat": self.categorical, "multi": self.multi_valued, "num": self.numeric,
             "vocab": self.vocab, "stats": self.stats}, sort_keys=True,
        )
        return {"state": hashlib.sha256(state.encode()).hexdigest()[:24]}

    @property
    def dim(self) -> int:
        self._require_fit()
        return sum(len(self.vocab[c]) + 1 for c in [*self.categorical, *self.multi_valued]) + 2 * len(self.numeric)

    def feature_names(self) -> list[str]:
        """Column names of the output vector (``genres=Comedy``, ``brand=<other>``, ``price``, ...)."""
        self._require_fit()
        names: list[str] = []
        for col in [*self.categorical, *self.multi_valued]:
            names += [f"{col}={v}" for v in self.vocab[col]] + [f"{col}={OTHER}"]
        for col in self.numeric:
            names += [col, f"{col}={MISSING}"]
        return names

    # ------------------------------------------------------------------ work
    def prepare(self, items: pd.DataFrame, root: Path | None) -> list[ItemInput]:
        self._require_fit()
        cols = [*self.categorical, *self.multi_valued, *self.numeric]
        out: list[ItemInput] = []
        for row in items[cols].to_dict("records"):
            values = {c: _plain_value(row[c]) for c in cols}
            if all(is_blank(v) or (isinstance(v, list) and not v) for v in values.values()):
                out.append(ItemInput(None, problem="no attribute values (all attribute columns empty)"))
                continue
            if not self._any_known(values):
                out.append(ItemInput(None, problem="no known attribute values (none occurs in the catalogue)"))
                continue
            out.append(ItemInput(content_hash(json.dumps(values, sort_keys=True, default=str)), payload=values))
        return out

    def encode(self, batch: Sequence[dict[str, Any]]) -> np.ndarray:
        return np.stack([self._vector(v) for v in batch]).astype(np.float32)

    def transform(self, items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Encode new items with the fitted vocabulary: ``(features, mask)`` (rare categories -> <other>,
        never-seen ones -> nothing; an item with no known value is masked)."""
        inputs = self.prepare(items, None)
        feats = np.zeros((len(inputs), self.dim), dtype=np.float32)
        mask = np.array([it.key is not None for it in inputs])
        if mask.any():
            feats[mask] = self.encode([it.payload for it in inputs if it.key is not None])
        return feats, mask

    def _vector(self, values: dict[str, Any]) -> np.ndarray:
        parts: list[np.ndarray] = []
        for col in self.categorical:
            parts.append(self._hot(col, [] if is_blank(values[col]) else [str(values[col]).strip()]))
        for col, sep in self.multi_valued.items():
            parts.append(self._hot(col, _split(values[col], sep)))
        for col in self.numeric:
            mean, std = self.stats[col]
            x = pd.to_numeric(pd.Series([values[col]], dtype=object), errors="coerce").iloc[0]
            parts.append(np.array([0.0, 1.0]) if pd.isna(x) or not np.isfinite(x) else np.array([(x - mean) / std, 0.0]))
        return np.concatenate(parts) if parts else np.zeros(0)

    def _hot(self, col: str, tokens: list[str]) -> np.ndarray:
        vocab = self.vocab[col]
        index = {v: i for i, v in enumerate(vocab)}
        rare = self.rare.get(col, set())
        vec = np.zeros(len(vocab) + 1)
        for tok in tokens:
            if tok in index:
                vec[index[tok]] = 1.0
            elif tok in rare:
                vec[len(vocab)] = 1.0  # seen but rare -> <other>; never seen -> nothing
        return vec

    def _any_known(self, values: dict[str, Any]) -> bool:
        """Does any value occur in the catalogue (a numeric one always counts)?"""
        if any(not is_blank(values[c]) for c in self.numeric):
            return True
        for col in self.categorical:
            v = values[col]
            if not is_blank(v) and (str(v).strip() in self.vocab[col] or str(v).strip() in self.rare.get(col, ())):
                return True
        for col, sep in self.multi_valued.items():
            if any(t in self.vocab[col] or t in self.rare.get(col, ()) for t in _split(values[col], sep)):
                return True
        return False


def _split(value: Any, sep: str) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if not is_blank(v)]
    if is_blank(value):
        return []
    return [t.strip() for t in str(value).split(sep) if t.strip()]


def _plain_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value


def _auto_columns(items: pd.DataFrame, only: Sequence[str] | None = None
                  ) -> tuple[list[str], dict[str, str], list[str]]:
    """Guess attribute columns (see the module docstring); ``only``: type just these, skip none by name."""
    cat: list[str] = []
    multi: dict[str, str] = {}
    num: list[str] = []
    n = max(len(items), 1)
    for col in (items.columns if only is None else [c for c in only if c in items.columns]):
        lower = str(col).lower()
        if only is None and (lower in _TEXTY or lower.endswith(_SKIP_SUFFIXES) or lower.startswith("trait_")):
            continue
        series = items[col]
        present = series[[not is_blank(v) for v in series.tolist()]]
        if present.empty:
            continue
        as_num = pd.to_numeric(present, errors="coerce")
        if as_num.notna().mean() >= 0.9:
            num.append(col)
            continue
        text = present.astype(str)
        if text.str.len().mean() > 60:
            continue  # free text, not a category
        sep = "|" if text.str.contains("|", regex=False).mean() > 0.05 else (
            ";" if text.str.contains(";", regex=False).mean() > 0.05 else None)
        if sep:
            multi[col] = sep
        elif text.nunique() <= max(50, int(0.05 * n)):
            cat.append(col)
    return cat, multi, num
