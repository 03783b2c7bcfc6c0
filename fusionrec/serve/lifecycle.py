"""Running retrains: one at a time, in the background or not, and what happens after a publish.

A second request while one runs gets 409. A forget while one runs sets ``pending``: the running
retrain may already have read the forgotten user's rows, so another one follows it. After every
publish the versions trained before the latest forget are deleted (the served one only once a
newer one replaces it), so no model folder keeps a forgotten user for longer than one retrain.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fusionrec.serve.errors import ServeError

log = logging.getLogger("fusionrec.serve")


class RetrainMixin:
    """Retrain control of ``RecService``: needs ``retrain_fn``, ``versions``, ``store`` and ``swap``."""

    def _init_retrain(self) -> None:
        self._retrain_lock = threading.Lock()   # held for the whole of a retrain
        self._status_lock = threading.Lock()    # orders 'pending' against the end of a retrain
        self.retrain_status: dict[str, Any] = {"running": False, "pending": False, "last": None, "error": None,
                                               "count": 0, "seconds": None}

    def _no_retrain(self) -> ServeError:
        return ServeError(409, "retrain", "no retrain function is configured for this server")

    def retrain(self) -> dict[str, Any]:
        """Build a new state with ``retrain_fn`` off to the side, then swap it in (blocking)."""
        if self.retrain_fn is None:
            raise self._no_retrain()
        if not self._retrain_lock.acquire(blocking=False):
            raise ServeError(409, "retrain", "a retrain is already running", "wait for it (GET /admin/retrain)")
        self.retrain_status["running"] = True
        try:
            return self._retrain_once(raise_errors=True)
        finally:
            self._finish()

    def retrain_in_background(self) -> bool:
        """Start a retrain thread; 409 when one is already running."""
        if self.retrain_fn is None:
            raise self._no_retrain()
        if not self._retrain_lock.acquire(blocking=False):
            raise ServeError(409, "retrain", "a retrain is already running", "wait for it (GET /admin/retrain)")
        self._start_thread()
        return True

    def request_retrain(self) -> str:
        """Retrain soon (after a forget): 'started', 'queued' behind a running one, or 'unavailable'."""
        if self.retrain_fn is None:
            return "unavailable"
        with self._status_lock:
            if not self._retrain_lock.acquire(blocking=False):
                self.retrain_status["pending"] = True
                return "queued"
        self._start_thread()
        return "started"

    def _start_thread(self) -> None:
        """Run retrains in a thread until none is pending; the caller holds ``_retrain_lock``."""
        # marked running before the thread starts, so a status poll right after sees it
        self.retrain_status["running"] = True

        def run() -> None:
            try:
                self._retrain_once(raise_errors=False)
            finally:
                self._finish()

        threading.Thread(target=run, name="fusionrec-retrain", daemon=True).start()

    def _finish(self) -> None:
        """Release the retrain, or go on with the pending one (the lock passes to a new thread)."""
        with self._status_lock:
            if self.retrain_status["pending"] and not getattr(self, "_closing", False):
                self.retrain_status["pending"] = False
                self._start_thread()
                return
            self.retrain_status["running"] = False
            self._retrain_lock.release()

    def _retrain_once(self, raise_errors: bool) -> dict[str, Any]:
        t0 = time.time()
        try:
            new_state = self.retrain_fn(self)
            self.swap(new_state)
            if self.state.version_name:  # replicas on a shared store follow this version (serve.replicas)
                self.store.set_meta("served_version", self.state.version_name)
            self._after_publish()
        except Exception as err:
            log.exception("retrain failed; the previous model keeps serving")
            self.retrain_status["error"] = f"{type(err).__name__}: {err}"
            if raise_errors:
                raise
            return {}
        self.retrain_status.update(last=time.time(), error=None, seconds=round(time.time() - t0, 2),
                                   count=self.retrain_status["count"] + 1)
        return {"model_version": self.state.version, "served_version": self.state.version_name,
                "seconds": self.retrain_status["seconds"]}

    def _after_publish(self) -> list[str]:
        """Delete versions that may hold a forgotten user (all but the served one), then the oldest."""
        if self.versions is None:
            return []
        removed = []
        generation = self.store.forget_generation()
        if generation:
            removed = self.versions.purge_tainted(generation, keep={self.state.version_name})
        return removed + self.versions.prune()
