"""The event and catalogue store on PostgreSQL (psycopg 3), shared by several service replicas.

Same interface as the embedded SQLite :class:`~fusionrec.serve.store.EventStore`; chosen by
giving ``fusionrec serve --store postgresql://user@host/db`` (or ``serve.store``) instead of a
file. What changes with a server:

* **Order.** Event sequence numbers come from a ``BIGSERIAL``; an insert takes a transaction
  advisory lock first, so numbers are committed in increasing order. A replica that reads
  ``seq > last seen`` therefore never skips an event committed late with a lower number.
* **Freshness.** Every commit of events or items sends ``NOTIFY fusionrec_events`` /
  ``fusionrec_items``; :class:`fusionrec.serve.replicas.ReplicaSync` in each replica wakes on
  them (and polls every ``sync_interval`` seconds in case a notification is missed) and applies
  the other replicas' events and items to its own online state.
* **Durability.** A batch is acknowledged after PostgreSQL committed it (``synchronous_commit``
  is left at the server's default, ``on``), so a replica killed at any moment loses nothing it
  acknowledged.
* **Forgetting.** Deleted rows stay in PostgreSQL's heap pages until vacuumed: a forget runs
  ``VACUUM`` on the events table right after its commit, which makes the space reusable and
  drops the dead tuples from the table and its indexes (WAL segments are recycled by the
  server's checkpoints; operators who need the WAL purged at once run ``CHECKPOINT``).
"""
from __future__ import annotations

import json
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.errors import UserError
from fusionrec.serve.store import SqlEventReads, StoredItem

EVENTS_CHANNEL = "fusionrec_events"
ITEMS_CHANNEL = "fusionrec_items"
# the key of the advisory lock that orders event inserts (any constant shared by all replicas)
_INSERT_LOCK = 0x66757369

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS events (
        seq BIGSERIAL PRIMARY KEY,
        event_id TEXT UNIQUE,
        user_id TEXT NOT NULL,
        item TEXT NOT NULL,
        type TEXT NOT NULL,
        weight DOUBLE PRECISION NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        received DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS events_user ON events(user_id)",
    """CREATE TABLE IF NOT EXISTS items (
        item_id TEXT PRIMARY KEY,
        text TEXT,
        image BYTEA,
        attributes TEXT NOT NULL DEFAULT '{}',
        updated DOUBLE PRECISION NOT NULL,
        version BIGINT NOT NULL DEFAULT 0)""",
    "CREATE SEQUENCE IF NOT EXISTS item_versions",
    """CREATE TABLE IF NOT EXISTS item_features (
        item_id TEXT NOT NULL,
        modality TEXT NOT NULL,
        vector BYTEA NOT NULL,
        PRIMARY KEY (item_id, modality))""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS forgotten (
        user_hash TEXT PRIMARY KEY,
        forgotten_seq BIGINT NOT NULL,
        forgotten_at DOUBLE PRECISION NOT NULL)""",
]


