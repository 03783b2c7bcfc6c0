"""The user tower of :class:`~fusionrec.models.two_tower.TwoTower`: ID, history encoder and attributes.

``u = keep_u * ID_u + W h_u [+ A(attributes_u)]``. ``h_u`` summarises the user's training items'
item-tower vectors: ``mean`` (exact, over the whole history, one sparse product), ``attention``
(the user ID queries the history; a global query for users without one) or ``transformer`` (one
small encoder layer, mean-pooled), over a padded history of at most ``history_len`` items that is
re-drawn every epoch for long histories. While training, the target item is left out of the
history, and a share of users (``user_id_dropout``) play new users: no ID, only attributes and
their first few events (:class:`~fusionrec.models.user_tower.NewUserMixin`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from fusionrec.data.dataset import TrainData
from fusionrec.errors import UserError
from fusionrec.models.user_tower import UserAttributeEncoder


class HistoryUserTower:
    """Mixin of :class:`~fusionrec.models.two_tower.TwoTower` that builds and runs its user tower.

    It reads the model's ``hp``, ``dim``, ``history``, ``history_len``, ``use_user_id``, ``blocks``,
    ``batch_local``, ``inputs`` and ``user_heads`` and its ``_id_table``.
    """

    def _init_user_tower(self, data: TrainData) -> None:
        d = self.dim
        if self.use_user_id:
            self.user_id = self._id_table(self.n_users, d)
        train = data.train.tocsr().astype(np.float32)
        self._train = train
        deg = np.asarray(train.sum(axis=1)).ravel()
        self.register_buffer("user_deg", torch.from_numpy(deg.astype(np.float32)), persistent=False)
        self.user_attr: UserAttributeEncoder | None = None
        if self.hp.user_attributes:
            frame = data.user_frame
            if frame is None or frame.shape[1] <= 1:
                raise UserError("two_tower: user_attributes is true but the data has no user attributes",
                                "model.params.user_attributes",
                                "describe the user table: data.users_path and data.user_columns: {user: <id "
                                "column>, attributes: age,gender,...} (or set user_attributes: false)")
            self.user_attr = UserAttributeEncoder(frame, d, self.hp.user_attribute_bins,
                                                  self.hp.user_attribute_min_count)
            self.register_buffer("user_codes", self.user_attr.encode_frame(frame), persistent=False)
        if self.history != "none":
            self.history_proj = nn.Linear(d, d)
            coo = train.tocoo()
            self._hist_sparse = torch.sparse_coo_tensor(
                torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
                torch.ones(coo.nnz), (self.n_users, self.n_items), check_invariants=False).coalesce()
            hist = np.full((self.n_users, max(self.history_len, 1)), -1, dtype=np.int64)
            self.register_buffer("hist", torch.from_numpy(hist), persistent=False)
            if self.batch_local:
                self._resample_local_history()
            else:
                self._resample_history(np.random.default_rng(0))
        if self.history == "attention":
            self.hist_query = nn.Linear(d, d, bias=False)
            self.hist_global_query = nn.Parameter(torch.zeros(d))
        elif self.history == "transformer":
            layer = nn.TransformerEncoderLayer(d, 2, dim_feedforward=2 * d, dropout=0.1, batch_first=True,
                                               norm_first=True)
            self.hist_encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)

    # ------------------------------------------------------------------ history
    def _resample_history(self, rng: np.random.Generator) -> None:
        """Padded per-user history of at most ``history_len`` training items (random subset when longer)."""
        indptr, indices = self._train.indptr, self._train.indices
        hist = np.full(tuple(self.hist.shape), -1, dtype=np.int64)
        length = hist.shape[1]
        for u in range(self.n_users):
            items = indices[indptr[u]:indptr[u + 1]]
            if len(items) > length:
                items = rng.choice(items, length, replace=False)
            hist[u, : len(items)] = items
        self.hist.copy_(torch.from_numpy(hist))

    def _history_base(self, item_vecs: torch.Tensor) -> torch.Tensor:
        # the history summary needs one d-vector per item: sum the ID and weighted modality blocks
        if self.blocks:
            return item_vecs.view(item_vecs.shape[0], -1, self.dim).sum(dim=1)
        return item_vecs

    def _encode_history(self, users: torch.Tensor | None, item_vecs: torch.Tensor,
                        exclude: torch.Tensor | None = None, hist: torch.Tensor | None = None) -> torch.Tensor:
        """History summaries of ``users`` (their training items) or of given padded item lists ``hist``."""
        d = self.dim
        base = self._history_base(item_vecs)
        if self.history == "mean" and hist is None:
            sums = torch.sparse.mm(self._hist_sparse, base)[users]                 # [B, d]
            deg = self.user_deg[users]
            if exclude is not None:
                sums = sums - base[exclude]
                deg = deg - 1
            return sums / deg.clamp_min(1.0)[:, None]
        if hist is None:
            hist = self.hist[users]                                                # [B, L]
        valid = hist >= 0
        if exclude is not None:
            valid = valid & (hist != exclude[:, None])
        tokens = base[hist.clamp_min(0)] * valid[..., None]                       # [B, L, d]
        if self.history == "mean":
            return tokens.sum(1) / valid.sum(1, keepdim=True).clamp_min(1)
        if self.history == "attention":
            known = users is not None and self.use_user_id
            q = (self.hist_query(self.user_id(users)) if known
                 else self.hist_global_query.expand(hist.shape[0], -1))
            logits = (tokens @ q[:, :, None]).squeeze(-1) / math.sqrt(d)
            logits = logits.masked_fill(~valid, float("-inf"))
            w = torch.nan_to_num(torch.softmax(logits, dim=1), nan=0.0)
            return (w[..., None] * tokens).sum(1)
        out = self.hist_encoder(tokens, src_key_padding_mask=~valid)
        out = torch.nan_to_num(out, nan=0.0) * valid[..., None]
        return out.sum(1) / valid.sum(1, keepdim=True).clamp_min(1)

    def _finish_user(self, u: torch.Tensor | None, codes: torch.Tensor | None) -> torch.Tensor:
        """Add the attribute vector and, for decision-level fusion, the per-modality user heads."""
        if self.user_attr is not None and codes is not None:
            a = self.user_attr(codes)
            u = a if u is None else u + a
        if u is None:
            u = torch.zeros(codes.shape[0] if codes is not None else 1, self.dim)
        if self.blocks:
            u = torch.cat([u] + [self.user_heads[n](u) for n in self.inputs.names], dim=1)
        return u

    def _user_id_part(self, users: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(which users play new users this step or None, their ID vectors masked or None)."""
        # training: a share of the users play new users (no ID, a few events), so the attribute
        # path and short histories learn to rank on their own, as they must for a real new user
        new = (torch.rand(len(users)) < self.hp.user_id_dropout) if self.training else None
        if not self.use_user_id:
            return new, None
        # a user without training events has an untrained ID: it carries nothing
        keep = (self.user_deg[users] > 0).float()
        if new is not None:
            keep = keep * (~new).float()
        return new, self.user_id(users) * keep[:, None]

    def _user_vectors(self, users: torch.Tensor, item_vecs: torch.Tensor,
                      exclude: torch.Tensor | None = None) -> torch.Tensor:
        new, u = self._user_id_part(users)
        if self.history != "none":
            h = self._encode_history(users, item_vecs, exclude)
            if new is not None and new.any():
                h = h.clone()
                h[new] = self._encode_history(None, item_vecs, hist=self._first_events(users[new], exclude, new))
            h = self.history_proj(h)
            u = h if u is None else u + h
        codes = self.user_codes[users] if self.user_attr is not None else None
        return self._finish_user(u, codes)


__all__ = ["HistoryUserTower"]
