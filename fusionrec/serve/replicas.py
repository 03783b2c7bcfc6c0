"""Several service processes on one PostgreSQL store: what one replica learns, the others learn too.

A replica applies its own events and items at once (as the single service does); this module
brings it the other replicas' writes:

* **events**: every new stored event (``seq`` above the last one applied) goes into the online
  state of its user, unless this replica applied it itself (same ``seq`` already in the user's
  history), so an event posted to replica A changes replica B's recommendations;
* **items**: every item written after the last item version seen is upserted into the served
  catalogue (its stored features place it; nothing is re-encoded), so a new item is
  recommendable on every replica;
* **model versions**: a retrain publishes its version name in the store (``served_version``);
  a replica that serves another version loads the published one (from the shared versions
  folder) off to the side and swaps it in, without downtime.

Freshness: the thread waits on PostgreSQL ``LISTEN`` (a commit sends ``NOTIFY``) with a timeout
of ``interval`` seconds, so a write reaches the other replicas within milliseconds normally and
within ``interval`` if a notification is lost (a reconnect, a restarted server).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from fusionrec.serve.online import OnlineEvent

log = logging.getLogger("fusionrec.serve")
PUBLISHED_VERSION_KEY = "served_version"


class ReplicaSync:
    """Background thread that applies the other replicas' events, items and published model versions."""

    def __init__(self, service: Any, interval: float = 0.5) -> None:
        self.service = service
        self.store = service.store
        self.interval = float(interval)
        self.last_seq = self.store.max_seq()  # the service replayed everything up to here at start
        # the service loaded every stored item at start; only the newest version is needed here
        self.last_item_version = self.store.max_item_version()
        self.forget_generation = self.store.forget_generation()
        self.applied_events = 0
        self.applied_items = 0
        self.last_sync = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fusionrec-replica-sync", daemon=True)

    def start(self) -> ReplicaSync:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self.store.listen()
                # wake on the first notification, or after `interval` seconds in any case
                for _ in conn.notifies(timeout=self.interval, stop_after=1):
                    pass
                self.sync_once()
            except Exception as err:  # noqa: BLE001 -- a lost connection must not end the thread
                log.warning("replica sync: %s: %s (retrying)", type(err).__name__, err)
                if conn is not None:
                    with contextlib.suppress(Exception):  # the connection is being replaced anyway
                        conn.close()
                conn = None
                self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def sync_once(self) -> dict[str, int]:
        """Apply what other replicas wrote since the last call; returns the counts applied."""
        service = self.service
        n_events = n_items = 0
        with service._write_lock:
            for ev in self.store.events(after_seq=self.last_seq):
                self.last_seq = ev.seq
                if ev.seq <= service.state.trained_upto_seq:
                    continue  # already inside the served model
                if any(e.seq == ev.seq for e in service.online.history(ev.user)):
                    continue  # this replica applied it when it was posted here
                service.online.add(ev.user, OnlineEvent(ev.item, ev.weight, ev.seq, ev.ts))
                n_events += 1
            for version, item in self.store.items_with_versions(self.last_item_version):
                self.last_item_version = version
                service.state.upsert_item(item)
                n_items += 1
        self._follow_forgets()
        self._follow_published_version()
        self.applied_events += n_events
        self.applied_items += n_items
        self.last_sync = time.time()
        return {"events": n_events, "items": n_items}

    def _follow_forgets(self) -> None:
        """Users another replica forgot: never served from a model trained before, gone from memory."""
        generation = self.store.forget_generation()
        if generation == self.forget_generation:
            return
        service = self.service
        forgotten = self.store.forgotten_users()
        new = {h: s for h, s in forgotten.items() if service.forgotten.get(h) != s}
        with service._write_lock:
            service.forgotten.update(new)
            if new:
                for user in service.online.user_ids():
                    if self.store.user_hash(user) in new:
                        service.online.forget(user)
        self.forget_generation = generation

    def _follow_published_version(self) -> None:
        """Swap in the model version another replica's retrain published (shared versions folder)."""
        service = self.service
        name = self.store.get_meta(PUBLISHED_VERSION_KEY)
        versions = getattr(service, "versions", None)
        if not name or versions is None or name == service.state.version_name:
            return
        if name not in versions.names():
            return  # not visible here (yet): the folder is written before the name is published
        from fusionrec.serve.loader import load_state

        new_state = load_state(versions.path(name), service.cfg, self.store)
        new_state.version_name = name
        service.swap(new_state)
        log.info("replica sync: now serving %s, published by another replica", name)

    def status(self) -> dict[str, Any]:
        return {"backend": "postgresql", "applied_events": self.applied_events, "applied_items": self.applied_items,
                "last_seq": self.last_seq, "seconds_since_sync": round(time.time() - self.last_sync, 3)}
