"""Durable storage of events, posted items and forgotten users (SQLite, WAL mode).

An event batch is written in one transaction and committed (``synchronous=FULL``:
the WAL is fsynced at every commit) *before* the HTTP response is sent, so an
event acknowledged with 2xx survives a crash or SIGKILL of the server.
Clients may send their own ``event_id``; it is unique, so a retried batch after
a timeout is not stored twice.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT UNIQUE,
    user TEXT NOT NULL,
    item TEXT NOT NULL,
    type TEXT NOT NULL,
    weight REAL NOT NULL,
    ts REAL NOT NULL,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user ON events(user);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    text TEXT,
    image BLOB,
    attributes TEXT NOT NULL DEFAULT '{}',
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS item_features (
    item_id TEXT NOT NULL,
    modality TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (item_id, modality)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS forgotten_users (
    user TEXT PRIMARY KEY,
    forgotten_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event_id: str | None
    user: str
    item: str
    type: str
    weight: float
    ts: float


@dataclass(frozen=True)
class StoredItem:
    item_id: str
    text: str | None
    image: bytes | None
    attributes: dict
    features: dict[str, np.ndarray]


class EventStore:
    """Thread-safe SQLite store; one connection serialised by a lock (SQLite has one writer anyway)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: fsync the WAL at every commit, so an acknowledged event survives power loss too,
        # not only a process kill (NORMAL would be enough for SIGKILL but not for a host crash).
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ events
    def add_events(self, rows: list[tuple[str | None, str, str, str, float, float]]) -> list[int]:
        """Insert ``(event_id, user, item, type, weight, ts)`` rows in one committed transaction.

        Returns the sequence number of every row in order; a row whose ``event_id``
        was already stored is not inserted again and gets the existing number.
        """
        now = time.time()
        seqs: list[int] = []
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for event_id, user, item, typ, weight, ts in rows:
                    if event_id is not None:
                        found = cur.execute("SELECT seq FROM events WHERE event_id = ?", (event_id,)).fetchone()
                        if found:
                            seqs.append(int(found[0]))
                            continue
                    cur.execute(
                        "INSERT INTO events(event_id, user, item, type, weight, ts, received) VALUES (?,?,?,?,?,?,?)",
                        (event_id, user, item, typ, float(weight), float(ts), now),
                    )
                    seqs.append(int(cur.lastrowid))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return seqs

    def events(self, after_seq: int = 0, user: str | None = None) -> Iterator[StoredEvent]:
        sql = "SELECT seq, event_id, user, item, type, weight, ts FROM events WHERE seq > ?"
        args: list = [after_seq]
        if user is not None:
            sql += " AND user = ?"
            args.append(user)
        sql += " ORDER BY seq"
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        for r in rows:
            yield StoredEvent(int(r[0]), r[1], r[2], r[3], r[4], float(r[5]), float(r[6]))

    def count_events(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def max_seq(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------ items
    def upsert_items(self, items: Iterable[StoredItem]) -> None:
        now = time.time()
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for it in items:
                    cur.execute(
                        "INSERT INTO items(item_id, text, image, attributes, updated) VALUES (?,?,?,?,?) "
                        "ON CONFLICT(item_id) DO UPDATE SET text=excluded.text, image=excluded.image, "
                        "attributes=excluded.attributes, updated=excluded.updated",
                        (it.item_id, it.text, it.image, json.dumps(it.attributes), now),
                    )
                    cur.execute("DELETE FROM item_features WHERE item_id = ?", (it.item_id,))
                    for name, vec in it.features.items():
                        cur.execute(
                            "INSERT INTO item_features(item_id, modality, vector) VALUES (?,?,?)",
                            (it.item_id, name, np.asarray(vec, dtype=np.float32).tobytes()),
                        )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def items(self) -> list[StoredItem]:
        with self._lock:
            rows = self._conn.execute("SELECT item_id, text, image, attributes FROM items ORDER BY updated").fetchall()
            feats = self._conn.execute("SELECT item_id, modality, vector FROM item_features").fetchall()
        by_item: dict[str, dict[str, np.ndarray]] = {}
        for item_id, name, blob in feats:
            by_item.setdefault(item_id, {})[name] = np.frombuffer(blob, dtype=np.float32).copy()
        return [StoredItem(r[0], r[1], r[2], json.loads(r[3] or "{}"), by_item.get(r[0], {})) for r in rows]

    # ------------------------------------------------------------------ privacy
    def forget_user(self, user: str) -> int:
        """Delete the user's events and remember the id so later retrains drop its training rows."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                n = cur.execute("DELETE FROM events WHERE user = ?", (user,)).rowcount
                cur.execute(
                    "INSERT OR REPLACE INTO forgotten_users(user, forgotten_at) VALUES (?, ?)", (user, time.time())
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return int(n)

    def forgotten_users(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT user FROM forgotten_users").fetchall()}

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None
