"""User attributes as a tower input: new users are recommended from who they are.

:class:`UserAttributeEncoder` turns the user table's attribute columns (``data.users_path``
with ``data.user_columns.attributes``, loaded into ``Dataset.users``) into one vector per user:

* a column whose present values are (almost) all numbers is cut into quantile bins
  (``age`` -> age bands; a numeric ``zip_code`` -> regions of neighbouring codes);
* any other column is categorical: a value held by at least ``min_count`` users gets its
  own embedding, rarer ones share an ``<other>`` slot;
* a missing cell (None, empty) is slot 0, a zero embedding that carries nothing, and a
  value never seen when the vocabulary was built (a serving request) is ``<other>``.

The field embeddings are concatenated and mapped by a small MLP into the model's space.
The vocabulary is built from the whole user table: attributes are known at sign-up and
are not labels, so a held-out user's own values are not a leak. It is rebuilt from the
dataset stored with a saved model, so a loaded model encodes attributes the same way.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fusionrec.errors import UserError

MISSING, OTHER = 0, 1
# a column is numeric when at least this share of its present values parse as numbers
NUMERIC_SHARE = 0.95


def _present(values: pd.Series) -> pd.Series:
    text = values.astype(object).where(values.notna(), None)
    return text.map(lambda v: v is not None and str(v).strip() != "")


class _Field:
    """How one attribute column becomes an integer code (0 missing, 1 other, 2.. values or bins)."""

    def __init__(self, name: str, values: pd.Series, n_bins: int, min_count: int) -> None:
        self.name = name
        present = values[_present(values)]
        numbers = pd.to_numeric(present, errors="coerce")
        self.numeric = len(present) > 0 and numbers.notna().mean() >= NUMERIC_SHARE \
            and numbers.nunique() > n_bins
        if self.numeric:
            qs = np.quantile(numbers.dropna().to_numpy(np.float64), np.linspace(0, 1, n_bins + 1)[1:-1])
            self.edges = np.unique(qs)
            self.vocab: dict[str, int] = {}
            self.size = len(self.edges) + 3          # missing, other (unparseable), bins
        else:
            counts = present.astype(str).str.strip().value_counts()
            kept = sorted(counts[counts >= min_count].index)
            self.vocab = {v: i + 2 for i, v in enumerate(kept)}
            self.edges = np.array([])
            self.size = len(self.vocab) + 2

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        out = np.full(len(values), MISSING, dtype=np.int64)
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "":
                continue
            if self.numeric:
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    out[i] = OTHER
                    continue
                out[i] = OTHER if not np.isfinite(x) else int(np.searchsorted(self.edges, x, side="right")) + 2
            else:
                out[i] = self.vocab.get(str(v).strip(), OTHER)
        return out

    def describe(self) -> str:
        if self.numeric:
            return f"{self.name}: number in {len(self.edges) + 1} quantile bins (edges {np.round(self.edges, 2).tolist()})"
        return f"{self.name}: {len(self.vocab)} values + <other>"


class UserAttributeEncoder(nn.Module):
    """``[B, F]`` attribute codes -> ``[B, dim]`` user vectors (zero for a user with no attribute)."""

    def __init__(self, frame: pd.DataFrame, dim: int, n_bins: int = 8, min_count: int = 5,
                 field_dim: int | None = None, columns: Sequence[str] | None = None) -> None:
        super().__init__()
        cols = [c for c in (columns if columns is not None else frame.columns) if c != "user_id"]
        if not cols:
            raise UserError("the user table has no attribute columns", "data.user_columns.attributes",
                            "declare them, e.g. user_columns: {user: user_id, attributes: age,gender,occupation}")
        self.fields = [_Field(c, frame[c], n_bins, min_count) for c in cols]
        self.columns = cols
        fd = field_dim or max(8, dim // 2)
        self.embeddings = nn.ModuleList(nn.Embedding(f.size, fd, padding_idx=MISSING) for f in self.fields)
        for emb in self.embeddings:
            nn.init.normal_(emb.weight, std=0.1)
            with torch.no_grad():
                emb.weight[MISSING].zero_()
        self.mlp = nn.Sequential(nn.Linear(fd * len(cols), dim), nn.GELU(), nn.Linear(dim, dim))

    def encode_frame(self, frame: pd.DataFrame) -> torch.Tensor:
        """Codes of every row of a user frame: [n, F] (a column the frame lacks is missing)."""
        codes = [f.encode(frame[f.name].tolist()) if f.name in frame.columns else np.zeros(len(frame), np.int64)
                 for f in self.fields]
        return torch.from_numpy(np.stack(codes, axis=1)) if codes else torch.zeros(len(frame), 0, dtype=torch.long)

    def encode_records(self, records: Sequence[Mapping[str, Any] | None]) -> torch.Tensor:
        """Codes of attribute dicts (``{"age": 25, "gender": "F"}``); unknown keys are a UserError."""
        known = set(self.columns)
        for rec in records:
            extra = sorted(set(rec or {}) - known)
            if extra:
                raise UserError(f"unknown user attribute(s) {extra}", "attributes",
                                f"use the attributes the model was trained with: {self.columns}")
        frame = pd.DataFrame([{c: (rec or {}).get(c) for c in self.columns} for rec in records],
                             columns=self.columns)
        return self.encode_frame(frame)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        parts = [emb(codes[:, j]) for j, emb in enumerate(self.embeddings)]
        out = self.mlp(torch.cat(parts, dim=1))
        # a user with no attribute at all has nothing to say: exactly zero, not the MLP's bias
        return out * (codes > MISSING).any(dim=1, keepdim=True).float()

    def describe(self) -> list[str]:
        return [f.describe() for f in self.fields]


def pad_histories(histories: Sequence[Sequence[int]], length: int | None = None) -> torch.Tensor:
    """Item lists -> ``[B, L]`` int64, padded with -1 (``length``: keep the last ``length`` items)."""
    lists = [list(h)[-length:] if length else list(h) for h in histories]
    width = max([len(h) for h in lists] + [1])
    out = torch.full((len(lists), width), -1, dtype=torch.long)
    for i, h in enumerate(lists):
        if h:
            out[i, : len(h)] = torch.as_tensor(h, dtype=torch.long)
    return out


class NewUserMixin:
    """The new-user path of a tower model (``two_tower``): users it never trained on are embedded
    from their attributes (codes of :class:`UserAttributeEncoder`) and whatever first events they have.

    The host model provides ``_item_vectors``, ``_encode_history``, ``_finish_user``,
    ``_predict``, ``_export_users``, ``inner_product`` and the attributes ``user_attr``,
    ``history``, ``history_proj``, ``history_len``, ``hist`` and ``hp``.
    """

    def _first_events(self, users: torch.Tensor, exclude: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
        """Padded histories of 0..new_user_events random training items (never the target) per user."""
        hist = self.hist[users]
        valid = hist >= 0
        if exclude is not None:
            valid = valid & (hist != exclude[new][:, None])
        rank = torch.rand(hist.shape, device=hist.device).masked_fill(~valid, 2.0).argsort(dim=1).argsort(dim=1)
        n = torch.randint(0, self.hp.new_user_events + 1, (len(users), 1), device=hist.device)
        return torch.where(valid & (rank < n), hist, torch.full_like(hist, -1))

    def _new_user_vectors(self, codes: torch.Tensor | None, hist: torch.Tensor,
                          item_vecs: torch.Tensor) -> torch.Tensor:
        """Users not in training: attribute codes [B, F] (or None) and padded first items [B, L]."""
        u = None
        if self.history != "none":
            u = self.history_proj(self._encode_history(None, item_vecs, hist=hist))
        return self._finish_user(u, codes)

    # ------------------------------------------------------------------ new-user prior
    def _init_new_user_prior(self, data: Any) -> None:
        """With ``new_user_prior``: the attribute multinomial of :mod:`fusionrec.models.new_user_prior`."""
        from fusionrec.models.new_user_prior import NewUserPrior

        self.new_user_prior: NewUserPrior | None = None
        if not self.hp.new_user_prior:
            return
        if self.user_attr is None:
            raise UserError("two_tower: new_user_prior needs user attributes", "model.params.new_user_prior",
                            "set user_attributes: true (with a user table), or new_user_prior: false")
        if getattr(self, "batch_local", False):
            raise UserError("two_tower: new_user_prior is a full softmax over the catalogue, and this catalogue is "
                            "above full_softmax_max_items", "model.params.new_user_prior",
                            "set new_user_prior: false for a catalogue this large")
        if not self.inner_product or self.blocks:
            raise UserError(f"two_tower: new_user_prior adds log-probabilities to scores, and fusion "
                            f"{self.hp.fusion!r} does not produce them", "model.params.new_user_prior",
                            "use a feature-level fusion (attention, concat, ...) or new_user_prior: false")
        frame = data.train_frame
        self.new_user_prior = NewUserPrior(data.user_frame, frame, self.n_items, self.dim,
                                           self.hp.user_attribute_bins, self.hp.user_attribute_min_count,
                                           self.hp.new_user_recency_days)
        # each training user's arrival: its first training event (the recency window ends there)
        first = frame.groupby("user")["timestamp"].min()
        arrival = np.full(self.n_users, np.nan)
        arrival[first.index.to_numpy(np.int64)] = first.to_numpy(np.float64)
        self.register_buffer("user_arrival", torch.from_numpy(arrival), persistent=False)

    def _new_user_prior_loss(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor | float:
        """The prior's weighted cross-entropy on the batch's (user, item) events (0 without a prior)."""
        if self.new_user_prior is None:
            return 0.0
        weights = self.user_deg[users].clamp_min(1.0) ** -self.hp.new_user_prior_power
        return self.new_user_prior.loss(self.user_codes[users], items, weights,
                                        self.user_arrival[users].cpu().numpy())

    def _prior_weight(self, n_events: Sequence[int] | np.ndarray | int) -> torch.Tensor:
        """The prior's weight for users with ``n_events`` first events: weight / (1 + decay * n)."""
        n = torch.as_tensor(np.asarray(n_events, dtype=np.float32))
        return self.hp.new_user_prior_weight / (1.0 + self.hp.new_user_prior_decay * n)

    def _with_prior(self, scores: torch.Tensor, codes: torch.Tensor | None,
                    times: Sequence[float] | np.ndarray | None,
                    n_events: Sequence[int] | np.ndarray | int = 0) -> torch.Tensor:
        """Tower log-probabilities + the prior's x its weight, for users not in training."""
        if self.new_user_prior is None or codes is None:
            return scores
        logits = scores / self.temperature if self.loss_name in ("softmax", "full_softmax") else scores
        prior = self.new_user_prior(codes, None if times is None else np.asarray(times, dtype=np.float64))
        w = self._prior_weight(n_events).reshape(-1, 1)
        return torch.log_softmax(logits, dim=1) + w * torch.log_softmax(prior, dim=1)

    def _prior_for_unseen(self, users: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """full_sort_predict rows of users without training events (valid/test users of a user
        cold-start split) with the prior; no arrival time is known here, so no recency term."""
        if self.new_user_prior is None:
            return scores
        new = self.user_deg[users] == 0
        if not bool(new.any()):
            return scores
        out = scores.clone()
        out[new] = self._with_prior(scores[new], self.user_codes[users[new]], np.full(int(new.sum()), np.nan))
        return out

    # the prior in the exported inner-product space (ANN serving): users [tower / T, w A(attrs), w],
    # items [tower, W_i, b_i + recency_i(now)] -- the same ranking as _with_prior, whose log-softmax
    # normalisers are per-user constants
    def _prior_pad(self, users: torch.Tensor) -> torch.Tensor:
        if self.new_user_prior is None:
            return users
        return torch.cat([users, users.new_zeros(users.shape[0], self.dim + 1)], dim=1)

    def _prior_bias_now(self) -> torch.Tensor:
        prior = self.new_user_prior
        bias = prior.bias
        if prior.recency:
            bias = bias + prior.recency_weight * prior.recent_log[prior.recency_rows(None, 1)][0]
        return bias

    def _prior_item_columns(self, items: torch.Tensor) -> torch.Tensor:
        if self.new_user_prior is None:
            return items
        return torch.cat([items, self.new_user_prior.items, self._prior_bias_now()[:, None]], dim=1)

    def _prior_new_items(self, items: torch.Tensor) -> torch.Tensor:
        if self.new_user_prior is None:
            return items
        bias = self._prior_bias_now()
        mean = bias[self.warm].mean() if bool(self.warm.any()) else bias.new_zeros(())
        return torch.cat([items, items.new_zeros(items.shape[0], self.dim), mean.expand(items.shape[0], 1)], dim=1)

    def _prior_user_vector(self, exported: torch.Tensor, codes: torch.Tensor | None, n_events: int) -> torch.Tensor:
        """A new user's exported vector [tower, 0] -> [tower / T, w A(attrs), w] (see _prior_pad)."""
        if self.new_user_prior is None or codes is None:
            return exported
        tower = exported[: -(self.dim + 1)]
        if self.loss_name in ("softmax", "full_softmax"):
            tower = tower / self.temperature
        w = float(self._prior_weight(n_events))
        attrs = self.new_user_prior.encoder(codes)[0]
        return torch.cat([tower, w * attrs, attrs.new_full((1,), w)])

    def attribute_codes(self, attributes: list[dict[str, Any] | None]) -> torch.Tensor | None:
        """Attribute dicts -> codes (None when the model has no attribute tower)."""
        return self.user_attr.encode_records(attributes) if self.user_attr is not None else None

    @torch.no_grad()
    def new_user_scores(self, attributes: list[dict[str, Any] | None] | torch.Tensor | None,
                        histories: list[list[int]], times: Sequence[float] | np.ndarray | None = None,
                        ) -> torch.Tensor:
        """[B, n_items] scores for users the model never trained on, from attributes and first items.

        ``attributes``: one dict per user (or precomputed codes [B, F], or None); ``histories``:
        internal item ids each user has interacted with so far (may be empty); ``times``: each
        user's arrival (unix seconds; only read by a prior with ``new_user_recency_days``; None =
        now, after training).
        """
        item_vecs, extras = self._item_vectors(training=False)
        codes = attributes if attributes is None or isinstance(attributes, torch.Tensor) \
            else self.attribute_codes(attributes)
        if self.user_attr is None:
            codes = None
        dev = item_vecs.device   # what comes from the caller (host lists, codes) goes where the model is
        codes = codes.to(dev) if codes is not None else None
        u = self._new_user_vectors(codes, pad_histories(histories, self.history_len).to(dev), item_vecs)
        return self._with_prior(self._predict(u, item_vecs, extras), codes, times, [len(h) for h in histories])

    @torch.no_grad()
    def user_vector_from_attributes(self, attributes: dict[str, Any] | None,
                                    items: list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        """[D] query vector of a new user (attributes and any first items) in :meth:`item_embeddings`'
        space: ``item_embeddings() @ vector`` ranks the catalogue for that user."""
        if not self.inner_product:
            raise UserError(f"two_tower with fusion {self.hp.fusion!r} does not score by an inner product",
                            "model.params.fusion", "use new_user_scores(...) for full scores, or another fusion")
        item_vecs, _ = self._item_vectors(training=False)
        codes = self.attribute_codes([attributes]).to(item_vecs.device) if self.user_attr is not None else None
        u = self._new_user_vectors(codes, pad_histories([list(items)], self.history_len).to(item_vecs.device),
                                   item_vecs)
        return self._prior_user_vector(self._export_users(u)[0], codes, len(items))


__all__ = ["NewUserMixin", "UserAttributeEncoder", "pad_histories"]