def is_postgres_url(target: Any) -> bool:
    """True for ``postgresql://...`` / ``postgres://...`` connection strings."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def _connect(dsn: str):
    try:
        import psycopg
    except ImportError as err:
        raise UserError(f"a PostgreSQL store needs psycopg 3, which is not installed ({err})",
                        "--store", "pip install 'fusionrec[dist]'  (or: pip install 'psycopg[binary]')") from err
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as err:
        raise UserError(f"cannot connect to PostgreSQL ({str(err).strip().splitlines()[0]})", "--store",
                        "check the host, port, user and database in the URL and that the server runs "
                        "(pg_lsclusters / pg_ctlcluster 15 main start)") from None


class PostgresEventStore(SqlEventReads):
    """Thread-safe PostgreSQL store: one connection serialised by a lock, like the SQLite store."""

    _PLACEHOLDER = "%s"
    _USER_COLUMN = "user_id"

    def __init__(self, dsn: str, local_dir: str | Path | None = None) -> None:
        self.dsn = dsn
        # no database file on this host; uploads of this replica go beside this name (``<local_dir>/serve-pg-media``)
        self.path = Path(local_dir or tempfile.gettempdir()) / "serve-pg"
        self._lock = threading.Lock()
        self._conn = _connect(dsn)
        with self._conn.transaction():
            # two replicas starting at once must not race on CREATE TABLE
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INSERT_LOCK + 1,))
            for stmt in _SCHEMA:
                self._conn.execute(stmt)
            self._salt = self._get_or_make_salt()
        self._closed = False

    def _get_or_make_salt(self) -> bytes:
        self._conn.execute("INSERT INTO meta(key, value) VALUES ('user_hash_salt', %s) ON CONFLICT DO NOTHING",
                           (secrets.token_bytes(16).hex(),))
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'user_hash_salt'").fetchone()
        return bytes.fromhex(row[0])

    def checkpoint(self) -> None:
        """Nothing to copy on this host: the server owns its WAL (see the module docstring)."""

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._conn.close()
                self._closed = True

    # ------------------------------------------------------------------ events
    def add_events(self, rows: list[tuple[str | None, str, str, str, float, float]]) -> list[int]:
        """Insert ``(event_id, user, item, type, weight, ts)`` rows in one committed transaction.

        Returns each row's sequence number; a row whose ``event_id`` is already stored keeps
        the existing number (a retried batch is not stored twice).
        """
        now = time.time()
        seqs: list[int] = []
        with self._lock, self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INSERT_LOCK,))
            for event_id, user, item, typ, weight, ts in rows:
                got = self._conn.execute(
                    "INSERT INTO events(event_id, user_id, item, type, weight, ts, received) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
                    (event_id, user, item, typ, float(weight), float(ts), now)).fetchone()
                if got is None:
                    got = self._conn.execute("SELECT seq FROM events WHERE event_id = %s", (event_id,)).fetchone()
                seqs.append(int(got[0]))
            self._conn.execute(f"NOTIFY {EVENTS_CHANNEL}")
        return seqs

    # ------------------------------------------------------------------ items
    def upsert_items(self, items: Iterable[StoredItem]) -> None:
        now = time.time()
        with self._lock, self._conn.transaction():
            for it in items:
                self._conn.execute(
                    "INSERT INTO items(item_id, text, image, attributes, updated, version) "
                    "VALUES (%s,%s,%s,%s,%s, nextval('item_versions')) "
                    "ON CONFLICT (item_id) DO UPDATE SET text=excluded.text, image=excluded.image, "
                    "attributes=excluded.attributes, updated=excluded.updated, version=excluded.version",
                    (it.item_id, it.text, it.image, json.dumps(it.attributes), now))
                self._conn.execute("DELETE FROM item_features WHERE item_id = %s", (it.item_id,))
                for name, vec in it.features.items():
                    self._conn.execute("INSERT INTO item_features(item_id, modality, vector) VALUES (%s,%s,%s)",
                                       (it.item_id, name, np.asarray(vec, dtype=np.float32).tobytes()))
            self._conn.execute(f"NOTIFY {ITEMS_CHANNEL}")

    def max_item_version(self) -> int:
        """The version of the newest item write (0: none yet)."""
        with self._lock:
            row = self._conn.execute("SELECT MAX(version) FROM items").fetchone()
        return int(row[0] or 0)

    def items(self, after_version: int = 0) -> list[StoredItem]:
        """Stored items in the order they were last written (only those after ``after_version``)."""
        return [it for _v, it in self.items_with_versions(after_version)]

    def items_with_versions(self, after_version: int = 0) -> list[tuple[int, StoredItem]]:
        """``(version, item)`` pairs written after ``after_version``: what a replica has not seen."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT item_id, text, image, attributes, version FROM items WHERE version > %s ORDER BY version",
                (after_version,)).fetchall()
            ids = [r[0] for r in rows]
            feats = self._conn.execute(
                "SELECT item_id, modality, vector FROM item_features WHERE item_id = ANY(%s)", (ids,)).fetchall()
        by_item: dict[str, dict[str, np.ndarray]] = {}
        for item_id, name, blob in feats:
            by_item.setdefault(item_id, {})[name] = np.frombuffer(bytes(blob), dtype=np.float32).copy()
        return [(int(r[4]), StoredItem(r[0], r[1], bytes(r[2]) if r[2] is not None else None,
                                       json.loads(r[3] or "{}"), by_item.get(r[0], {}))) for r in rows]

    # ------------------------------------------------------------------ privacy
    def forget_user(self, user: str) -> tuple[int, int]:
        """Delete the user's events and remember its salted hash; returns ``(deleted, forgotten_seq)``."""
        user_hash = self.user_hash(user)
        with self._lock:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INSERT_LOCK,))
                n = self._conn.execute("DELETE FROM events WHERE user_id = %s", (user,)).rowcount
                top = self._conn.execute("SELECT last_value, is_called FROM events_seq_seq").fetchone()
                seq = (int(top[0]) if top[1] else 0) + 1
                self._conn.execute(
                    "INSERT INTO forgotten VALUES (%s, %s, %s) ON CONFLICT (user_hash) DO UPDATE "
                    "SET forgotten_seq = excluded.forgotten_seq, forgotten_at = excluded.forgotten_at",
                    (user_hash, seq, time.time()))
                self._conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('forget_generation', '1') ON CONFLICT (key) DO UPDATE "
                    "SET value = (meta.value::bigint + 1)::text")
            # dead tuples hold the deleted rows until vacuumed (VACUUM cannot run in a transaction)
            self._conn.execute("VACUUM events")
        return int(n), seq

    def forget_generation(self) -> int:
        return int(self.get_meta("forget_generation") or 0)

    def forgotten_users(self) -> dict[str, int]:
        with self._lock:
            return {r[0]: int(r[1]) for r in self._conn.execute("SELECT user_hash, forgotten_seq FROM forgotten")}

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute("INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
                               "SET value = excluded.value", (key, value))

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ notifications
    def listen(self, channels: tuple[str, ...] = (EVENTS_CHANNEL, ITEMS_CHANNEL)):
        """A separate autocommit connection LISTENing on ``channels`` (for :class:`ReplicaSync`)."""
        conn = _connect(self.dsn)
        for channel in channels:
            conn.execute(f"LISTEN {channel}")
        return conn
