"""Online user state: events accepted since the model was trained, and the vector they imply.

A user's serving vector is the trained user vector blended with a
recency-weighted mean of the item vectors of their online events:

    agg   = sum_t w_t * r_t * e_{item_t} / sum_t w_t * r_t,   r_t = 0.5 ** (age_t / half_life)
    lam   = max_blend * n / (n + blend_events)
    u'    = (1 - lam) * u + lam * (|u| / |agg|) * agg

``w_t`` is the event type's weight, ``age_t`` how many newer events the user
has. The item tower stays frozen, so this is cheap (one weighted mean over at
most ``max_history`` vectors per request) and the very next request reflects an
event. Users without a trained vector (new or anonymous) are served ``agg``
alone. Rescaling ``agg`` to ``|u|`` keeps the blend from being decided by the
scale of the two vectors rather than by ``lam``.

Entries carry item ids as strings, not rows, so they survive a retrain that
re-indexes items; entries older than the new model's training cut are dropped.

Memory is bounded: at most ``max_users`` users are held, least recently used first out.
An evicted user's events stay in the store and are read back (``loader``) the next time the
user is asked for; a fixed-size Bloom filter of evicted ids keeps users that were never
evicted (trained users without online events, unknown ids) from costing a store query.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fusionrec.serve.config import OnlineConfig


@dataclass(frozen=True)
class OnlineEvent:
    item: str
    weight: float
    seq: int
    ts: float


class EvictedFilter:
    """A Bloom filter of user ids (fixed size): False means surely never evicted."""

    def __init__(self, bits: int = 1 << 23, hashes: int = 3) -> None:
        self.bits = bits
        self.hashes = hashes
        self._array = bytearray(bits // 8)

    def _positions(self, user: str) -> list[int]:
        digest = hashlib.blake2b(user.encode("utf-8", "surrogatepass"), digest_size=8 * self.hashes).digest()
        return [int.from_bytes(digest[8 * i:8 * i + 8], "little") % self.bits for i in range(self.hashes)]

    def add(self, user: str) -> None:
        for pos in self._positions(user):
            self._array[pos >> 3] |= 1 << (pos & 7)

    def __contains__(self, user: str) -> bool:
        return all(self._array[pos >> 3] & (1 << (pos & 7)) for pos in self._positions(user))


Loader = Callable[[str], list[OnlineEvent]]


class OnlineState:
    """Per-user online events (bounded history) and the items each user touched online, for at most
    ``max_users`` users in memory (LRU; evicted users are reloaded with ``loader``)."""

    def __init__(self, cfg: OnlineConfig, max_users: int = 100_000, loader: Loader | None = None) -> None:
        self.cfg = cfg
        self.max_users = max_users
        self.loader = loader
        self._lock = threading.RLock()
        self._history: OrderedDict[str, deque[OnlineEvent]] = OrderedDict()
        self._seen: dict[str, set[str]] = {}
        self._evicted = EvictedFilter()
        self.n_ingested = 0

    def _entry(self, user: str) -> deque[OnlineEvent] | None:
        """The user's history (most recently used now), reloading an evicted user; call with the lock held."""
        hist = self._history.get(user)
        if hist is not None:
            self._history.move_to_end(user)
            return hist
        if self.loader is None or user not in self._evicted:
            return None
        events = self.loader(user)
        if not events:
            return None
        hist = self._insert(user)
        for ev in events:
            hist.append(ev)
            self._seen[user].add(ev.item)
        return hist

    def _insert(self, user: str) -> deque[OnlineEvent]:
        hist = self._history[user] = deque(maxlen=self.cfg.max_history)
        self._seen[user] = set()
        while len(self._history) > self.max_users:
            old, _ = self._history.popitem(last=False)
            self._seen.pop(old, None)
            self._evicted.add(old)
        return hist

    def add(self, user: str, event: OnlineEvent) -> None:
        with self._lock:
            hist = self._entry(user)
            if hist is None:
                hist = self._insert(user)
            hist.append(event)
            self._seen[user].add(event.item)
            self.n_ingested += 1

    def history(self, user: str) -> list[OnlineEvent]:
        with self._lock:
            return list(self._entry(user) or ())

    def seen(self, user: str) -> set[str]:
        with self._lock:
            return set(self._seen.get(user, ())) if self._entry(user) is not None else set()

    def has(self, user: str) -> bool:
        with self._lock:
            return self._entry(user) is not None

    def users(self) -> int:
        """Users held in memory now (at most ``max_users``)."""
        with self._lock:
            return len(self._history)

    def user_ids(self) -> list[str]:
        """The users held in memory now."""
        with self._lock:
            return list(self._history)

    def forget(self, user: str) -> bool:
        with self._lock:
            self._seen.pop(user, None)
            return self._history.pop(user, None) is not None

    def drop_upto(self, seq: int) -> None:
        """After a retrain on events ``<= seq``: those are in the model now, keep only newer ones."""
        with self._lock:
            for user in list(self._history):
                kept = deque((e for e in self._history[user] if e.seq > seq), maxlen=self.cfg.max_history)
                if kept:
                    self._history[user] = kept
                    self._seen[user] = {e.item for e in kept}
                else:
                    del self._history[user]
                    self._seen.pop(user, None)

    # ------------------------------------------------------------------ vectors
    def aggregate(self, events: list[OnlineEvent], item_rows: list[int | None], item_vectors: np.ndarray) -> np.ndarray | None:
        """Recency- and type-weighted mean of the item vectors of ``events`` (None if none are known)."""
        n = len(events)
        weights, rows = [], []
        for age, (ev, row) in enumerate(zip(reversed(events), reversed(item_rows))):
            if row is None:
                continue  # item no longer in the catalogue
            weights.append(ev.weight * 0.5 ** (age / self.cfg.half_life_events))
            rows.append(row)
        if not rows or n == 0:
            return None
        w = np.asarray(weights, dtype=np.float32)
        if w.sum() <= 0:
            return None
        return (w[:, None] * item_vectors[np.asarray(rows)]).sum(axis=0) / w.sum()

    def blend(self, base: np.ndarray | None, agg: np.ndarray | None, n_events: int) -> np.ndarray | None:
        if agg is None:
            return base
        if base is None:
            return agg.astype(np.float32)
        lam = self.cfg.max_blend * n_events / (n_events + self.cfg.blend_events)
        scale = float(np.linalg.norm(base)) / max(float(np.linalg.norm(agg)), 1e-12)
        return ((1.0 - lam) * base + lam * scale * agg).astype(np.float32)
