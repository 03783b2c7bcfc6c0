"""Durable storage of events, posted items and forgotten users (SQLite, WAL mode).

An event batch is written in one transaction and committed (``synchronous=FULL``:
the WAL is fsynced at every commit) *before* the HTTP response is sent, so an
event acknowledged with 2xx survives a crash or SIGKILL of the server.
Clients may send their own ``event_id``; it is unique, so a retried batch after
a timeout is not stored twice.

Forgetting a user must leave nothing on disk: ``secure_delete`` makes SQLite overwrite
deleted rows with zeros, the WAL is checkpointed and truncated after a forget and when the
store is closed, and the ``forgotten_users`` table keeps a salted hash of the id (with the
event sequence number at the time), never the id itself.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
CREATE TABLE IF NOT EXISTS forgotten (
    user_hash TEXT PRIMARY KEY,
    forgotten_seq INTEGER NOT NULL,
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


class SqlEventReads:
    """Reads both stores make the same way. The SQLite and PostgreSQL stores differ here only
    in the parameter placeholder and the user column's name (``user`` is reserved in PostgreSQL)."""

    _PLACEHOLDER = "?"
    _USER_COLUMN = "user"
    _lock: threading.Lock
    _conn: Any
    _salt: bytes

    def user_hash(self, user: str) -> str:
        """Salted hash of a user id (the salt is per database, so hashes cannot be looked up elsewhere)."""
        return hashlib.sha256(self._salt + user.encode("utf-8")).hexdigest()

    def events(self, after_seq: int = 0, user: str | None = None) -> Iterator[StoredEvent]:
        ph = self._PLACEHOLDER
        sql = f"SELECT seq, event_id, {self._USER_COLUMN}, item, type, weight, ts FROM events WHERE seq > {ph}"
        args: list = [after_seq]
        if user is not None:
            sql += f" AND {self._USER_COLUMN} = {ph}"
            args.append(user)
        sql += " ORDER BY seq"
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        for r in rows:
            yield StoredEvent(int(r[0]), r[1], r[2], r[3], r[4], float(r[5]), float(r[6]))

    def count_events(self, after_seq: int = 0) -> int:
        with self._lock:
            sql = f"SELECT COUNT(*) FROM events WHERE seq > {self._PLACEHOLDER}"
            return int(self._conn.execute(sql, (after_seq,)).fetchone()[0])

    def max_seq(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)


class EventStore(SqlEventReads):
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
        # deleted rows (a forgotten user's events) are overwritten with zeros, not left in free pages
        self._conn.execute("PRAGMA secure_delete=ON")
        self._conn.executescript(_SCHEMA)
        self._migrate_forgotten()
        self._salt = self._get_or_make_salt()
        self._closed = False

    def _get_or_make_salt(self) -> bytes:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'user_hash_salt'").fetchone()
        if row:
            return bytes.fromhex(row[0])
        salt = secrets.token_bytes(16)
        self._conn.execute("INSERT INTO meta(key, value) VALUES ('user_hash_salt', ?)", (salt.hex(),))
        return salt

    def _migrate_forgotten(self) -> None:
        """Stores written before hashing kept forgotten ids in clear: hash them and drop the old table."""
        old = self._conn.execute("SELECT name FROM sqlite_master WHERE name = 'forgotten_users'").fetchone()
        if not old:
            return
        users = [r[0] for r in self._conn.execute("SELECT user FROM forgotten_users").fetchall()]
        self._salt = self._get_or_make_salt()
        now = time.time()
        for user in users:
            self._conn.execute("INSERT OR REPLACE INTO forgotten VALUES (?, ?, ?)", (self.user_hash(user), 1, now))
        self._conn.execute("DROP TABLE forgotten_users")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (so deleted rows are gone from both)."""
        with self._lock:
            if not self._closed:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Checkpoint and close; closing the last connection also removes the WAL file."""
        with self._lock:
            if self._closed:
                return
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._closed = True

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
    def forget_user(self, user: str) -> tuple[int, int]:
        """Delete the user's events and remember its hash; returns ``(deleted events, forgotten_seq)``.

        ``forgotten_seq`` is one past the newest event now stored: a model trained on events
        up to a sequence number below it may hold the user, one trained from it on does not.
        """
        user_hash = self.user_hash(user)
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                n = cur.execute("DELETE FROM events WHERE user = ?", (user,)).rowcount
                top = cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
                seq = int(top[0] if top else 0) + 1
                cur.execute("INSERT OR REPLACE INTO forgotten VALUES (?, ?, ?)", (user_hash, seq, time.time()))
                generation = int(self._meta(cur, "forget_generation") or 0) + 1
                cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('forget_generation', ?)", (str(generation),))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            # the WAL still holds the deleted pages until it is copied back and truncated
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(n), seq

    def forget_generation(self) -> int:
        """How many forgets happened: a model version trained at a lower generation may hold a forgotten user."""
        with self._lock:
            return int(self._meta(self._conn, "forget_generation") or 0)

    @staticmethod
    def _meta(conn: sqlite3.Connection | sqlite3.Cursor, key: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def forgotten_users(self) -> dict[str, int]:
        """Salted user hash -> ``forgotten_seq`` (see :meth:`forget_user`)."""
        with self._lock:
            return {r[0]: int(r[1]) for r in self._conn.execute("SELECT user_hash, forgotten_seq FROM forgotten")}

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None
